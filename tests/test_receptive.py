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
from hypothesis import HealthCheck, assume, event, given, settings
from reach import linear_modules, reached
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


def assert_agrees(reaches: tuple[Reach, Reach], at: tuple[int, int], pixels: torch.Tensor, copying: bool) -> None:
    """The pixels that reach position `at` (an [H, W] mask) against its static field along both axes.

    The pixels reached are a product of rows and columns: along an axis whose span is inside the image, the rows
    reached span it exactly, unless none is reached because the position's span along the other axis lies
    wholly in the padding."""
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
        elif 0 <= span_[0] and span_[1] < size:
            assert found == span_
        elif not copying:
            assert max(span_[0], 0) <= found[0] and found[1] <= min(span_[1], size - 1), f"read {found}, static {span_}"


def assert_fields_agree(spec: dict) -> None:
    """Every output position of every layer: the pixels that reach it, against its static receptive field."""
    compiled = compile_dict(spec)
    analysis = analyse(compiled)
    modules = linear_modules(spec)
    _, rows, columns = spec["input"]
    for index, (layer, analysed) in enumerate(zip(compiled.layers, analysis.layers, strict=True)):
        field = analysed.field
        assert field is not None
        copying = any(earlier.get("padding_mode") in COPYING for earlier in spec["layers"][: index + 1])
        if not (field.h.even and field.w.even):
            event("an uneven field (after an adaptive pool)")
        per_map = field.h.count * field.w.count  # features after flatten are the positions of the map before it
        if len(layer.output) == 3:
            outputs = [(0, h, w) for h in range(layer.output[1]) for w in range(layer.output[2])]
        else:
            outputs = [(f,) for f in range(min(layer.output[0], 4 * per_map))]
        read = reached(modules[: index + 1], spec["input"], outputs)  # [P, H, W]
        for output, pixels in zip(outputs, read, strict=True):
            position = output[1:] if len(output) == 3 else divmod(output[0] % per_map, field.w.count)
            assert_agrees((field.h, field.w), position, pixels, copying), f"layer {index} ({layer.type}) {output}"
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
    read = reached(linear_modules(spec), spec["input"], [(0, 6, 0), (0, 6, 10)])
    for pixels, (first, last) in zip(read, [(0, 96), (94, 223)], strict=True):
        assert extent(pixels.any(dim=1)) == (30, 192)
        assert extent(pixels.any(dim=0)) == (first, last)
