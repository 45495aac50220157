"""Two layer kinds for cnnforge: blur_pool (anti-aliased downsampling, Zhang 2019, "Making Convolutional Networks
Shift-Invariant Again") and group_shuffle (ShuffleNet's channel shuffle). Torch is imported only when a network is
built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, Strict

from cnnforge.layers import Checks, Layer, Shape, register, show
from cnnforge.layers.base import Pointwise
from cnnforge.layers.fields import Size
from cnnforge.layers.window import Window

if TYPE_CHECKING:
    from torch import nn


@register  # this module is an entry point: importing it registers the kind
class BlurPool(Layer):
    """Blur each channel with a fixed binomial filter, then keep every `stride`-th row and column (antialiased-cnns'
    BlurPool). Example: `{type: blur_pool, kernel: 3, stride: 2}`."""

    type: Literal["blur_pool"]
    kernel: Annotated[int, Strict(), Field(ge=1, le=7)] = 3
    """Filter size, 1 to 7: binomial weights, [1, 2, 1] x [1, 2, 1] / 16 for 3."""
    stride: Size = 2
    """Keep every stride-th row and column."""

    def pads(self) -> tuple[int, int]:
        """Reflected rows before and after, kernel - 1 in all, as antialiased-cnns pads."""
        return (self.kernel - 1) // 2, self.kernel // 2

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        pad = max(self.pads())
        if not checks.require(
            pad < min(x[1:]), lambda: f"reflect padding {pad} must be smaller than the input {show(x)}", "kernel"
        ):
            return None
        return x[0], -(-x[1] // self.stride), -(-x[2] // self.stride)  # [C, H, W] -> [C, ceil(H/s), ceil(W/s)]

    def macs(self, x: Shape, y: Shape) -> int:
        return y[0] * y[1] * y[2] * self.kernel**2  # the filter is fixed: no parameters, params() stays 0

    def axes(self, x: Shape) -> tuple[Window, Window]:
        window = Window(self.kernel, self.stride, *self.pads(), padding_mode="reflect")
        return window, window  # what `cnnforge summary -a` needs for receptive fields

    def module(self, x: Shape) -> nn.Module:
        from ._torch import BlurPool2d

        return BlurPool2d(x[0], self.kernel, self.stride, self.pads())


class GroupShuffle(Pointwise):
    """Interleave the channels of `groups` groups, as ShuffleNet does (torch.nn.ChannelShuffle). Example:
    `{type: group_shuffle, groups: 2}`."""

    type: Literal["group_shuffle"]  # no @register: the entry point names this class, and cnnforge registers it
    groups: Size
    """Channel groups; must divide the channels."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        checks.require(
            x[0] % self.groups == 0, lambda: f"groups={self.groups} must divide the channels of {show(x)}", "groups"
        )
        return x

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.ChannelShuffle(self.groups)
