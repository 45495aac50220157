"""Training memory against torch's own accounting: per layer, the bytes of the tensors autograd saves for the
backward pass (torch.autograd.graph.saved_tensors_hooks), each storage once and at the first layer that saves
it, parameters and buffers aside; float32 on the CPU, in training mode. The static figures match to the byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from agreement import compile_dict
from hypothesis import HealthCheck, assume, given, settings
from strategies import specs
from torch import nn
from torch_oracle import run

from cnnforge import compile_file
from cnnforge.analysis import analyse
from cnnforge.builder import build

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"
PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def saved_by_torch(modules: list[nn.Module], shape: list[int], batch: int) -> list[int]:
    """Per module, the bytes of the storages autograd saves while it runs that no earlier module saved."""
    model = nn.Sequential(*modules).train()
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: set[int] = set()
    saved = [0] * len(modules)
    running = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in state | seen:
            seen.add(storage.data_ptr())
            saved[running[0]] += storage.nbytes()
        return tensor

    for index, module in enumerate(modules):
        module.register_forward_pre_hook(lambda module, args, index=index: running.__setitem__(0, index))
    x = torch.rand(batch, *shape)  # the data: it needs no gradient
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = model(x)
    if y.requires_grad:
        y.sum().backward()  # backward checks that what was saved is all that is needed
    return saved


@settings(max_examples=150, **PROFILE)
@given(specs(max_layers=5, max_channels=4, max_size=12))
def test_saved_tensors_are_torchs(spec: dict) -> None:
    ran = run(spec, "cpu")
    assume(ran.ok)
    compiled = compile_dict(spec)
    for module in ran.modules:
        module.float()
    analysis = analyse(compiled, batch=3)
    measured = saved_by_torch(ran.modules, spec["input"], 3)
    assert [layer.saved_bytes for layer in analysis.layers] == measured
    assert analysis.saved_bytes == sum(measured)
    assert analysis.param_bytes == 4 * sum(p.numel() for m in ran.modules for p in m.parameters())
    assert saved_by_torch(list(build(compiled)), spec["input"], 3) == measured  # and cnnforge's modules keep the same


@pytest.mark.parametrize(("name", "batch"), [("lenet", 256), ("alexnet", 2), ("alexnet2012", 2)])
def test_shipped_specs(name: str, batch: int) -> None:
    compiled = compile_file(ARCHITECTURES / f"{name}.yaml")
    analysis = analyse(compiled, batch)
    measured = saved_by_torch(list(build(compiled)), list(compiled.spec.input), batch)
    assert [layer.saved_bytes for layer in analysis.layers] == measured


def test_lenet_figures() -> None:
    """LeNet-5 per sample: the input image (kept by conv0), both tanh outputs over maps, the pooled maps that
    conv3 and linear7 read, and the three tanh outputs over features; 35.6 KiB, and 8.9 MiB at batch 256."""
    analysis = analyse(compile_file(ARCHITECTURES / "lenet.yaml"), batch=1)
    expected = [32 * 32, 6 * 28 * 28, 0, 6 * 14 * 14, 16 * 10 * 10, 0, 0, 400, 120, 0, 84, 0]
    assert [layer.saved_bytes for layer in analysis.layers] == [4 * n for n in expected]
    assert analyse(compile_file(ARCHITECTURES / "lenet.yaml"), batch=256).saved_bytes == 256 * 4 * sum(expected)


def test_dropout_extremes_and_view_sharing() -> None:
    """dropout p=0 returns its input itself; p=1 multiplies by one zero; a linear after flatten reads the map."""
    spec = {
        "name": "t",
        "input": [2, 4, 4],
        "layers": [
            {"type": "conv", "shape": [2, 3, 3, 3], "padding": 1},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "dropout", "p": 0.0},
            {"type": "linear", "shape": [48, 5]},
            {"type": "dropout", "p": 1.0},
            {"type": "linear", "shape": [5, 2]},
        ],
    }
    analysis = analyse(compile_dict(spec), batch=2)
    assert [layer.saved_bytes for layer in analysis.layers] == [2 * 4 * 32, 2 * 4 * 48, 0, 0, 0, 4, 2 * 4 * 5]
    ran = run(yaml.safe_load(yaml.safe_dump(spec)), "cpu")
    assert saved_by_torch(ran.modules, spec["input"], 2) == [layer.saved_bytes for layer in analysis.layers]


def test_views_keep_what_they_view() -> None:
    """A chunk of the channels is a view: a conv after it keeps all of the map it was cut from (4 channels, not 2),
    and a flatten of it keeps that map too. The new kinds keep, per sample: layernorm its input and a mean and
    1/std per position, channel_linear its input copied channels last, layer_scale its input, stochastic depth one
    float per sample (row) or per batch, hardswish its input, relu6 its input, channel_shuffle and identity nothing."""
    spec = {
        "name": "t",
        "input": [2, 4, 4],
        "layers": [
            {"type": "conv", "shape": [2, 4, 3, 3], "padding": 1},  # keeps the images: 2*16
            {"type": "chunk", "chunks": 2, "index": 1},
            {"type": "conv", "shape": [2, 3, 1, 1]},  # keeps conv0's output, through the chunk: 4*16
            {"type": "layernorm"},  # its input, 3*16, and 2 floats at each of 16 positions
            {"type": "channel_linear", "shape": [3, 5]},  # layernorm3's output, channels last: 3*16
            {"type": "layer_scale"},  # its input: 5*16
            {"type": "stochastic_depth", "p": 0.5},  # one float per sample
            {"type": "stochastic_depth", "p": 0.5, "mode": "batch"},  # one float per batch
            {"type": "hardswish"},  # its input: 5*16
            {"type": "channel_shuffle", "groups": 5},
            {"type": "relu6"},  # its input: 5*16
            {"type": "identity"},
            {"type": "chunk", "chunks": 5, "index": 4},
            {"type": "flatten"},
            {"type": "linear", "shape": [16, 2]},  # relu6's output, all 5 channels of it: 5*16
            {"type": "layernorm"},  # its input, 2, and a mean and 1/std
        ],
    }
    per_sample = [32, 0, 64, 48 + 32, 48, 80, 1, 0, 80, 0, 80, 0, 0, 0, 80, 2 + 2]  # floats
    expected = [2 * 4 * n for n in per_sample]  # bytes at batch 2
    expected[7] = 4  # the batch's one float
    compiled = compile_dict(spec)
    assert [layer.saved_bytes for layer in analyse(compiled, batch=2).layers] == expected
    assert saved_by_torch(list(build(compiled)), spec["input"], 2) == expected
    assert saved_by_torch(run(spec, "cpu").modules, spec["input"], 2) == expected
