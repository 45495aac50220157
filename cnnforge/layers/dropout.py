"""Dropout, which zeroes elements at random while training, and stochastic depth, which zeroes whole samples;
the shape passes through unchanged."""

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


@register
class StochasticDepth(Pointwise):
    """While training, zero each sample (or the whole batch) with probability p and scale the rest by 1/(1 - p), as
    ConvNeXt and EfficientNet do to a residual branch (torchvision.ops.StochasticDepth).
    Example: `{type: stochastic_depth, p: 0.1}`."""

    type: Literal["stochastic_depth"]
    p: Probability
    """Probability of zeroing a sample (or the batch), in [0, 1]."""
    mode: Literal["row", "batch"] = "row"
    """'row': each sample of the batch is kept or zeroed on its own; 'batch': the whole batch together."""

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        """The scaled keep-or-zero factor it multiplied by, one float per sample (per batch in 'batch' mode);
        nothing for p = 0, where it returns its input itself."""
        if self.p == 0:
            return ()
        return (Kept.new(1, per_sample=self.mode == "row"),)

    def view(self) -> bool:
        return self.p == 0

    def module(self, x: Shape) -> nn.Module:
        from ..modules import StochasticDepth

        return StochasticDepth(self.p, self.mode)
