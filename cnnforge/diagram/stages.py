"""A compiled spec as stages: each layer that computes a new map or features, with the pointwise layers after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compiler import Compiled, CompiledLayer
from ..layers import Shape

POINTWISE_SHAPES = ("flatten",)  # kinds that reshape without computing anything: they join the stage before them


@dataclass
class Stage:
    """One drawn map or bar: the layer that makes it (`head`, None for the input), the layers after it that keep
    its values' shape (relu, batchnorm, dropout, ... and flatten), and the map or features it draws."""

    head: CompiledLayer | None
    shape: Shape
    followers: list[CompiledLayer] = field(default_factory=list)

    @property
    def layers(self) -> list[CompiledLayer]:
        return ([self.head] if self.head else []) + self.followers

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def is_map(self) -> bool:
        return len(self.shape) == 3

    @property
    def role(self) -> str:
        """How the stage is coloured: "input", "conv" (a map computed with weights), "pool" (a map computed without)
        or "linear" (features)."""
        if self.head is None:
            return "input"
        if not self.is_map:
            return "linear"
        return "conv" if self.head.params else "pool"

    @property
    def operation(self) -> str:
        """What the head computes, e.g. "conv 11x11 /4" or "maxpool 3x3 /2"; "input" for the input."""
        return operation(self.head) if self.head else "input"

    @property
    def after(self) -> str:
        """The followers' kinds, e.g. "relu · lrn"; "" when there are none."""
        return " · ".join(layer.type for layer in self.followers)

    @property
    def kernel(self) -> tuple[int, int] | None:
        """The head's window (K_h, K_w) on the map before it, if it slides one."""
        return window(self.head) if self.head else None


def starts_stage(layer: CompiledLayer) -> bool:
    """A layer with weights of its own (conv, linear) or one that changes the shape (pooling) starts a stage."""
    if layer.type in POINTWISE_SHAPES:
        return False
    return window(layer) is not None or layer.output != layer.input or _weight_shape(layer) is not None


def stages(compiled: Compiled) -> list[Stage]:
    """The stages of a spec without errors, the input first."""
    assert compiled.ok and compiled.spec is not None
    found = [Stage(None, tuple(compiled.spec.input))]
    for layer in compiled.layers:
        if starts_stage(layer):
            assert layer.output is not None
            found.append(Stage(layer, layer.output))
        else:
            found[-1].followers.append(layer)
    return found


def _weight_shape(layer: CompiledLayer) -> tuple[int, ...] | None:
    shape = getattr(layer.layer, "shape", None)
    return tuple(shape) if shape is not None else None


def window(layer: CompiledLayer) -> tuple[int, int] | None:
    """(K_h, K_w) of a conv's kernel or a pool's window; None for layers that slide none."""
    shape = _weight_shape(layer)
    if shape is not None and len(shape) == 4:
        return shape[2], shape[3]
    kernel = getattr(layer.layer, "kernel", None)
    return tuple(kernel) if kernel is not None else None


def pair(values: tuple[int, int] | list[int], sep: str = "x") -> str:
    """(3, 3) -> "3x3"; (3, 1) -> "3x1"."""
    return f"{values[0]}{sep}{values[1]}"


def operation(layer: CompiledLayer) -> str:
    """A short label for what a layer computes: "conv 11x11 /4", "maxpool 3x3 /2", "linear", ..."""
    fields = layer.layer
    kernel = window(layer)
    if kernel is None:
        output = getattr(fields, "output", None)  # adaptive pooling's output size
        return f"{layer.type} → {pair(output)}" if output is not None else layer.type
    label = f"{layer.type} {pair(kernel)}"
    stride = tuple(getattr(fields, "strides", lambda: fields.stride)())
    if stride != (1, 1):
        label += f" /{stride[0]}" if stride[0] == stride[1] else f" /{pair(stride)}"
    extras = []
    dilation = tuple(getattr(fields, "dilation", (1, 1)))
    if dilation != (1, 1):
        extras.append(f"dilation {dilation[0] if dilation[0] == dilation[1] else pair(dilation)}")
    groups = getattr(fields, "groups", 1)
    if groups != 1:
        extras.append(f"{groups} groups")
    return ", ".join([label, *extras])


def compact(n: int) -> str:
    """A count in three significant digits: 156, 2.42k, 70.3M, 1.85G."""
    units = ["", "k", "M", "G", "T"]
    value, unit = float(n), 0
    while unit < len(units) - 1 and float(f"{value:.3g}") >= 1000:
        value, unit = value / 1000, unit + 1
    return f"{value:.3g}{units[unit]}" if unit else str(n)
