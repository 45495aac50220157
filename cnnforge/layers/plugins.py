"""Layer kinds from other packages, without forking cnnforge: an installed distribution names, in the entry point
group `cnnforge.layers`, modules whose @register calls add kinds, or Layer subclasses for cnnforge to register.

    [project.entry-points."cnnforge.layers"]
    blur_pool = "cnnforge_blurpool"                          # a module: importing it registers its kinds
    channel_shuffle = "cnnforge_blurpool:ChannelShuffle"     # a Layer subclass, registered here

The registry loads them the first time it is read. Only installed distributions are read: nothing a spec file
says makes cnnforge import code.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

from .base import Layer
from .registry import RegistryError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "cnnforge.layers"
MAX_CAUSE = 300  # characters of an import error's message kept in the one line said


class PluginError(Exception):
    """A plugin whose kinds cannot be loaded; its message, one line, names the distribution and entry point."""


def load(register: Callable[[type[Layer]], type[Layer]]) -> None:
    """Import each entry point of the group, in the order of distribution and entry point names, and register the
    classes named; the first that fails raises PluginError."""
    for entry in sorted(entry_points(), key=lambda e: (_distribution(e), e.name)):
        try:
            found = entry.load()
            if isinstance(found, types.ModuleType):
                continue  # its @register calls did the work
            if not (isinstance(found, type) and issubclass(found, Layer)):
                what = f"a {type(found).__name__}" if not isinstance(found, type) else f"the class {found.__qualname__}"
                raise PluginError(f"{_where(entry)}: names {what}, not a module or a cnnforge.layers.Layer subclass")
            register(found)
        except RegistryError as error:
            raise PluginError(f"{_where(entry)}: {error}") from None
        except PluginError:
            raise
        except Exception as error:
            raise PluginError(f"{_where(entry)}: cannot import it: {_one_line(error)}") from None


def entry_points() -> list[EntryPoint]:
    """The group's entry points, as importlib.metadata.entry_points(group=GROUP) finds them (of a distribution
    found twice on the path, the first), but parsing the entry points of those distributions alone that declare
    the group: parsing every installed distribution's would cost each `cnnforge check` several milliseconds more."""
    from importlib.metadata import distributions

    found: list[EntryPoint] = []
    seen: set[str] = set()
    for dist in distributions():
        text = dist.read_text("entry_points.txt")
        if not text or f"[{GROUP}]" not in text:
            continue
        name = re.sub(r"[-_.]+", "-", dist.metadata.get("Name", "")).lower()  # PEP 503
        if name not in seen:
            seen.add(name)
            found += dist.entry_points.select(group=GROUP)
    return found


def _distribution(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _where(entry: EntryPoint) -> str:
    return f"layer plugin '{entry.name} = {entry.value}' of {_distribution(entry)} (entry point group {GROUP})"


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {'; '.join(lines)}" if lines else type(error).__name__
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 3] + "..."
