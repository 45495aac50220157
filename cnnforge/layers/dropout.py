"""Dropout: zeroes elements at random while training; the shape passes through unchanged."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Literal

from .base import Pointwise, Shape
from .fields import Probability
from .memory import Kept
from .registry import register

if TYPE_CHECKING:
    from torch import nn


@register
class Dropout(Pointwise):
    """Zero each element with probability p while training (torch.nn.Dropout). Example: `{type: dropout, p: 0.5}`."""

    type: Literal["dropout"]
    p: Probability = 0.5
    """Probability of zeroing an element, in [0, 1]."""

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        """The scaled mask it multiplied by (on the CPU: float32); torch returns the input itself for p = 0 and
        multiplies by a single zero for p = 1."""
        if self.p == 0:
            return ()
        return (Kept.new(1, per_sample=False),) if self.p == 1 else (Kept.new(prod(x)),)

    def view(self) -> bool:
        return self.p == 0

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Dropout(self.p)
