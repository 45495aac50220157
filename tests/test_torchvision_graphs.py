"""Graph specs against torchvision as the oracle: the shipped ResNets (their other depths, ResNeXt and Wide ResNet
through their parameters) and a DenseNet block hold torchvision's weights by position and compute its outputs;
their modules are named as the spec names them; and torch.compile traces a built graph whole."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
import torch
from test_torchvision_specs import randomized
from torch import nn

from cnnforge.builder import build
from cnnforge.compiler import Compiled, compile_file, compile_spec
from cnnforge.modules import Graph
from cnnforge.spec import read_text

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"
DENSE_BLOCK = Path(__file__).resolve().parent / "data" / "dense-block.yaml"

# torchvision model -> (the shipped spec that describes it, with these --set bindings)
RESNETS = {
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet18", {"depth": 34}),
    "resnet50": ("resnet50", {}),
    "resnet101": ("resnet50", {"depth": 101}),
    "resnet152": ("resnet50", {"depth": 152}),
    "resnext50_32x4d": ("resnet50", {"groups": 32, "width_per_group": 4}),
    "wide_resnet50_2": ("resnet50", {"width_per_group": 128}),
}


@pytest.fixture(scope="module")
def models() -> ModuleType:
    """torchvision.models; the tests that compare against it are skipped without torchvision (the vision extra)."""
    return pytest.importorskip("torchvision.models")


def assert_same_network(compiled: Compiled, reference: nn.Module, x: torch.Tensor) -> nn.Module:
    """The built spec holds `reference`'s state by position, entry for entry of the same shape, and then gives
    the same outputs on `x`; the built model is returned."""
    built = build(compiled).eval()
    theirs, ours = reference.state_dict(), built.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
    built.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    assert sum(p.numel() for p in reference.parameters()) == compiled.total_params
    with torch.no_grad():
        expected, found = reference(x), built(x)
    assert found.shape == expected.shape
    assert torch.equal(found, expected), (found - expected).abs().max()
    return built


@pytest.mark.parametrize("model", RESNETS)
def test_resnet_specs_are_torchvision_s(models: ModuleType, model: str, one_thread: None) -> None:
    spec, bindings = RESNETS[model]
    compiled = compile_file(ARCHITECTURES / f"{spec}.yaml", bindings)
    torch.manual_seed(0)
    reference = randomized(getattr(models, model)())
    built = assert_same_network(compiled, reference, torch.randn(1, 3, 64, 64))
    # torchvision's names, but for the projection's layers, which the spec leaves to their default names
    ours = [re.sub(r"downsample\.(?:conv|batchnorm)(\d)", r"downsample.\1", key) for key in built.state_dict()]
    assert ours == list(reference.state_dict())


def test_dense_block_is_torchvision_s(models: ModuleType, one_thread: None) -> None:
    torch.manual_seed(0)
    reference = randomized(models.densenet._DenseBlock(6, 64, 4, 32, 0.0))
    compiled = compile_file(DENSE_BLOCK)
    assert compiled.output == (64 + 6 * 32, 56, 56)
    built = assert_same_network(compiled, reference, torch.randn(1, 64, 16, 16))
    assert [name for name, _ in built.named_children()] == ["denseblock1"]
    assert list(built.state_dict())[:2] == ["denseblock1.0.norm1.weight", "denseblock1.0.norm1.bias"]


def test_modules_are_named_by_the_spec() -> None:
    model = build(compile_file(ARCHITECTURES / "resnet18.yaml")).to("meta")
    names = dict(model.named_modules())
    assert isinstance(model, nn.Sequential)  # the top level has no branches of its own
    assert isinstance(names["layer1"], nn.Sequential)  # a repeat is a sequence of its repetitions
    assert isinstance(names["layer1.0"], Graph)  # a block with an add
    assert isinstance(names["layer2.0.downsample"], nn.Sequential)
    assert isinstance(names["layer1.0.conv1"], nn.Conv2d) and isinstance(names["layer4.1.bn2"], nn.BatchNorm2d)
    assert isinstance(names["layer2.0.downsample.conv0"], nn.Conv2d)
    assert "layer1.0.downsample" not in names and "layer2.1.downsample" not in names  # `when` left it out
    assert [name for name, _ in names["layer2.0"].named_children()] == [
        "conv1",
        "bn1",
        "relu1",
        "conv2",
        "bn2",
        "downsample",
        "relu",
    ]
    assert names["layer2.0"].extra_repr() == "add([conv1 -> bn1 -> relu1 -> conv2 -> bn2], [downsample]) -> relu"


# Every merge kind, a repeat and an empty branch, small enough for torch.compile in a test.
MERGES = """\
name: merges
input: [4, 8, 8]
blocks:
  unit:
    params: {c: 4}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, name: conv, shape: ['${c}', '${c}', 3, 3], padding: 1}
            - type: multiply                                   # a squeeze-and-excitation gate
              branches:
                features: []
                gate:
                  - {type: adaptive_avgpool, name: squeeze, output: 1}
                  - {type: conv, name: excite, shape: ['${c}', '${c}', 1, 1]}
                  - {type: sigmoid, name: sigmoid}
          shortcut: []
      - {type: relu, name: relu}
layers:
  - {type: unit, name: stage, repeat: 2}
  - type: concat
    branches:
      input: []
      new: [{type: conv, name: grow, shape: [4, 2, 1, 1]}]
  - {type: batchnorm, name: bn}                                # -> [6, 8, 8]
"""


@pytest.mark.parametrize(
    ("spec", "training"),
    [("merges", False), ("merges", True), ("resnet18", False)],
    ids=["merges-eval", "merges-train", "resnet18-eval"],
)
def test_compile_traces_a_graph_without_breaks(spec: str, training: bool, one_thread: None) -> None:
    """torch.compile sees one graph: Graph.forward's walk over its steps unrolls at trace time."""
    from torch import _dynamo

    if spec == "merges":
        compiled, x = compile_spec(read_text(MERGES).spec), torch.randn(2, 4, 8, 8)
    else:
        compiled, x = compile_file(ARCHITECTURES / f"{spec}.yaml"), torch.randn(1, 3, 64, 64)
    model = build(compiled).train(training)
    explained = _dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
