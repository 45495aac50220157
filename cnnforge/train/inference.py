"""What cnnforge/report/evaluation.py imports from here, now that using a trained network lives in cnnforge.use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..use.model import compiled_spec, load
from .data import Prepare

__all__ = ["compiled_spec", "load_model"]


def load_model(path: str | Path) -> tuple[torch.nn.Module, Prepare, dict[str, Any]]:
    """The model, input preparation and loaded state of the checkpoint at `path`, as cnnforge.use.load reads it."""
    trained = load(path)
    return trained.model, trained.prepare, trained.state
