"""Spec parameters: `params: {classes: 1000}` declares one with its default, `${classes}` uses it, and a
caller (training, or `cnnforge check --set classes=10`) may bind another value from outside the file."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .expr import ExprError, evaluate, is_expression
from .source import Path, Source

REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# What a spec is made of, not a setting of it: a layer's type and name, the network's name and description.
# A parameter stands for a number, true/false or one of a field's words (padding: same), never for these.
STRUCTURAL = frozenset({"type", "name", "description"})
Value = int | float | bool | str
GRAPH = frozenset({"params", "layers", "blocks"})  # top-level keys whose parameters substitute() leaves alone


class ParamError(Exception):
    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.message, self.path = message, path


def declared(data: Any) -> dict[str, Any]:
    """The parameters a spec's data declares, with their defaults."""
    params = data.get("params") if isinstance(data, dict) else None
    return dict(params) if isinstance(params, dict) else {}


def substitute(source: Source, bindings: Mapping[str, Value] | None = None) -> Source:
    """A copy of `source` with every `${name}` outside the layers and blocks replaced by the bound value, else
    the declared default; the layers' are the Expander's, which knows blocks and repetitions.

    >>> from .source import parse
    >>> substitute(parse("params: {n: 10}\\ninput: [1, '${n}', 8]"), {"n": 2}).data["input"]
    [1, 2, 8]
    """
    params = declared(source.data)
    for name, value in params.items():
        if not isinstance(value, Value) or value is None:
            raise ParamError(f"parameter '{name}' must be a number, true/false or a string", ("params", name))
    for name in bindings or {}:
        if name not in params:
            known = ", ".join(params) or "none"
            raise ParamError(
                f"cannot set parameter '{name}': the spec declares no such parameter (declared: {known})", ("params",)
            )
    values = {**params, **(bindings or {})}

    def replace(value: Any, path: Path) -> Any:
        if isinstance(value, dict):  # the layers and blocks are the graph's to read: spec.graph.Expander
            return {k: replace(v, (*path, k)) if path or k not in GRAPH else v for k, v in value.items()}
        if isinstance(value, list):
            return [replace(v, (*path, i)) for i, v in enumerate(value)]
        if is_expression(value):
            if path[-1] in STRUCTURAL:
                raise ParamError(
                    f"'{path[-1]}' cannot be a parameter ('{value}'): parameters stand for numbers, true/false "
                    "and words such as padding_mode's, not for a layer's type, a name or the description",
                    path,
                )
            known = f"declared: {', '.join(values) or 'none; declare it under params'}"
            try:
                return evaluate(value, values, lambda name: known)
            except ExprError as error:
                raise ParamError(error.message, path) from None
        return value

    return dataclasses.replace(source, data=replace(source.data, ()))
