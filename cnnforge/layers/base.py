"""The layer model: every layer kind owns its fields, shape rule, counts and torch factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from .fields import LayerName

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]  # one sample: (C, H, W) for a feature map, (F,) for features


def show(shape: Shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Checks:
    """Collects one layer's problems; `field` names the key a problem belongs to, if any."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str, str | None]] = []  # (severity, message, field)

    def error(self, message: str, field: str | None = None) -> None:
        self.found.append(("error", message, field))

    def warning(self, message: str, field: str | None = None) -> None:
        self.found.append(("warning", message, field))

    def require(self, condition: bool, message: Callable[[], str], field: str | None = None) -> bool:
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

    def feature_map(self, x: Shape, checks: Checks) -> bool:
        """Require a [C, H, W] input, as every spatial layer does."""
        return checks.require(
            len(x) == 3,
            lambda: (
                f"{self.kind} needs a [C, H, W] feature map, but the incoming tensor is "
                f"features {show(x)}; a {self.kind} cannot follow flatten"
            ),
        )
