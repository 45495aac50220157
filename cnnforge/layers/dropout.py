"""Dropout: zeroes elements at random while training; the shape passes through unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .base import Layer, Shape
from .fields import Probability
from .registry import register

if TYPE_CHECKING:
    from torch import nn


@register
class Dropout(Layer):
    """Zero each element with probability p while training (torch.nn.Dropout). Example: `{type: dropout, p: 0.5}`."""

    type: Literal["dropout"]
    p: Probability = 0.5
    """Probability of zeroing an element, in [0, 1]."""

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Dropout(self.p)
