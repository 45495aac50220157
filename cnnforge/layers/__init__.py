"""Layer kinds, one module per family; importing this package registers the built-in ones, and the installed
plugins' kinds join them when the registry is first read (plugins.py)."""

from . import activation, channels, conv, dropout, linear, norm, pool  # noqa: F401  (registers the built-in kinds)
from .base import Checks, Layer, Shape, show
from .registry import LAYERS, register, suggest

__all__ = ["LAYERS", "Checks", "Layer", "Shape", "register", "show", "suggest"]
