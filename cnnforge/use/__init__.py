"""Using a trained network: `load` a checkpoint of `cnnforge train` and classify images with it, from Python or
through the commands evaluate, predict, explain and features (one module each here)."""

from .model import Trained, load

__all__ = ["Trained", "load"]
