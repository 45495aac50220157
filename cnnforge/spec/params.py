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


DECLARATION = frozenset({"default", "choices", "description"})  # a parameter written as a mapping


def declared(data: Any) -> dict[str, Any]:
    """The parameters a spec's data declares, with their defaults (as written: a default may be an expression
    over the parameters before it)."""
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        return {}
    return {name: _default(value) for name, value in params.items()}


def _default(value: Any) -> Any:
    return value.get("default") if isinstance(value, dict) else value


def resolve(data: Any, bindings: Mapping[str, Value] | None = None) -> dict[str, Value]:
    """Every declared parameter's value: bound from outside, else its default, which may use the parameters
    declared before it (`width: '${planes * 4}'`); a parameter with `choices` takes one of them.

    >>> resolve({"params": {"depth": {"default": 16, "choices": [11, 16]}, "half": "${depth // 2}"}}, {"depth": 11})
    {'depth': 11, 'half': 5}
    """
    params = data.get("params") if isinstance(data, dict) else None
    values: dict[str, Value] = {}
    for name, written in (params if isinstance(params, dict) else {}).items():
        at: Path = ("params", name)
        choices = None
        if isinstance(written, dict):
            unknown = sorted(set(map(str, written)) - DECLARATION)
            if unknown or "default" not in written:
                why = f"unknown key '{unknown[0]}'" if unknown else "no default"
                raise ParamError(
                    f"parameter '{name}': {why}; a parameter is a value, or {{default: value, choices: [...], "
                    "description: text}",
                    at,
                )
            choices = written.get("choices")
            if choices is not None and (
                not isinstance(choices, list) or not choices or not all(isinstance(c, Value) for c in choices)
            ):
                raise ParamError(f"parameter '{name}': 'choices' is a list of the values it may take", (*at, "choices"))
            written, at = written["default"], (*at, "default")
        if name in (bindings or {}):
            value = bindings[name]  # type: ignore[index]
        elif is_expression(written):
            known = f"declared before it: {', '.join(values) or 'none'}"
            try:
                value = evaluate(written, values, lambda _, known=known: known)
            except ExprError as error:
                raise ParamError(error.message, at) from None
        else:
            value = written
        if not isinstance(value, Value) or value is None:
            raise ParamError(f"parameter '{name}' must be a number, true/false or a string", at)
        if choices is not None and not any(value == c and type(value) is type(c) for c in choices):
            shown = ", ".join(_word(c) for c in choices)
            raise ParamError(f"parameter '{name}' is one of {shown}; found {_word(value)}", ("params", name))
        values[name] = value
    return values


def _word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def substitute(source: Source, bindings: Mapping[str, Value] | None = None) -> Source:
    """A copy of `source` with every `${name}` outside the layers and blocks replaced by the bound value, else
    the declared default; the layers' are the Expander's, which knows blocks and repetitions.

    >>> from .source import parse
    >>> substitute(parse("params: {n: 10}\\ninput: [1, '${n}', 8]"), {"n": 2}).data["input"]
    [1, 2, 8]
    """
    params = declared(source.data)
    for name in bindings or {}:
        if name not in params:
            known = ", ".join(params) or "none"
            raise ParamError(
                f"cannot set parameter '{name}': the spec declares no such parameter (declared: {known})", ("params",)
            )
    values = resolve(source.data, bindings)

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

    data = replace(source.data, ())
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data["params"] = values  # resolved: what the layers and blocks read
    return dataclasses.replace(source, data=data)
