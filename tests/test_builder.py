"""The builder against plain torch: torchvision's AlexNet layout, LeNet-5, and readable names."""

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnforge import SpecError, check_file, compile_file
from cnnforge.builder import build
from cnnforge.compiler import compile_spec
from cnnforge.spec import read_text

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"


class TorchvisionAlexNet(nn.Module):
    """torchvision.models.AlexNet's layer list, written out in plain torch."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def test_alexnet_is_torchvision_equivalent() -> None:
    torch.manual_seed(0)
    reference = TorchvisionAlexNet().eval()
    ours = build(compile_file(ARCHITECTURES / "alexnet.yaml")).eval()
    theirs = reference.state_dict()
    assert [tuple(t.shape) for t in theirs.values()] == [tuple(t.shape) for t in ours.state_dict().values()]
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.values(), strict=True)))  # by position
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    assert sum(p.numel() for p in reference.parameters()) == compile_file(ARCHITECTURES / "alexnet.yaml").total_params


def test_lenet_matches_hand_written_lenet() -> None:
    reference = nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, 10),
    ).eval()
    ours = build(compile_file(ARCHITECTURES / "lenet.yaml")).eval()
    ours.load_state_dict(dict(zip(ours.state_dict(), reference.state_dict().values(), strict=True)))
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("path", sorted(ARCHITECTURES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_build_and_agree_with_the_compiler(path: Path) -> None:
    compiled = compile_file(path)
    model = build(compiled).eval().to("meta")
    layers = [layer for layer in compiled.layers if layer.type not in ("add", "concat", "multiply")]
    leaves = [name for name, module in model.named_modules() if not list(module.children())]
    assert leaves == [layer.path for layer in layers]
    outputs: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        model.get_submodule(layer.path).register_forward_hook(
            lambda module, args, y, path=layer.path: outputs.__setitem__(path, tuple(y.shape[1:]))
        )
    y = model(torch.zeros(1, *compiled.spec.input, device="meta"))
    assert outputs == {layer.path: layer.output for layer in layers}
    assert tuple(y.shape[1:]) == compiled.output
    assert sum(p.numel() for p in model.parameters()) == compiled.total_params


def test_state_dict_keys_are_the_layer_names() -> None:
    model = build(compile_file(ARCHITECTURES / "alexnet2012.yaml"))
    assert list(model.state_dict())[:4] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert model.fc8.out_features == 1000


def test_minpool_is_min_over_each_window() -> None:
    loaded = read_text("name: m\ninput: [1, 4, 4]\nlayers:\n  - {type: minpool, kernel: 2}\n")
    model = build(compile_spec(loaded.spec))
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert model(x).tolist() == [[[[0.0, 2.0], [8.0, 10.0]]]]


def test_build_refuses_a_spec_with_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, shape: [1, 4, 3, 3]}\n")
    with pytest.raises(SpecError, match=r"bad.yaml:4:5: error: layer 0 'conv0' \(conv\): shape says C_i=1"):
        build(check_file(bad))
