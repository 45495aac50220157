"""Convolution: `{type: conv, shape: [C_i, C_o, K_h, K_w]}`, computed by torch.nn.Conv2d."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from .axis import Axis
from .base import Checks, Layer, Shape, plural, show
from .fields import ConvPadding, Flag, Ints, Pair, Size
from .memory import INPUT, Kept
from .registry import register
from .window import Window, slide

if TYPE_CHECKING:
    from torch import nn


@register
class Conv(Layer):
    """2-D convolution (torch.nn.Conv2d). Example: `{type: conv, shape: [3, 64, 11, 11], stride: 4, padding: 2}`."""

    type: Literal["conv"]
    shape: Ints("C_i", "C_o", "K_h", "K_w", description="[C_i, C_o, K_h, K_w]: in and out channels, kernel size")
    stride: Pair = (1, 1)
    """Step of the window: an integer or [s_h, s_w]."""
    padding: ConvPadding = (0, 0)
    """Rows/columns added per side: an integer, [p_h, p_w], 'same' (keeps the size; stride 1 only) or 'valid' (0)."""
    dilation: Pair = (1, 1)
    """Spacing between kernel taps: an integer or [d_h, d_w]."""
    groups: Size = 1
    """Channel groups; must divide C_i and C_o."""
    bias: Flag = True
    """Learn an additive bias per output channel."""
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = Field("zeros")
    """How padding rows are filled."""

    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(before, after) padding per axis; 'same' puts the odd row after, as torch does."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.shape[2:], strict=True)]
            return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
        return tuple((p, p) for p in self.padding)  # type: ignore[return-value]

    def windows(self) -> tuple[Window, Window]:
        return tuple(  # type: ignore[return-value]
            Window(k, s, lo, hi, d, padding_mode=self.padding_mode)
            for k, s, (lo, hi), d in zip(self.shape[2:], self.stride, self.pads(), self.dilation, strict=True)
        )

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        c_i, c_o, _, _ = self.shape
        if not self.feature_map(x, checks):
            return None
        checks.require(
            c_i == x[0], lambda: f"shape says C_i={c_i} but the incoming tensor has {plural(x[0], 'channel')} {show(x)}"
        )
        checks.require(
            c_i % self.groups == 0 and c_o % self.groups == 0,
            lambda: f"groups={self.groups} must divide both C_i={c_i} and C_o={c_o}",
            "groups",
        )
        checks.require(
            self.padding != "same" or self.stride == (1, 1),
            lambda: f"padding 'same' needs stride 1, found stride {show(self.stride)} (torch refuses strided 'same')",
            "padding",
        )
        self._mode_fits(x, checks)
        hw = slide(x, self.windows(), checks)
        return (c_o, *hw) if hw else None

    def _mode_fits(self, x: Shape, checks: Checks) -> None:
        """reflect padding must be smaller than the input; circular padding may wrap at most once."""
        pads = [max(p) for p in self.pads()]
        if self.padding_mode == "reflect":
            checks.require(
                all(p < s for p, s in zip(pads, x[1:], strict=True)),
                lambda: f"reflect padding {show(pads)} must be smaller than the input {show(x)}",
                "padding_mode",
            )
        if self.padding_mode == "circular":
            checks.require(
                all(p <= s for p, s in zip(pads, x[1:], strict=True)),
                lambda: f"circular padding {show(pads)} wraps around the input {show(x)} more than once",
                "padding_mode",
            )

    def first_axis(self) -> int | None:
        return self.shape[0]

    def params(self, x: Shape) -> int:
        c_i, c_o, k_h, k_w = self.shape
        return c_o * (c_i // self.groups) * k_h * k_w + (c_o if self.bias else 0)

    def macs(self, x: Shape, y: Shape) -> int:
        c_i, c_o, k_h, k_w = self.shape
        return y[1] * y[2] * c_o * (c_i // self.groups) * k_h * k_w

    def torchinfo_macs(self, x: Shape, y: Shape) -> int:
        return self.params(x) * y[1] * y[2]

    def axes(self, x: Shape) -> tuple[Axis, Axis] | None:
        return self.windows()

    def mixes_channels(self) -> bool:
        return self.groups == 1

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        """The tensor the convolution reads: the input, or a padded copy of it. torch pads a copy first for
        reflect, replicate and circular padding (reflect and replicate padding keep their input too, to pass a
        gradient back), and for zero 'same' padding whose total on an axis is odd, where one side gets a row more."""
        (top, bottom), (left, right) = self.pads()
        if self.padding_mode != "zeros":
            copy = Kept.new(x[0] * (x[1] + top + bottom) * (x[2] + left + right))
            return (copy, INPUT) if grad and self.padding_mode != "circular" else (copy,)
        odd_h, odd_w = (top + bottom) % 2, (left + right) % 2
        return (Kept.new(x[0] * (x[1] + odd_h) * (x[2] + odd_w)),) if odd_h or odd_w else (INPUT,)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        c_i, c_o, k_h, k_w = self.shape
        return nn.Conv2d(
            c_i, c_o, (k_h, k_w), self.stride, self.padding, self.dilation, self.groups, self.bias, self.padding_mode
        )
