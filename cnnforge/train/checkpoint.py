"""Checkpoints: written atomically (a temporary file, then a rename), so a crash never leaves a torn one."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import Refused
from ..files import replace

FORMAT = "cnnforge-checkpoint/1"


def save(obj: dict[str, Any], path: Path) -> Path:
    """torch.save `obj` to `path` atomically: readers see the old file or the new one, never a partial one.
    Raises WriteError (naming the file) when it cannot be written."""
    return replace(Path(path), lambda file: torch.save({"format": FORMAT, **obj}, file))


class CheckpointError(Refused):
    """A file that is not a readable cnnforge checkpoint."""


# What every command that reads a checkpoint relies on, by key (parents before children), and its type.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "model": dict,
    "spec": dict,
    "spec.name": str,
    "spec.file": str,
    "spec.text": str,
    "spec.bindings": dict,
    "config": dict,
    "config.data": dict,
    "data": dict,
    "data.name": str,
    "data.classes": list,
    "prepare": dict,
    "prepare.source": list,
    "prepare.target": list,
    "prepare.scale": (int, float),
    "prepare.mean": list,
    "prepare.std": list,
    "progress": dict,
    "progress.epoch": int,
}


# What resuming a run relies on besides.
RESUMABLE: dict[str, type | tuple[type, ...]] = {
    **REQUIRED,
    "optimizer": dict,
    "scaler": dict,
    "rng": dict,
    "config.optim": dict,
    "config.sched": dict,
    "config.trainer": dict,
    "progress.step": int,
    "progress.history": list,
}


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def incomplete(state: dict[str, Any], required: dict[str, type | tuple[type, ...]] = REQUIRED) -> str | None:
    """What a checkpoint's state lacks of `required`, or holds of the wrong type; None when it is complete."""
    for key, kind in required.items():
        *parents, last = key.split(".")
        holder = state
        for parent in parents:
            holder = holder[parent]
        if last not in holder:
            return f"missing {key!r}"
        if not isinstance(holder[last], kind) or isinstance(holder[last], bool):
            return f"{key!r} is a {type(holder[last]).__name__}, not a {_names(kind)}"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        return "'model' holds other things than named tensors"
    if not all(isinstance(c, str) for c in state["data"]["classes"]):
        return "'data.classes' holds other things than class names"
    prepare = state["prepare"]
    shapes = (prepare["source"], prepare["target"])
    if not all(len(shape) == 3 and all(type(n) is int and n > 0 for n in shape) for shape in shapes):
        return "'prepare.source' and 'prepare.target' must be [C, H, W] of positive whole numbers"
    if not all(
        len(prepare[k]) == shapes[1][0] and all(type(v) in (int, float) for v in prepare[k]) for k in ("mean", "std")
    ):
        return "'prepare.mean' and 'prepare.std' must be lists of a number per channel of 'prepare.target'"
    return None


def mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """The first way the weights `found` differ from those a model `expected`; None when they fit."""
    for name, tensor in expected.items():
        if name not in found:
            return f"{name} {list(tensor.shape)} is missing"
        if found[name].shape != tensor.shape:
            return f"{name} is {list(found[name].shape)} in the file, {list(tensor.shape)} in the spec"
    extra = [name for name in found if name not in expected]
    return f"the file has {extra[0]}, which the spec has not" if extra else None


def _refusal(error: Exception, what: str) -> str:
    """Why torch's weights-only unpickler refused a file, in one line, without torch's advice to load it
    unrestricted."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return (
            f"refused: the file holds Python code (a pickled object, {found[1]}), which cnnforge never runs; "
            "only tensors and plain values are read"
        )
    return f"not a readable {what} (not a file that torch.save wrote, or one that holds other things than tensors)"


def read_tensors(path: Path, what: str = "checkpoint") -> Any:
    """What torch.save wrote to `path`, loaded on the CPU by torch's weights-only unpickler: only tensors and plain
    Python values are read, so a file from elsewhere cannot run code. CheckpointError names the file and says why
    it was refused, calling it a `what`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: {_refusal(error, what)}") from None
    except Exception as error:  # torch raises many kinds for a file that it did not write
        first = str(error).strip().partition("\n")[0]
        raise CheckpointError(f"{path}: not a readable {what} ({type(error).__name__}: {first})") from None


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `save`, loaded on the CPU (read_tensors: a checkpoint from elsewhere cannot run
    code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    state = read_tensors(path)
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
