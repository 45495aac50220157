"""Element-wise activations, softmax and the identity: the shape passes through unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from .base import Pointwise, Shape
from .fields import Number
from .memory import INPUT, OUTPUT, Kept
from .registry import register

if TYPE_CHECKING:
    from torch import nn


class _Activation(Pointwise):
    """An activation built from the torch.nn class named by `torch_class`; its backward keeps its input or,
    where the derivative is cheaper from it, its output."""

    torch_class: ClassVar[str]
    keeps: ClassVar[Kept] = INPUT

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (self.keeps,)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return getattr(nn, self.torch_class)()


@register
class ReLU(_Activation):
    """max(0, x) (torch.nn.ReLU). Example: `{type: relu}`."""

    type: Literal["relu"]
    torch_class = "ReLU"
    keeps = OUTPUT


@register
class Tanh(_Activation):
    """Hyperbolic tangent (torch.nn.Tanh). Example: `{type: tanh}`."""

    type: Literal["tanh"]
    torch_class = "Tanh"
    keeps = OUTPUT


@register
class Sigmoid(_Activation):
    """Logistic sigmoid (torch.nn.Sigmoid). Example: `{type: sigmoid}`."""

    type: Literal["sigmoid"]
    torch_class = "Sigmoid"
    keeps = OUTPUT


@register
class GELU(_Activation):
    """Gaussian error linear unit (torch.nn.GELU). Example: `{type: gelu}`."""

    type: Literal["gelu"]
    torch_class = "GELU"


@register
class SiLU(_Activation):
    """x * sigmoid(x), also called swish (torch.nn.SiLU). Example: `{type: silu}`."""

    type: Literal["silu"]
    torch_class = "SiLU"


@register
class ELU(_Activation):
    """Exponential linear unit (torch.nn.ELU). Example: `{type: elu}`."""

    type: Literal["elu"]
    torch_class = "ELU"


@register
class ReLU6(_Activation):
    """min(max(0, x), 6), as in MobileNet (torch.nn.ReLU6). Example: `{type: relu6}`."""

    type: Literal["relu6"]
    torch_class = "ReLU6"


@register
class Hardswish(_Activation):
    """x * relu6(x + 3) / 6, as in MobileNetV3 (torch.nn.Hardswish). Example: `{type: hardswish}`."""

    type: Literal["hardswish"]
    torch_class = "Hardswish"


@register
class Hardsigmoid(_Activation):
    """relu6(x + 3) / 6, as in MobileNetV3's squeeze-and-excitation (torch.nn.Hardsigmoid).
    Example: `{type: hardsigmoid}`."""

    type: Literal["hardsigmoid"]
    torch_class = "Hardsigmoid"


@register
class LeakyReLU(Pointwise):
    """max(0, x) + negative_slope * min(0, x) (torch.nn.LeakyReLU).
    Example: `{type: leaky_relu, negative_slope: 0.2}`."""

    type: Literal["leaky_relu"]
    negative_slope: Number = 0.01
    """Slope for negative inputs."""

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (INPUT,)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.LeakyReLU(self.negative_slope)


@register
class Softmax(Pointwise):
    """Softmax over the features of [F], or the channels of [C, H, W] (torch.nn.Softmax(dim=1)).
    Example: `{type: softmax}`."""

    type: Literal["softmax"]

    def mixes_channels(self) -> bool:
        return True

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return (OUTPUT,)

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Softmax(dim=1)  # dim 0 is the batch


@register
class Identity(Pointwise):
    """The input itself, unchanged (torch.nn.Identity): a placeholder, such as where a block may hold a layer.
    Example: `{type: identity}`."""

    type: Literal["identity"]

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        return ()

    def view(self) -> bool:
        return True

    def module(self, x: Shape) -> nn.Module:
        from torch import nn

        return nn.Identity()
