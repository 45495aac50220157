"""Receptive fields against torch's gradients: the input pixels that can reach an output position are those
of its static receptive field that lie in the image.

The static field of position i spans rows start + i*jump .. start + i*jump + size - 1 of the padded input.
Where that span lies inside the image, the pixels with a nonzero gradient span exactly it. Where it reaches
into the padding, they lie within its part inside the image (zero padding and pooling padding hold no pixel),
except with reflect, replicate or circular padding, which copy pixels from elsewhere. Where an adaptive pool's
windows are uneven, `size` bounds the span of every position."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from agreement import compile_dict
from analysis_graphs import Oracle, event, graph_specs, reached, runs
from hypothesis import HealthCheck, assume, given, settings
from reach import linear_modules
from reach import reached as reached_by_chain
from strategies import specs
from torch_oracle import run

from cnnforge import compile_file
from cnnforge.analysis import analyse
from cnnforge.layers.receptive import Reach

ROOT = Path(__file__).resolve().parent.parent

PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
COPYING = ("reflect", "replicate", "circular")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def span(reach: Reach, i: int) -> tuple[int, int] | None:
    """Rows spanned by position i; None where the field is uneven."""
    if reach.start is None:
        return None
    first = reach.start + i * reach.jump
    return first, first + reach.size - 1


def extent(mask: torch.Tensor) -> tuple[int, int] | None:
    """First and last index set in a 1-D mask; None if none."""
    found = mask.nonzero()
    return (int(found.min()), int(found.max())) if len(found) else None


def assert_agrees(
    reaches: tuple[Reach, Reach], at: tuple[int, int], pixels: torch.Tensor, copying: bool, chain: bool = True
) -> None:
    """The pixels that reach position `at` (an [H, W] mask) against its static field along both axes.

    Through a chain of layers, the pixels reached are a product of rows and columns: along an axis whose span is
    inside the image, the rows reached span it exactly, unless none is reached because the position's span along
    the other axis lies wholly in the padding. Through branches, that holds of each branch, and a branch whose
    taps along one axis all fall in padding reads nothing, though its span along the other axis counts: there
    the span is exact where it is inside the image along both axes."""
    got = extent(pixels.any(dim=1)), extent(pixels.any(dim=0))
    claimed = [span(reach, i) for reach, i in zip(reaches, at, strict=True)]
    inside = [c is not None and 0 <= c[0] and c[1] < size for c, size in zip(claimed, pixels.shape, strict=True)]
    event(f"spans inside the image: {sum(inside)} of 2")
    if all(inside):
        assert got == tuple(claimed)
    for reach, found, span_, size in zip(reaches, got, claimed, pixels.shape, strict=True):
        if found is None:
            continue
        if span_ is None:
            assert found[1] - found[0] + 1 <= reach.size, f"read {found}, uneven field of {reach}"
        elif 0 <= span_[0] and span_[1] < size and (chain or all(inside)):
            assert found == span_
        elif not copying:
            assert max(span_[0], 0) <= found[0] and found[1] <= min(span_[1], size - 1), f"read {found}, static {span_}"


def _leaves(entries: list[dict]) -> list[dict]:
    found = []
    for entry in entries:
        if "branches" in entry:
            found += [leaf for branch in entry["branches"].values() for leaf in _leaves(branch)]
        else:
            found += _leaves(entry["layers"]) if entry["type"] == "sequence" else [entry]
    return found


def assert_fields_agree(spec: dict) -> None:
    """Every output position of every node: the pixels that reach it, against its static receptive field."""
    compiled = compile_dict(spec)
    analysis = analyse(compiled)
    oracle = Oracle(spec, linear=True)
    _, rows, columns = spec["input"]
    leaves = _leaves(spec["layers"])
    chain = len(leaves) == len(compiled.layers)
    for index, (layer, analysed) in enumerate(zip(compiled.layers, analysis.layers, strict=True)):
        field = analysed.field
        if field is None:  # features whose channels' fields differ (from a concat), or branches met after uneven
            concat = len(layer.output) == 1 and any(node.type == "concat" for node in compiled.layers[:index])
            uneven = any(a.field is not None and None in (a.field.h.start, a.field.w.start) for a in analysis.layers)
            assert concat or uneven
            event("unknown: features whose channels see differently" if concat else "unknown: uneven branches")
            continue
        copying = any(leaf.get("padding_mode") in COPYING for leaf in leaves[: index + 1])
        if not (field.h.even and field.w.even):
            event("an uneven field")
        per_map = field.h.count * field.w.count  # features after flatten are the positions of the map before it
        if len(layer.output) == 3:
            outputs = [(h, w) for h in range(layer.output[1]) for w in range(layer.output[2])]
        else:
            outputs = [(f,) for f in range(min(layer.output[0], 4 * per_map))]
        read = reached(oracle, spec["input"], index, outputs)  # [P, H, W]
        for output, pixels in zip(outputs, read, strict=True):
            position = output if len(output) == 2 else divmod(output[0] % per_map, field.w.count)
            assert_agrees((field.h, field.w), position, pixels, copying, chain), f"node {index} {output}"
        spans = [span(reach, i) for reach, i in ((field.h, 0), (field.w, 0))]
        last = [span(reach, reach.count - 1) for reach in (field.h, field.w)]
        whole = None not in spans and all(
            first[0] <= 0 and first[1] >= size - 1 and end[0] <= 0
            for first, end, size in zip(spans, last, (rows, columns), strict=True)  # type: ignore[misc]
        )
        assert analysed.whole_input == whole


@settings(max_examples=200, **PROFILE)
@given(specs(max_layers=4, max_channels=3, max_size=12))
def test_receptive_fields_are_what_reaches_each_position(spec: dict) -> None:
    ran = run(spec, "meta")
    assume(ran.ok)
    assert_fields_agree(spec)


def test_lenet_and_alexnet_fields() -> None:
    """The textbook figures: AlexNet's last conv sees 163 x 163 pixels, its last pool 195 x 195, 32 apart."""
    alexnet = analyse(compile_file("architectures/alexnet.yaml"))
    fields = [(layer.field.h.size, layer.field.h.jump, layer.field.h.start) for layer in alexnet.layers]
    assert fields[10] == (163, 16, -66)  # conv10, the fifth conv
    assert fields[12] == (195, 32, -66)  # maxpool12
    assert [layer.whole_input for layer in alexnet.layers].index(True) == 16  # linear16, the first linear
    lenet = analyse(compile_file("architectures/lenet.yaml"))
    assert [layer.field.h.size for layer in lenet.layers[:7]] == [5, 5, 6, 14, 14, 16, 16]
    assert lenet.layers[7].whole_input and (lenet.layers[7].field.h.size, lenet.layers[7].field.h.start) == (32, 0)


