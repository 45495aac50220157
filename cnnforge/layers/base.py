"""The layer model: every layer kind owns its fields, shape rule, counts and torch factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from .axis import SAME, Axis
from .fields import LayerName
from .memory import Kept
from .receptive import Field

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]  # one sample: (C, H, W) for a feature map, (F,) for features


def show(shape: Shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Checks:
    """Collects one layer's problems; `field` names the key a problem belongs to, if any (a tuple for a key
    inside another, such as ("branches", "shortcut"))."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str, str | tuple | None]] = []  # (severity, message, field)

    def error(self, message: str, field: str | tuple | None = None) -> None:
        self.found.append(("error", message, field))

    def warning(self, message: str, field: str | tuple | None = None) -> None:
        self.found.append(("warning", message, field))

    def require(self, condition: bool, message: Callable[[], str], field: str | tuple | None = None) -> bool:
        """Record an error built by `message()` unless `condition` holds; return `condition`."""
        if not condition:
            self.error(message(), field)
        return condition


class Layer(BaseModel):
    """Base of every layer kind; subclasses declare `type: Literal["kind"]` and register themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)

    type: str
    name: LayerName | None = None

    kind: ClassVar[str]  # the `type` tag, set by @register

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        """Shape of one output sample for input `x`; None when it cannot be known."""
        return x

    def params(self, x: Shape) -> int:
        """Learnable tensor elements."""
        return 0

    def macs(self, x: Shape, y: Shape) -> int:
        """Multiply-accumulates per sample, bias excluded."""
        return 0

    def torchinfo_macs(self, x: Shape, y: Shape) -> int:
        """MACs as torchinfo counts them: every parameter, bias included, once per sample."""
        return self.params(x)

    def module(self, x: Shape) -> nn.Module:
        """The torch module computing this layer on input `x`."""
        raise NotImplementedError(f"layer kind {self.kind!r} has no torch module")

    def axes(self, x: Shape) -> tuple[Axis, Axis] | None:
        """What this layer does along the rows and along the columns of the [C, H, W] input `x`; None for a
        layer that does not act axis by axis (flatten, linear) or does not say (a kind that defines no axes)."""
        return None

    def receptive_field(self, x: Shape, field: Field) -> Field | None:
        """The receptive field of this layer's output positions, given its input's; None when unknown."""
        axes = self.axes(x) if len(x) == 3 else None
        return None if axes is None else Field(axes[0].receptive(field.h), axes[1].receptive(field.w))

    def kept(self, x: Shape, y: Shape, grad: bool) -> tuple[Kept, ...] | None:
        """The tensors torch's autograd keeps for this layer's backward pass while training (float32, on the
        CPU), parameters aside; `grad` says whether the input needs a gradient. None when unknown."""
        return None

    def mixes_channels(self) -> bool:
        """Whether each output element reads every channel (or feature) of the input, not only its own."""
        return False

    def view(self) -> bool:
        """Whether the output is the input tensor itself or a view of it, so it takes no memory of its own."""
        return False

    def first_axis(self) -> int | None:
        """The size this layer requires of its input's first axis (channels, or features), if it requires one."""
        return None

    def feature_map(self, x: Shape, checks: Checks) -> bool:
        """Require a [C, H, W] input, as every spatial layer does."""
        return checks.require(
            len(x) == 3,
            lambda: (
                f"{self.kind} needs a [C, H, W] feature map, but the incoming tensor is "
                f"features {show(x)}; a {self.kind} cannot follow flatten"
            ),
        )


class Pointwise(Layer):
    """A layer whose output position (h, w) is computed from its input position (h, w) alone."""

    def axes(self, x: Shape) -> tuple[Axis, Axis] | None:
        return SAME, SAME

    def receptive_field(self, x: Shape, field: Field) -> Field | None:
        return field
