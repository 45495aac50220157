"""`cnnforge summary` of graphs: a tree of groups with their totals (torch's parameter and FLOP counts of each
module as the oracle), merges with their branches, --depth, the JSON's new keys; a plain spec as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnforge.cli import main
from cnnforge.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"
DATA = Path(__file__).resolve().parent / "data"
GRAPHS = [
    ARCHITECTURES / "resnet18.yaml",
    ARCHITECTURES / "resnet50.yaml",
    DATA / "dense-block.yaml",
    DATA / "inception.yaml",
]


def run(capsys: pytest.CaptureFixture, *args: str | Path) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


def rows(out: str) -> list[str]:
    """The table's rows, between its two rules."""
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) <= {"-", " "}]
    return lines[rules[0] + 1 : rules[1]]


LENET = """\
lenet5: input [1, 32, 32] -> output [10]
 #  name      type     output        params     MACs
--  --------  -------  ------------  ------  -------
 0  conv0     conv     [6, 28, 28]      156  117,600
 1  tanh1     tanh     [6, 28, 28]        0        0
 2  avgpool2  avgpool  [6, 14, 14]        0        0
 3  conv3     conv     [16, 10, 10]   2,416  240,000
 4  tanh4     tanh     [16, 10, 10]       0        0
 5  avgpool5  avgpool  [16, 5, 5]         0        0
 6  flatten6  flatten  [400]              0        0
 7  linear7   linear   [120]         48,120   48,000
 8  tanh8     tanh     [120]              0        0
 9  linear9   linear   [84]          10,164   10,080
10  tanh10    tanh     [84]               0        0
11  linear11  linear   [10]             850      840
--  --------  -------  ------------  ------  -------
"""


@pytest.mark.parametrize("depth", [[], ["--depth", "1"], ["--depth", "5"]])
def test_a_plain_spec_prints_what_it_printed_before_graphs(capsys: pytest.CaptureFixture, depth: list[str]) -> None:
    out = run(capsys, "summary", ARCHITECTURES / "lenet.yaml", *depth)
    assert out.startswith(LENET)
    assert out[len(LENET) :].startswith("Total params: 61,706\n")


def test_resnet18_is_a_tree_of_its_groups(capsys: pytest.CaptureFixture) -> None:
    lines = rows(run(capsys, "summary", ARCHITECTURES / "resnet18.yaml"))
    assert [line.split()[:4] for line in lines[3:7]] == [
        ["3", "maxpool", "maxpool", "[64,"],
        ["layer1", "basic", "×2", "[64,"],
        ["├─", "0", "basic", "[64,"],
        ["4", "│", "├─", "conv1"],
    ]
    assert lines[4].split()[-2:] == ["147,968", "462,422,016"]
    downsample = lines.index(next(line for line in lines if "├─ downsample" in line))
    assert lines[downsample].split() == [
        "│",
        "├─",
        "downsample",
        "sequence",
        "[128,",
        "28,",
        "28]",
        "8,448",
        "6,422,528",
    ]
    assert lines[downsample + 1].split()[:5] == ["23", "│", "│", "├─", "conv0"]
    assert lines[downsample + 3].split()[:7] == ["25", "│", "├─", "add0", "add", "(body", "+"]
    assert lines[-1].split()[:2] == ["68", "fc"]  # the top level again, unindented
    assert sum(line.split()[0].isdigit() for line in lines) == 69  # every node once
    assert sum("basic" in line.split() for line in lines) == 8 + 4  # a row per block used, and per stage ("basic ×2")


@pytest.mark.parametrize("spec", GRAPHS, ids=lambda p: p.stem)
def test_each_groups_totals_are_torchs_counts_of_its_module(spec: Path, capsys: pytest.CaptureFixture) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnforge.builder import build

    data = json.loads(run(capsys, "summary", spec, "--json"))
    compiled = compile_file(spec)
    model = build(compiled).eval()
    outputs: dict[str, list[int]] = {}

    def keep(path: str) -> object:
        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            outputs[path] = list(output.shape[1:])

        return hook

    for group in data["groups"]:
        model.get_submodule(group["path"]).register_forward_hook(keep(group["path"]))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *compiled.spec.input))
    flops = counter.get_flop_counts()
    root = type(model).__name__
    assert data["groups"], "a graph has groups"
    for group in data["groups"]:
        module = model.get_submodule(group["path"])
        assert group["params"] == sum(p.numel() for p in module.parameters()), group["path"]
        assert 2 * group["macs"] == sum(flops.get(f"{root}.{group['path']}", {}).values()), group["path"]
        assert group["output"] == outputs[group["path"]], group["path"]