def test_alexnet_field_in_torch() -> None:
    """AlexNet's conv10 in torch: at row 6 of 13 the field is inside the image, 163 rows from 6*16 - 66 = 30;
    at columns 0 and 10 it reaches past the image, -66..96 and 94..256, and is clipped there."""
    spec = yaml.safe_load((ROOT / "architectures" / "alexnet.yaml").read_text())
    spec["layers"] = spec["layers"][:11]
    read = reached_by_chain(linear_modules(spec), spec["input"], [(0, 6, 0), (0, 6, 10)])
    for pixels, (first, last) in zip(read, [(0, 96), (94, 223)], strict=True):
        assert extent(pixels.any(dim=1)) == (30, 192)
        assert extent(pixels.any(dim=0)) == (first, last)


@settings(max_examples=60, **PROFILE)
@given(graph_specs())
def test_fields_through_branches_are_what_reaches_each_position(spec: dict) -> None:
    assume(runs(spec))
    assert_fields_agree(spec)


def conv(c_i: int, c_o: int, k: int, stride: int = 1, padding: int = 0) -> dict:
    return {"type": "conv", "shape": [c_i, c_o, k, k], "stride": stride, "padding": padding}


def basic(c_i: int, c_o: int, stride: int) -> dict:
    """torchvision's BasicBlock: two 3x3 convs beside the input itself, or a strided 1x1 conv."""
    body = [conv(c_i, c_o, 3, stride, 1), {"type": "batchnorm"}, {"type": "relu"}, conv(c_o, c_o, 3, 1, 1)]
    shortcut = [conv(c_i, c_o, 1, stride)] if stride > 1 or c_i != c_o else []
    return {"type": "add", "branches": {"body": body, "shortcut": shortcut}}


