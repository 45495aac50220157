"""One diagnostic type for every problem cnnforge reports: CLI, JSON, pre-commit and training."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """A problem at a place in a spec file, in the `file:line:col: severity: message` form."""

    file: str
    message: str
    severity: Severity = "error"
    line: int | None = None
    column: int | None = None
    layer_index: int | None = None
    layer_name: str | None = None
    layer_type: str | None = None
    layer_path: str | None = None  # the node's module path, e.g. "layer2.0.conv2", inside blocks and repeats

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        layer = ""
        if self.layer_path is not None and self.layer_path != self.layer_name:  # inside a group
            layer = f"layer '{self.layer_path}' ({self.layer_type}): "
        elif self.layer_type is not None:
            layer = f"layer {self.layer_index} '{self.layer_name}' ({self.layer_type}): "
        elif self.layer_index is not None:
            layer = f"layer {self.layer_index}: "
        return _printable(f"{where}: {self.severity}: {layer}{self.message}")

    def to_json(self) -> dict:
        return asdict(self)


def _printable(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped: one diagnostic is one line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


class SpecError(Exception):
    """A spec that cannot be compiled; `diagnostics` says why and where."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))
