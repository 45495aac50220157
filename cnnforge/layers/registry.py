"""Layer kinds by name: `@register` adds one, `lookup` finds one and suggests near misses. The kinds of installed
plugins join the built-in ones the first time the registry is read (cnnforge/layers/plugins.py)."""

from __future__ import annotations

import difflib
import threading
import typing
from collections.abc import Iterator, MutableMapping

from .base import Layer
from .merge import MERGES

# The `type` words of the graph's own entries (merges and `sequence`, which spec/graph.py reads): no kind takes one.
STRUCTURE = frozenset({*MERGES, "sequence"})


class RegistryError(ValueError):
    """A class that cannot be registered: not a Layer, no `type` tag, or a tag taken by another kind."""


class Registry(MutableMapping[str, type[Layer]]):
    """The registered layer kinds by their `type` tag. Reading it loads the installed plugins' kinds once, first
    (a plugin that cannot be loaded raises plugins.PluginError, then and at every later read)."""

    def __init__(self) -> None:
        self._kinds: dict[str, type[Layer]] = {}
        self._lock = threading.RLock()
        self._state: typing.Literal["unloaded", "loading", "loaded"] = "unloaded"
        self._error: str | None = None

    def load_plugins(self) -> None:
        """Load the installed plugins' kinds, if not done yet; raise plugins.PluginError if one cannot be."""
        if self._state != "loaded":
            with self._lock:  # re-entrant: a plugin's own @register, while it loads, reads the built-in kinds
                if self._state == "unloaded":
                    self._state = "loading"
                    try:
                        self._error = _load()
                    finally:
                        self._state = "loaded"
        if self._error is not None:
            from .plugins import PluginError

            raise PluginError(self._error)

    def add(self, cls: type[Layer], kind: str) -> None:
        """Register `cls` as `kind`, without loading the plugins first (the built-in kinds register so)."""
        if kind in self._kinds and self._kinds[kind] is not cls:
            taken = self._kinds[kind]
            raise RegistryError(f"layer kind '{kind}' is already registered by {taken.__module__}.{taken.__qualname__}")
        self._kinds[kind] = cls

    def __getitem__(self, kind: str) -> type[Layer]:
        self.load_plugins()
        return self._kinds[kind]

    def __setitem__(self, kind: str, cls: type[Layer]) -> None:
        self.load_plugins()
        self.add(cls, kind)

    def __delitem__(self, kind: str) -> None:
        self.load_plugins()
        del self._kinds[kind]

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(self._kinds)

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._kinds)

    def __contains__(self, kind: object) -> bool:
        self.load_plugins()
        return kind in self._kinds

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._kinds)})"


LAYERS = Registry()


def _load() -> str | None:
    """Load the installed plugins' kinds; what went wrong, if anything."""
    from .plugins import PluginError, load

    try:
        load(register)
    except PluginError as error:
        return str(error)
    return None


def register(cls: type[Layer]) -> type[Layer]:
    """Register a layer class under the tag of its `type: Literal["..."]` field.

    >>> @register
    ... class Square(Layer):
    ...     type: typing.Literal["square"]
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise RegistryError(f"{cls!r} is not a subclass of cnnforge.layers.Layer")
    tags = typing.get_args(cls.model_fields["type"].annotation)
    if len(tags) != 1 or not isinstance(tags[0], str):
        raise RegistryError(f'{cls.__qualname__} needs a field `type: Literal["kind"]` naming its one kind')
    (kind,) = tags
    if kind in STRUCTURE:
        raise RegistryError(f"layer kind '{kind}' is a word of the spec format ({', '.join(sorted(STRUCTURE))})")
    LAYERS.add(cls, kind)
    cls.kind = kind
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
