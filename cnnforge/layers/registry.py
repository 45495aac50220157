"""Layer kinds by name: `@register` adds one, `lookup` finds one and suggests near misses."""

from __future__ import annotations

import difflib
import typing

from .base import Layer

LAYERS: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    """Register a layer class under the tag of its `type: Literal["..."]` field.

    >>> @register
    ... class Square(Layer):
    ...     type: typing.Literal["square"]
    """
    (kind,) = typing.get_args(cls.model_fields["type"].annotation)
    if kind in LAYERS and LAYERS[kind] is not cls:
        raise ValueError(f"layer kind {kind!r} is already registered by {LAYERS[kind].__qualname__}")
    cls.kind = kind
    LAYERS[kind] = cls
    return cls


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    """The choice closest to `word`, ignoring case, if one is close enough."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""
