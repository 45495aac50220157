"""Pooling: max, average and min over a sliding window, and adaptive pooling to a fixed size."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Literal

from .axis import Adaptive, Axis
from .base import Checks, Layer, Shape, show
from .fields import Flag, PadPair, Pair
from .memory import INPUT, Kept
from .registry import register
from .window import Window, slide

if TYPE_CHECKING:
    from torch import nn


class _Pool(Layer):
    """Fields and shape rule shared by the windowed pooling kinds."""

    kernel: Pair
    """Window size: an integer or [k_h, k_w]."""
    stride: Pair | None = None
    """Step of the window: an integer or [s_h, s_w]; default: the kernel."""
    padding: PadPair = (0, 0)
    """Implicit padding on each side; at most half the kernel."""
    ceil_mode: Flag = False
    """Round the output size up, keeping a last partial window (one starting in the right padding is dropped)."""

    def strides(self) -> tuple[int, int]:
        return self.stride or self.kernel

    def dilations(self) -> tuple[int, int]:
        return 1, 1

    def axes(self, x: Shape) -> tuple[Axis, Axis] | None:
        return tuple(  # type: ignore[return-value]
            Window(k, s, p, p, d, self.ceil_mode, pool=True, stride_is_kernel=self.stride is None)
            for k, s, p, d in zip(self.kernel, self.strides(), self.padding, self.dilations(), strict=True)
        )

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        if not self.feature_map(x, checks):
            return None
        halves = [k // 2 for k in self.kernel]
        checks.require(
            all(p <= h for p, h in zip(self.padding, halves, strict=True)),
            lambda: (
                f"padding {show(self.padding)} is more than half the kernel {show(self.kernel)} "
                f"(at most {show(halves)})"
            ),
            "padding",
        )
        hw = slide(x, self.axes(x), checks)  # type: ignore[arg-type]
        return (x[0], *hw) if hw else None


@register
class MaxPool(_Pool):
    """Max over each window (torch.nn.MaxPool2d). Example: `{type: maxpool, kernel: 3, stride: 2}`."""

    type: Literal["maxpool"]
    dilation: Pair = (1, 1)
    """Spacing between window taps: an integer or [d_h, d_w]."""

    def dilations(self) -> tuple[int, int]:
        return self.dilation

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return INPUT, Kept.new(prod(y), itemsize=8)  # the input, and where each maximum was (int64)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.MaxPool2d(self.kernel, self.strides(), self.padding, self.dilation, ceil_mode=self.ceil_mode)


@register
class MinPool(_Pool):
    """Min over each window, -maxpool(-x). Example: `{type: minpool, kernel: 2}`."""

    type: Literal["minpool"]
    dilation: Pair = (1, 1)
    """Spacing between window taps: an integer or [d_h, d_w]."""

    def dilations(self) -> tuple[int, int]:
        return self.dilation

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return Kept.new(prod(x)), Kept.new(prod(y), itemsize=8)  # -x, which the max pool reads, and its indices

    def module(self, x: Shape) -> nn.Module:
        from ..modules import MinPool2d

        return MinPool2d(self.kernel, self.strides(), self.padding, self.dilation, ceil_mode=self.ceil_mode)


@register
class AvgPool(_Pool):
    """Mean over each window (torch.nn.AvgPool2d). Example: `{type: avgpool, kernel: 2}`."""

    type: Literal["avgpool"]
    count_include_pad: Flag = True
    """Count padding zeros in the mean's divisor."""

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (INPUT,)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.AvgPool2d(self.kernel, self.strides(), self.padding, self.ceil_mode, self.count_include_pad)


class _AdaptivePool(Layer):
    output: Pair
    """Output size: an integer or [h, w]."""

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        return (x[0], *self.output) if self.feature_map(x, checks) else None

    def axes(self, x: Shape) -> tuple[Axis, Axis] | None:
        return Adaptive(self.output[0]), Adaptive(self.output[1])


@register
class AdaptiveAvgPool(_AdaptivePool):
    """Average pooling to a fixed output size (torch.nn.AdaptiveAvgPool2d).
    Example: `{type: adaptive_avgpool, output: 6}`."""

    type: Literal["adaptive_avgpool"]

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return () if self.output == (1, 1) else (INPUT,)  # torch takes a 1x1 output as a mean, which keeps nothing

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(self.output)


@register
class AdaptiveMaxPool(_AdaptivePool):
    """Max pooling to a fixed output size (torch.nn.AdaptiveMaxPool2d).
    Example: `{type: adaptive_maxpool, output: 1}`."""

    type: Literal["adaptive_maxpool"]

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return INPUT, Kept.new(prod(y), itemsize=8)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveMaxPool2d(self.output)
