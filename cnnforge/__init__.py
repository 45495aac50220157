"""cnnforge: convolutional networks described as data, shape-checked before anything runs."""

from .compiler import Compiled, CompiledLayer, check_file, compile_file, compile_spec
from .diagnostics import Diagnostic, SpecError

__all__ = ["Compiled", "CompiledLayer", "Diagnostic", "SpecError", "check_file", "compile_file", "compile_spec"]
__version__ = "0.1.0"
