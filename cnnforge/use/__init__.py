"""Using a trained network: `load` a checkpoint of `cnnforge train` and classify images with it, from Python or
through the commands evaluate, predict, explain and features (one module each here); `export` it, and run the
exported file without torch (exported.py)."""

from typing import Any

__all__ = ["Trained", "load"]


def __getattr__(name: str) -> Any:
    """`Trained` and `load`, imported when first used: `predict model=FILE.onnx` runs without torch."""
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
