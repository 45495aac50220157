"""Normalisation: batch norm over channels or features, layer norm over the channels at each position (or over
the features), and AlexNet's local response norm."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from .base import Checks, Pointwise, Shape, show
from .fields import Flag, Number, PositiveNumber, Probability, Size
from .memory import INPUT, Kept
from .receptive import Field as Receptive
from .registry import register

if TYPE_CHECKING:
    from torch import nn


@register
class BatchNorm(Pointwise):
    """Batch normalisation: BatchNorm2d on [C, H, W], BatchNorm1d on [F]. Example: `{type: batchnorm}`."""

    type: Literal["batchnorm"]
    channels: Size | None = None
    """Channels (or features) normalised; checked against the input when given."""
    eps: PositiveNumber = 1e-5
    """Added to the variance for numerical stability."""
    momentum: Probability | None = Field(0.1)
    """Weight of the newest batch in the running statistics; null for a cumulative average."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        return _channels(self.channels, x, checks)

    def params(self, x: Shape) -> int:
        return 2 * x[0]

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return INPUT, Kept.new(2 * x[0], per_sample=False)  # and the batch's mean and 1/std per channel

    def first_axis(self) -> int | None:
        return self.channels

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        norm = nn.BatchNorm2d if len(x) == 3 else nn.BatchNorm1d
        return norm(x[0], self.eps, self.momentum)


@register
class LayerNorm(Pointwise):
    """Layer normalisation over the channels at each position of [C, H, W] (torchvision's ConvNeXt LayerNorm2d), or
    over the features of [F] (torch.nn.LayerNorm). Example: `{type: layernorm, eps: 1e-6}`."""

    type: Literal["layernorm"]
    channels: Size | None = None
    """Channels (or features) normalised; checked against the input when given."""
    eps: PositiveNumber = 1e-5
    """Added to the variance for numerical stability (ConvNeXt uses 1e-6)."""
    affine: Flag = True
    """Learn a scale and a bias per channel (torch's elementwise_affine)."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        return _channels(self.channels, x, checks)

    def receptive_field(self, x: Shape, field: Receptive) -> Receptive | None:
        if len(x) == 3:
            return field  # each position's channels, and nothing else, make its output
        return Receptive(field.h.whole(), field.w.whole())  # every feature reads every other one, as in a linear layer

    def params(self, x: Shape) -> int:
        return 2 * x[0] if self.affine else 0

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        positions = x[1] * x[2] if len(x) == 3 else 1
        return INPUT, Kept.new(2 * positions)  # and the mean and 1/std of each position

    def first_axis(self) -> int | None:
        return self.channels

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        from ..modules import LayerNorm2d

        norm = LayerNorm2d if len(x) == 3 else nn.LayerNorm
        return norm(x[0], self.eps, elementwise_affine=self.affine)


@register
class LRN(Pointwise):
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

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        """torch computes it in steps (F.local_response_norm): x*x padded with size - 1 channels for an
        average pool, then (k + alpha*avg)^beta, and x divided by that; kept are x, the padded squares, and the
        base and the result of the power."""
        c, h, w = x
        return INPUT, Kept.new((c + self.size - 1) * h * w), Kept.new(2 * prod(x))

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)


def _channels(channels: int | None, x: Shape, checks: Checks) -> Shape:
    """`x`, after checking the `channels` a normalisation layer says it takes, if it says."""
    checks.require(
        channels in (None, x[0]),
        lambda: (
            f"channels={channels} but the incoming tensor has {x[0]} "
            f"{'channels' if len(x) == 3 else 'features'} {show(x)}"
        ),
    )
    return x
