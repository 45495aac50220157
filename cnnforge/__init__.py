"""cnnforge: convolutional networks described as data, shape-checked before anything runs."""

from typing import Any

from .compiler import Compiled, CompiledLayer, check_file, compile_file, compile_spec
from .diagnostics import Diagnostic, SpecError

__all__ = [
    "Compiled",
    "CompiledLayer",
    "Diagnostic",
    "SpecError",
    "check_file",
    "compile_file",
    "compile_spec",
    "load",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`cnnforge.load` (cnnforge.use.load), imported when first used: torch stays out of `cnnforge check`."""
    if name == "load":
        from .use import load

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