def test_depth_folds_each_group_into_its_row(capsys: pytest.CaptureFixture) -> None:
    one = rows(run(capsys, "summary", ARCHITECTURES / "resnet50.yaml", "--depth", "1"))
    assert [line.split()[1] if line.split()[0].isdigit() else line.split()[0] for line in one] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc",
    ]  # fmt: skip
    assert one[4].split() == ["layer1", "bottleneck", "×3", "[256,", "56,", "56]", "215,808", "667,942,912"]
    assert one[7].split()[-2:] == ["14,964,736", "809,238,528"]
    two = rows(run(capsys, "summary", ARCHITECTURES / "resnet50.yaml", "--depth", "2"))
    assert len(two) == 11 + 3 + 4 + 6 + 3
    assert two[5].split() == ["├─", "0", "bottleneck", "[256,", "56,", "56]", "75,008", "231,211,008"]
    assert two[7].split()[:2] == ["└─", "2"]
    full = rows(run(capsys, "summary", ARCHITECTURES / "resnet50.yaml"))
    assert len(full) == 175 + 16 + 4 + 4  # nodes, blocks, repeats, downsample sequences
    assert rows(run(capsys, "summary", ARCHITECTURES / "resnet50.yaml", "--depth", "9")) == full


def test_merges_name_their_branches(capsys: pytest.CaptureFixture) -> None:
    lines = rows(run(capsys, "summary", DATA / "inception.yaml"))
    assert any(line.startswith("13  mixed       concat (b1x1, b3x3, b5x5, pool)  [256, 28, 28]") for line in lines)
    assert any(line.split()[:5] == ["19", "└─", "scale", "multiply", "(x"] for line in lines)
    dense = rows(run(capsys, "summary", DATA / "dense-block.yaml", "--depth", "3"))
    concats = [line for line in dense if "concat (input, new)" in line]
    assert [line.split()[-5] for line in concats] == [f"[{64 + 32 * n}," for n in range(1, 7)]


def test_json_adds_paths_inputs_and_groups(capsys: pytest.CaptureFixture) -> None:
    data = json.loads(run(capsys, "summary", ARCHITECTURES / "resnet18.yaml", "--json"))
    assert list(data) == [
        "name", "input", "output", "total_params", "total_macs", "macs_convention", "layers", "groups",
        "batch", "param_bytes", "saved_bytes",
    ]  # fmt: skip
    add = data["layers"][25]
    assert list(add)[:6] == ["index", "name", "type", "output", "params", "macs"]
    assert {k: add[k] for k in ("name", "type", "path", "parent", "inputs", "branches")} == {
        "name": "add0",
        "type": "add",
        "path": "layer2.0.add0",
        "parent": "layer2.0",
        "inputs": [22, 24],  # bn2 of the body, the downsample's batchnorm
        "branches": ["body", "shortcut"],
    }
    assert data["layers"][0] | {} == data["layers"][0] and data["layers"][0]["path"] == "conv1"
    assert (data["layers"][0]["parent"], data["layers"][0]["inputs"], data["layers"][0]["branches"]) == ("", [-1], [])
    layer2 = next(group for group in data["groups"] if group["path"] == "layer2")
    assert layer2 == {
        "path": "layer2",
        "name": "layer2",
        "kind": "repeat",
        "block": None,
        "repetitions": 2,
        "parent": "",
        "first": 18,
        "last": 33,
        "output": [128, 28, 28],
        "params": 525_568,
        "macs": 411_041_792,
        "saved_bytes": layer2["saved_bytes"],
    }
    assert [g["path"] for g in data["groups"] if g["parent"] == "layer2"] == ["layer2.0", "layer2.1"]
    plain = json.loads(run(capsys, "summary", ARCHITECTURES / "lenet.yaml", "--json"))
    assert plain["groups"] == [] and [layer["path"] for layer in plain["layers"]][:2] == ["conv0", "tanh1"]


def test_analysis_columns_on_a_graph(capsys: pytest.CaptureFixture) -> None:
    lines = rows(run(capsys, "summary", ARCHITECTURES / "resnet18.yaml", "-a"))
    conv1 = lines[0].split()
    assert conv1[-7:] == ["7x7", "2x2", "-3,-3", "3.1", "MiB", "588.0", "KiB"]
    layer1 = next(line for line in lines if line.startswith("    layer1 "))
    assert layer1.split()[11:13] == ["784.0", "KiB"]  # its output: [64, 56, 56] floats
    assert all(len(line.split()) >= 10 for line in lines)  # every row has its cells, '?' where not known
