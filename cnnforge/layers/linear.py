"""Fully connected layers, and flatten, which turns a feature map into features for them."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Literal

from .base import Checks, Layer, Shape, show
from .fields import Flag, Ints
from .memory import INPUT, Kept
from .receptive import Field
from .registry import register

if TYPE_CHECKING:
    from torch import nn


@register
class Flatten(Layer):
    """[C, H, W] -> [C*H*W] (torch.nn.Flatten); features pass through. Example: `{type: flatten}`."""

    type: Literal["flatten"]

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        return (prod(x),)

    def receptive_field(self, x: Shape, field: Field) -> Field | None:
        return field  # each feature is one position of the map before it

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return ()

    def view(self) -> bool:
        return True

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Flatten()


@register
class Linear(Layer):
    """Fully connected layer, `shape: [F_i, F_o]` (torch.nn.Linear). Example: `{type: linear, shape: [400, 120]}`."""

    type: Literal["linear"]
    shape: Ints("F_i", "F_o", description="[F_i, F_o]: in and out features")
    bias: Flag = True
    """Learn an additive bias per output feature."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        f_i, f_o = self.shape
        if len(x) != 1:
            hint = "" if f_i == prod(x) else f", and set F_i to {prod(x)}"
            checks.error(
                f"linear needs features [F], but the incoming tensor is a feature map {show(x)}; "
                f"insert {{type: flatten}} before it (it gives {prod(x)} features){hint}"
            )
        else:
            checks.require(f_i == x[0], lambda: f"shape says F_i={f_i} but the incoming tensor has {x[0]} features")
        return (f_o,)

    def receptive_field(self, x: Shape, field: Field) -> Field | None:
        return Field(field.h.whole(), field.w.whole())  # every output reads every input feature

    def mixes_channels(self) -> bool:
        return True

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (INPUT,)

    def first_axis(self) -> int | None:
        return self.shape[0]

    def params(self, x: Shape) -> int:
        f_i, f_o = self.shape
        return f_i * f_o + (f_o if self.bias else 0)

    def macs(self, x: Shape, y: Shape) -> int:
        return self.shape[0] * self.shape[1]

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Linear(*self.shape, bias=self.bias)
