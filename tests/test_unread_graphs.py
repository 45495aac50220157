"""The unread-rows warning where branches read one tensor: said only for rows and columns that no branch reads,
once for the tensor, at the first layer that leaves them; torch's gradients tell which rows are read."""

from __future__ import annotations

import pytest
import torch
import yaml
from analysis_graphs import Oracle
from test_errors import at

pytestmark = pytest.mark.usefixtures("one_thread")


def spec_text(body: list[str], shortcut: list[str], shape: str = "[4, 32, 32]") -> str:
    lines = ["name: t", f"input: {shape}", "layers:", "  - type: add", "    branches:", "      body:"]
    lines += [f"        - {layer}" for layer in body] + ["      shortcut:"]
    return "\n".join(lines + [f"        - {layer}" for layer in shortcut]) + "\n"


def unread_by_torch(text: str) -> tuple[int, int]:
    """Trailing rows and columns of the input that no output reaches, by torch's gradients (tests/reach.py)."""
    spec = yaml.safe_load(text)
    x = torch.rand(1, *spec["input"], dtype=torch.float64).add_(0.5).requires_grad_()
    Oracle(spec, linear=True)(x)[-1].sum().backward()
    read = x.grad.abs().amax(dim=1)[0] > 0  # [H, W]
    rows, cols = read.any(dim=1), read.any(dim=0)
    return tuple(len(axis) - 1 - int(axis.nonzero().max()) for axis in (rows, cols))  # type: ignore[return-value]


def test_the_body_reads_what_a_resnet_shortcut_skips(check) -> None:
    """The 1x1 stride-2 shortcut reads even rows only, leaving row 31; the 3x3 stride-2 body padded by 1 reads
    it: nothing is said. Alone, the shortcut is warned about."""
    text = spec_text(
        [
            "{type: conv, shape: [4, 8, 3, 3], stride: 2, padding: 1}",
            "{type: relu}",
            "{type: conv, shape: [8, 8, 3, 3], padding: 1}",
        ],
        ["{type: conv, shape: [4, 8, 1, 1], stride: 2}"],
    )
    assert check(text) == []
    assert unread_by_torch(text) == (0, 0)
    alone = "name: t\ninput: [4, 32, 32]\nlayers:\n  - {type: conv, shape: [4, 8, 1, 1], stride: 2}\n"
    (line,) = check(alone)
    assert "leaves the last 1 row and 1 column of the input [4, 32, 32] unread" in line


def test_rows_no_branch_reads_are_said_once(check) -> None:
    """A 3x3 stride-2 conv and a 3x3 stride-2 average pool both stop at row 30: one warning, at the conv."""
    text = spec_text(["{type: conv, shape: [4, 4, 3, 3], stride: 2}"], ["{type: avgpool, kernel: 3, stride: 2}"])
    (line,) = check(text)
    assert line == (
        f"{at(text, 'stride: 2')}: warning: layer 1 'conv1' (conv): stride [2, 2] leaves the last 1 row and 1 column "
        "of the input [4, 32, 32] unread; torch drops them silently"
    )
    assert unread_by_torch(text) == (1, 1)


def test_the_rows_said_are_those_no_branch_reads(check) -> None:
    """A 1x1 conv with stride 4 reads up to row 28, a 2x2 average pool with stride 4 up to row 29: rows 30 and
    31 are unread, not the conv's own three."""
    text = spec_text(["{type: conv, shape: [4, 4, 1, 1], stride: 4}"], ["{type: avgpool, kernel: 2, stride: 4}"])
    (line,) = check(text)
    assert line.startswith(f"{at(text, 'stride: 4')}: warning: layer 1 'conv1' (conv): stride [4, 4] leaves")
    assert "the last 2 rows and 2 columns of the input [4, 32, 32] unread" in line
    assert unread_by_torch(text) == (2, 2)


def test_said_once_for_a_block_used_twice(check) -> None:
    """In a block used twice on [4, 32, 32], the warning is at the block's line, once, the other use counted."""
    text = (
        "name: t\ninput: [4, 32, 32]\nblocks:\n  down:\n    layers:\n      - type: concat\n        branches:\n"
        "          a: [{type: conv, shape: [4, 4, 1, 1], stride: 2}]\n"
        "          b: [{type: maxpool, kernel: 1, stride: 2}]\n"
        "layers:\n  - {type: down, name: one}\n  - {type: conv, shape: [8, 4, 1, 1], padding: 8}\n"
        "  - {type: down, name: two}\n"
    )
    (line,) = check(text)
    assert line == (
        f"{at(text, 'stride: 2')}: warning: layer 'one.conv1' (conv): stride [2, 2] leaves the last 1 row and 1 column "
        "of the input [4, 32, 32] unread; torch drops them silently; in block 'down' used as one at line 11 "
        "(and 1 more use of the block)"
    )
