"""Layers that work across the channels at each position of a [C, H, W] map: a chunk of them, a shuffle of them
(ShuffleNet), a linear map of them and a learnable scale of each (ConvNeXt)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, Strict

from .base import Checks, Pointwise, Shape, plural, show
from .fields import MAX_SIZE, Flag, Ints, Number, Size
from .memory import INPUT, Kept
from .registry import register

if TYPE_CHECKING:
    from torch import nn

Index = Annotated[int, Strict(), Field(ge=0, le=MAX_SIZE)]


def chunk_sizes(channels: int, chunks: int) -> list[int]:
    """The channels of each part of torch.chunk(x, chunks, dim=1) for `channels` channels: parts of
    ceil(channels / chunks), the last one smaller, and so fewer than `chunks` parts when those fill the channels
    sooner (5 channels in 4 chunks: 2, 2, 1)."""
    size = -(-channels // chunks)
    return [min(size, channels - start) for start in range(0, channels, size)]


@register
class Chunk(Pointwise):
    """One part of a split of the channels, torch.chunk(x, chunks, dim=1)[index], as ShuffleNetV2 splits its input.
    Example: `{type: chunk, chunks: 2, index: 1}`."""

    type: Literal["chunk"]
    chunks: Size
    """Parts asked for; torch makes fewer when parts of ceil(C / chunks) channels fill the channels sooner."""
    index: Index
    """Which part, counting from 0."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        sizes = chunk_sizes(x[0], self.chunks)
        if not checks.require(self.index < len(sizes), lambda: self._past_the_end(x, sizes), "index"):
            return None
        return (sizes[self.index], *x[1:])

    def _past_the_end(self, x: Shape, sizes: list[int]) -> str:
        listing = ", ".join(map(str, sizes)) if len(sizes) <= 6 else f"{sizes[0]}, {sizes[1]}, ..., {sizes[-1]}"
        made = f"torch.chunk makes {plural(len(sizes), 'chunk')} of the {plural(x[0], 'channel')} of {show(x)}"
        if len(sizes) < self.chunks:
            made += f", not {self.chunks}: chunks of ceil({x[0]}/{self.chunks}) = {sizes[0]} channels ({listing})"
        else:
            made += f" ({listing} {'channel' if sizes == [1] else 'channels'})"
        return f"index={self.index} but {made}; index must be at most {len(sizes) - 1}"

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return ()

    def view(self) -> bool:
        return True

    def module(self, x: Shape) -> nn.Module:
        from ..modules import Chunk

        return Chunk(self.chunks, self.index)


@register
class ChannelShuffle(Pointwise):
    """Interleave the channels of `groups` groups, as ShuffleNet does (torch.nn.ChannelShuffle).
    Example: `{type: channel_shuffle, groups: 3}`."""

    type: Literal["channel_shuffle"]
    groups: Size
    """Groups of channels interleaved; must divide the channels."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        checks.require(
            x[0] % self.groups == 0,
            lambda: (
                f"groups={self.groups} must divide the channels, but the incoming tensor has "
                f"{plural(x[0], 'channel')} {show(x)}"
            ),
            "groups",
        )
        return x

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return ()  # its gradient is the inverse shuffle, which needs no tensor

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.ChannelShuffle(self.groups)


@register
class ChannelLinear(Pointwise):
    """A linear map of the channels at each position, `shape: [C_i, C_o]`: torch.nn.Linear on the map laid out
    channels last, as ConvNeXt's pointwise convolutions (its weights load by position).
    Example: `{type: channel_linear, shape: [96, 384]}`."""

    type: Literal["channel_linear"]
    shape: Ints("C_i", "C_o", description="[C_i, C_o]: in and out channels")
    bias: Flag = True
    """Learn an additive bias per output channel."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        c_i, c_o = self.shape
        if not checks.require(
            len(x) == 3,
            lambda: (
                f"channel_linear needs a [C, H, W] feature map, but the incoming tensor is features {show(x)}; "
                f"on features, use {{type: linear, shape: [{x[0]}, {c_o}]}}"
            ),
        ):
            return None
        checks.require(
            c_i == x[0], lambda: f"shape says C_i={c_i} but the incoming tensor has {plural(x[0], 'channel')} {show(x)}"
        )
        return (c_o, *x[1:])

    def params(self, x: Shape) -> int:
        c_i, c_o = self.shape
        return c_i * c_o + (c_o if self.bias else 0)

    def macs(self, x: Shape, y: Shape) -> int:
        return y[1] * y[2] * self.shape[0] * self.shape[1]

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (Kept.new(x[0] * x[1] * x[2]),)  # the input copied channels last, which the product reads

    def first_axis(self) -> int | None:
        return self.shape[0]

    def module(self, x: Shape) -> nn.Module:
        from ..modules import ChannelLinear

        return ChannelLinear(*self.shape, bias=self.bias)


@register
class LayerScale(Pointwise):
    """A learnable scale per channel, initialised to `init`, as ConvNeXt scales its residual branch (CNBlock's
    layer_scale, of shape [C, 1, 1]). Example: `{type: layer_scale, init: 1e-6}`."""

    type: Literal["layer_scale"]
    init: Number = 1e-6
    """The scale every channel starts with."""
    channels: Size | None = None
    """Channels scaled; checked against the input when given."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        checks.require(
            self.channels in (None, x[0]),
            lambda: f"channels={self.channels} but the incoming tensor has {plural(x[0], 'channel')} {show(x)}",
        )
        return x

    def params(self, x: Shape) -> int:
        return x[0]

    def torchinfo_macs(self, x: Shape, y: Shape) -> int:
        return 0  # torchinfo counts parameters named weight or bias, and this one is layer_scale

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (INPUT,)  # for the scale's gradient

    def first_axis(self) -> int | None:
        return self.channels

    def module(self, x: Shape) -> nn.Module:
        from ..modules import LayerScale

        return LayerScale(x[0], self.init)
