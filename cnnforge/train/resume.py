"""What a resumed run may change: the optimizer's settings, the schedule, the number of epochs, logging and
where it runs follow this run's config (and config.yaml says so); the network, the data and the optimizer's
kind stay the checkpoint's, and a run stopped mid-epoch also keeps its batch size and seed. Anything else is
refused in one line naming the key, before the run folder gets a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Data keys that say where the data is or how it is read, not what it is: they may change on resume.
DATA_LOCATION = ("root", "download", "num_workers", "memory_gb")
ADDED = {"train_fraction": 1.0}  # data keys added since checkpoints were first written, and the value they had


class ResumeError(Exception):
    """A checkpoint that this run cannot continue."""


def load(config: DictConfig) -> dict[str, Any]:
    """The checkpoint trainer.resume names, checked against what this run's config may change."""
    from . import checkpoint

    where = f"trainer.resume={config.trainer.resume}"
    try:
        state = checkpoint.load(config.trainer.resume)
    except checkpoint.CheckpointError as error:
        raise ResumeError(str(error)) from None
    if problem := checkpoint.incomplete(state, checkpoint.RESUMABLE):
        raise ResumeError(f"{where}: not a complete cnnforge checkpoint of a training run: {problem}")
    progress, saved = state["progress"], state["config"]
    if progress["epoch"] >= config.trainer.epochs:
        done = progress["epoch"]
        raise ResumeError(
            f"{where}: that run has finished: it trained {done} epoch{'s' if done != 1 else ''}, and this run "
            f"has trainer.epochs={config.trainer.epochs}; to train on, give trainer.epochs={done + 1} or more"
        )
    data = OmegaConf.to_container(config.data, resolve=True)
    fixed = [
        (f"data.{key}", saved["data"].get(key, ADDED.get(key)), value)
        for key, value in data.items()
        if key not in DATA_LOCATION
    ]
    fixed.append(("optim._target_", saved["optim"]["_target_"], config.optim._target_))
    key = "decay_norm_and_bias"  # the optimizer's parameter groups
    fixed.append((f"optim.{key}", saved["optim"].get(key, True), config.optim.get(key, True)))
    if progress["step"]:  # mid-epoch: the rest of the epoch must be the same batches
        fixed += [(f"trainer.{k}", saved["trainer"][k], config.trainer[k]) for k in ("batch_size", "seed")]
    for key, was, now in fixed:
        if was != now:
            why = "a resumed run keeps its data and its optimizer"
            if key.startswith("trainer"):
                why = "it stopped mid-epoch, so the rest of the epoch must be its batches"
            raise ResumeError(f"{where}: {key}={_show(now)}, but the checkpoint's run had {_show(was)}; {why}")
    return state


def check_spec(state: dict[str, Any], compiled: Any, config: DictConfig) -> None:
    """Refuse a checkpoint of another network than this run's spec, by name, before anything is built."""
    theirs = state["spec"]
    if theirs["name"] != compiled.spec.name:
        raise ResumeError(
            f"trainer.resume={config.trainer.resume}: this checkpoint is of `{theirs['name']}` (file "
            f"{theirs['file']}); the run's spec is `{compiled.spec.name}` (file {compiled.file})"
        )


def check_weights(state: dict[str, Any], meta: dict[str, Any], model: Any, config: DictConfig) -> list[str]:
    """Refuse a checkpoint whose weights do not fit `model` (this run's, built from meta["spec"]); return the
    lines that say which settings differ from the checkpoint's run and are taken from this run's config."""
    from .checkpoint import mismatch

    where = f"trainer.resume={config.trainer.resume}"
    theirs, ours = state["spec"], meta["spec"]
    if problem := mismatch(model.state_dict(), state["model"]):
        raise ResumeError(
            f"{where}: the checkpoint's `{theirs['name']}` (file {theirs['file']}) does not fit this run's spec "
            f"(file {ours['file']}): {problem}"
        )
    saved = state["config"]
    changed: list[str] = []
    for group in ("optim", "sched", "augment", "logger", "trainer"):
        now = OmegaConf.to_container(config[group], resolve=True)
        if group not in saved:  # a checkpoint of a cnnforge without the group
            changed.append(f"resuming with {group}={now.get('name')}: the checkpoint's run had no {group} settings")
            continue
        before = saved[group]
        for key in sorted(set(now) | set(before)):
            if key != "resume" and now.get(key) != before.get(key):
                was = _show(before.get(key))
                changed.append(f"resuming with {group}.{key}={_show(now.get(key))} (the checkpoint's run: {was})")
    return changed


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def carry_best(config: DictConfig, run_dir: Path, state: dict[str, Any]) -> str | None:
    """A run resumed into a new folder starts it with the best.pt of the run it continues (found beside the
    checkpoint, and of the same history), so the folder holds the best weights of the whole run; an epoch that
    beats them replaces them as usual. Returns the line that says so, or why it could not."""
    from ..files import replace
    from . import checkpoint

    source, target = Path(config.trainer.resume).parent / "best.pt", run_dir / "best.pt"
    if target.exists() or source.resolve() == target.resolve():
        return None
    try:
        best = checkpoint.load(source)
    except checkpoint.CheckpointError:
        return f"no best.pt beside {config.trainer.resume}: this run's best.pt comes with its first epoch that improves"
    accuracy = best.get("progress", {}).get("best")
    if accuracy != state["progress"].get("best") or best.get("spec", {}).get("text") != state["spec"]["text"]:
        return f"{source} is not the best of this checkpoint's run: an epoch that improves writes this run's best.pt"
    data = source.read_bytes()
    replace(target, lambda file: file.write(data))
    return f"best.pt: the best so far of the run it continues (validation accuracy {accuracy:.4f}), from {source}"
