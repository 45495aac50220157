"""Training memory against torch's own accounting: per layer, the bytes of the tensors autograd saves for the
backward pass (torch.autograd.graph.saved_tensors_hooks), each storage once and at the first layer that saves
it, parameters and buffers aside; float32 on the CPU, in training mode. The static figures match to the byte."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from agreement import compile_dict
from analysis_graphs import graph_specs, runs
from hypothesis import HealthCheck, assume, given, settings
from strategies import specs
from torch import nn
from torch_oracle import run

import cnnforge.modules
from cnnforge import Compiled, compile_file, compile_spec
from cnnforge.analysis import analyse
from cnnforge.builder import build
from cnnforge.layers.merge import Merge

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"
DATA = Path(__file__).resolve().parent / "data"
PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def saved_by_torch(model: nn.Module, nodes: list[nn.Module | None], shape: list[int], batch: int) -> list[int]:
    """Per node, the bytes of the storages autograd saves while it runs that no earlier node saved. `nodes` are
    the model's leaf modules in the order they run, None for each merge of branches (cnnforge.modules._merge)."""
    model.train()
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: set[int] = set()
    saved = [0] * len(nodes)
    running = [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in state | seen:
            seen.add(storage.data_ptr())
            saved[running[0]] += storage.nbytes()
        return tensor

    merges = iter([index for index, node in enumerate(nodes) if node is None])
    merge = cnnforge.modules._merge

    def merging(op: str, outputs: list[torch.Tensor]) -> torch.Tensor:
        running[0] = next(merges)
        return merge(op, outputs)

    hooks = [
        module.register_forward_pre_hook(lambda module, args, index=index: running.__setitem__(0, index))
        for index, module in enumerate(nodes)
        if module is not None
    ]
    x = torch.rand(batch, *shape)  # the data: it needs no gradient
    with (
        mock.patch.object(cnnforge.modules, "_merge", merging),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
    ):
        y = model(x)
    for hook in hooks:
        hook.remove()
    if y.requires_grad:
        y.sum().backward()  # backward checks that what was saved is all that is needed
    return saved


def saved_by_built(compiled: Compiled, batch: int) -> list[int]:
    """saved_by_torch for cnnforge's own build of the spec, each node found by its module path."""
    model = build(compiled)
    nodes = [None if isinstance(node.layer, Merge) else model.get_submodule(node.path) for node in compiled.layers]
    return saved_by_torch(model, nodes, list(compiled.spec.input), batch)


def at_input(path: Path, shape: list[int]) -> Compiled:
    """The spec at `path`, compiled for another input."""
    compiled = compile_file(path)
    return compile_spec(compiled.spec.model_copy(update={"input": tuple(shape)}), str(path)).raise_for_errors()


@settings(max_examples=150, **PROFILE)
@given(specs(max_layers=5, max_channels=4, max_size=12))
def test_saved_tensors_are_torchs(spec: dict) -> None:
    ran = run(spec, "cpu")
    assume(ran.ok)
    compiled = compile_dict(spec)
    for module in ran.modules:
        module.float()
    analysis = analyse(compiled, batch=3)
    measured = saved_by_torch(nn.Sequential(*ran.modules), ran.modules, spec["input"], 3)
    assert [layer.saved_bytes for layer in analysis.layers] == measured
    assert analysis.saved_bytes == sum(measured)
    assert analysis.param_bytes == 4 * sum(p.numel() for m in ran.modules for p in m.parameters())
    model = build(compiled)
    assert saved_by_torch(model, list(model), spec["input"], 3) == measured  # and cnnforge's modules keep the same


@pytest.mark.parametrize(("name", "batch"), [("lenet", 256), ("alexnet", 2), ("alexnet2012", 2)])
def test_shipped_specs(name: str, batch: int) -> None:
    compiled = compile_file(ARCHITECTURES / f"{name}.yaml")
    analysis = analyse(compiled, batch)
    assert [layer.saved_bytes for layer in analysis.layers] == saved_by_built(compiled, batch)


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
    assert saved_by_torch(nn.Sequential(*ran.modules), ran.modules, spec["input"], 2) == [
        layer.saved_bytes for layer in analysis.layers
    ]


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
    model = build(compiled)
    assert saved_by_torch(model, list(model), spec["input"], 2) == expected
    ran = run(spec, "cpu").modules
    assert saved_by_torch(nn.Sequential(*ran), ran, spec["input"], 2) == expected


@settings(max_examples=60, **PROFILE)
@given(graph_specs())
def test_saved_tensors_through_branches_are_torchs(spec: dict) -> None:
    """Random graphs as cnnforge builds them: a tensor read by two branches is kept once; a sum and a concat
    keep nothing, a product its factors where the other needs a gradient."""
    assume(runs(spec))
    compiled = compile_dict(spec)
    analysis = analyse(compiled, batch=2)
    measured = saved_by_built(compiled, 2)
    assert [layer.saved_bytes for layer in analysis.layers] == measured
    assert analysis.saved_bytes == sum(measured)


@pytest.mark.parametrize(
    ("path", "shape", "batch"),
    [
        (ARCHITECTURES / "resnet18.yaml", [3, 64, 64], 2),
        (ARCHITECTURES / "resnet50.yaml", [3, 32, 32], 2),
        (DATA / "dense-block.yaml", [64, 8, 8], 2),
    ],
    ids=["resnet18", "resnet50", "densenet-block"],
)
def test_graph_specs(path: Path, shape: list[int], batch: int) -> None:
    compiled = at_input(path, shape)
    analysis = analyse(compiled, batch)
    assert [layer.saved_bytes for layer in analysis.layers] == saved_by_built(compiled, batch)


SE = {
    "name": "se",
    "input": [4, 6, 6],
    "layers": [
        {"type": "conv", "shape": [4, 8, 3, 3], "padding": 1},
        {
            "type": "multiply",
            "branches": {
                "input": [],
                "gate": [
                    {"type": "adaptive_avgpool", "output": 1},
                    {"type": "conv", "shape": [8, 2, 1, 1]},
                    {"type": "relu"},
                    {"type": "conv", "shape": [2, 8, 1, 1]},
                    {"type": "sigmoid"},
                ],
            },
        },
        {"type": "relu"},
    ],
}


def test_squeeze_and_excitation() -> None:
    """The gate: the mean keeps nothing, its convs their inputs (the second's is the relu's output, kept by the
    relu), the sigmoid its output; the product keeps both factors, of which the conv's output is new; each of
    the batch of 3, in float32."""
    analysis = analyse(compile_dict(SE), batch=3)
    kept = [layer.saved_bytes for layer in analysis.layers]
    assert kept == [3 * 4 * n for n in (4 * 36, 0, 8, 2, 0, 8, 8 * 36, 8 * 36)]
    assert kept == saved_by_built(compile_dict(SE), 3)


def test_resnet18_figures() -> None:
    """A block's input is kept once, by the relu that made it, though the body's conv and the shortcut's read it
    too; the sum keeps nothing. ResNet-18 at 224 x 224 keeps 21.2 MiB a sample (torch's figure too)."""
    compiled = compile_file(ARCHITECTURES / "resnet18.yaml")
    analysis = analyse(compiled)
    by_path = dict(zip((node.path for node in compiled.layers), analysis.layers, strict=True))
    assert by_path["layer1.0.conv1"].saved_bytes == 4 * 64 * 56 * 56  # the max pool's output (it keeps its input)
    assert by_path["layer2.0.conv1"].saved_bytes == by_path["layer2.0.downsample.conv0"].saved_bytes == 0
    assert by_path["layer2.0.add0"].saved_bytes == 0
    assert analysis.saved_bytes == 22_218_240
