"""Normalisation: batch norm over channels or features, and AlexNet's local response norm."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from .base import Checks, Layer, Shape, show
from .fields import Number, PositiveNumber, Probability, Size
from .registry import register

if TYPE_CHECKING:
    from torch import nn


@register
class BatchNorm(Layer):
    """Batch normalisation: BatchNorm2d on [C, H, W], BatchNorm1d on [F]. Example: `{type: batchnorm}`."""

    type: Literal["batchnorm"]
    channels: Size | None = None
    """Channels (or features) normalised; checked against the input when given."""
    eps: PositiveNumber = 1e-5
    """Added to the variance for numerical stability."""
    momentum: Probability | None = Field(0.1)
    """Weight of the newest batch in the running statistics; null for a cumulative average."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        checks.require(
            self.channels in (None, x[0]),
            lambda: (
                f"channels={self.channels} but the incoming tensor has {x[0]} "
                f"{'channels' if len(x) == 3 else 'features'} {show(x)}"
            ),
        )
        return x

    def params(self, x: Shape) -> int:
        return 2 * x[0]

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        norm = nn.BatchNorm2d if len(x) == 3 else nn.BatchNorm1d
        return norm(x[0], self.eps, self.momentum)


@register
class LRN(Layer):
    """Local response normalisation across channels, as in AlexNet (torch.nn.LocalResponseNorm).
    Example: `{type: lrn, size: 5, alpha: 1e-4, beta: 0.75, k: 2}`."""

    type: Literal["lrn"]
    size: Size
    """Neighbouring channels in the sum."""
    alpha: Number = 1e-4
    """Multiplicative factor."""
    beta: Number = 0.75
    """Exponent."""
    k: Number = 1.0
    """Additive factor."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        return x if self.feature_map(x, checks) else None

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
