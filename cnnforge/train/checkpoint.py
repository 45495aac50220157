"""Checkpoints: written atomically (a temporary file, then a rename), so a crash never leaves a torn one."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from ..files import replace

FORMAT = "cnnforge-checkpoint/1"


def save(obj: dict[str, Any], path: Path) -> Path:
    """torch.save `obj` to `path` atomically: readers see the old file or the new one, never a partial one.
    Raises WriteError (naming the file) when it cannot be written."""
    return replace(Path(path), lambda file: torch.save({"format": FORMAT, **obj}, file))


class CheckpointError(Exception):
    """A file that is not a readable cnnforge checkpoint."""


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `save`, loaded on the CPU. Only tensors and plain Python values are read (torch's
    weights_only unpickler), so a checkpoint from elsewhere cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cnnforge checkpoint")
    return state


def rng_state() -> dict[str, Any]:
    """Every random number generator a training step draws from."""
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