INCEPTION = {
    "type": "concat",
    "branches": {
        "a": [conv(2, 2, 1)],
        "b": [conv(2, 2, 3, padding=1)],
        "c": [conv(2, 2, 5, padding=2)],
        "pool": [{"type": "maxpool", "kernel": 3, "stride": 1, "padding": 1}],
    },
}
SE = {
    "type": "multiply",
    "branches": {
        "input": [],
        "gate": [
            {"type": "adaptive_avgpool", "output": 1},
            conv(3, 1, 1),
            {"type": "relu"},
            conv(1, 3, 1),
            {"type": "sigmoid"},
        ],
    },
}


def fields(spec: dict) -> list[tuple]:
    return [
        None if a.field is None else (a.field.h.size, a.field.h.jump, a.field.h.start, a.whole_input)
        for a in analyse(compile_dict(spec)).layers
    ]


@pytest.mark.parametrize(
    ("name", "layers", "expected"),
    [
        (  # the identity spans one row beside the body's 5: the sum spans the body's
            "identity shortcut",
            [conv(2, 3, 3, 1, 1), basic(3, 3, 1)],
            [(3, 1, -1, False), *[(5, 1, -2, False)] * 3, (7, 1, -3, False), (7, 1, -3, False)],
        ),
        (  # the 1x1 stride-2 shortcut spans row 2i, inside the body's 2i - 2 .. 2i + 4
            "strided projection",
            [conv(2, 3, 3, 1, 1), basic(3, 4, 2)],
            [(3, 1, -1, False), *[(5, 2, -2, False)] * 3, (9, 2, -4, False), (3, 2, -1, False), (9, 2, -4, False)],
        ),
        (  # 1x1, 3x3, 5x5 and the pool, centred alike: the 5x5's span
            "inception",
            [INCEPTION],
            [(1, 1, 0, False), (3, 1, -1, False), (5, 1, -2, False), (3, 1, -1, False), (5, 1, -2, False)],
        ),
        (  # the gate sees the whole input, -1..9 padding included, so every position of the product does
            "squeeze and excitation",
            [conv(2, 3, 3, 1, 1), SE, conv(3, 2, 3, 1, 1)],
            [(3, 1, -1, False), *[(11, 9, -1, True)] * 5, (19, 1, -9, True), (21, 1, -10, True)],
        ),
    ],
)
def test_graph_fields(name: str, layers: list[dict], expected: list[tuple]) -> None:
    """Residual blocks, an Inception-like concat and a squeeze-and-excitation gate, on 9 x 9 maps: the fields
    are the figures worked out by hand, and what reaches each position in torch."""
    spec = {"name": name.replace(" ", "_"), "input": [2, 9, 9], "layers": layers}
    assert fields(spec) == expected
    assert_fields_agree(spec)


def test_resnet18_field() -> None:
    """ResNet-18's last block spans 435 x 435 pixels, 32 apart (the published figure), and its pool all."""
    analysis = analyse(compile_file(ROOT / "architectures" / "resnet18.yaml"))
    compiled = compile_file(ROOT / "architectures" / "resnet18.yaml")
    relu = compiled.layers.index(compiled.node("layer4.1.relu"))
    field = analysis.layers[relu].field
    assert (field.h.size, field.h.jump, field.h.start) == (435, 32, -217)
    assert analysis.layers[compiled.layers.index(compiled.node("avgpool"))].whole_input


@settings(max_examples=40, **PROFILE)
@given(graph_specs(agree=False))
def test_fields_through_branches_that_step_differently(spec: dict) -> None:
    """Branches whose windows differ, at sizes where they still agree: positions may be uneven."""
    assume(runs(spec))
    assert_fields_agree(spec)
