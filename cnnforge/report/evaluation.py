"""A run's checkpoint on its validation split: the spec it holds, and its Scores (loss, accuracy, top-5 accuracy,
confusion matrix, accuracy per class)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from ..compiler import Compiled
from ..train.data import DataError, load
from ..train.loop import pick_device
from ..train.scores import Scores, evaluate
from ..use import load as load_trained

BATCH = 256


@dataclass
class Evaluation:
    """The checkpoint's spec compiled, and how its model does on the validation split (rows: true class)."""

    checkpoint: Path
    compiled: Compiled
    epoch: int  # epochs trained when it was saved
    data: str
    classes: list[str]
    samples: int
    scores: Scores


def run(path: Path) -> Evaluation:
    """Load the checkpoint at `path` and evaluate it on the data it was trained on, on the best device there is.
    Raises CheckpointError or DataError, with a message for the page."""
    trained = load_trained(path)
    model, prepare, state, compiled = trained.model, trained.prepare, trained.state, trained.compiled
    data = load(OmegaConf.create(state["config"]["data"]), tuple(prepare.target))
    if data.classes != state["data"]["classes"]:
        raise DataError(f"{data.name} now has classes {data.classes}, the run had {state['data']['classes']}")
    if tuple(data.shape) != tuple(prepare.source):
        prepare = prepare.for_source(data.shape, data.scale)
    device = pick_device("auto")
    batches = ((x.to(device), y.to(device)) for x, y in data.val.batches(BATCH))
    scores = evaluate(model.to(device), batches, prepare, len(data.classes), device=device)
    epoch = state["progress"]["epoch"]
    return Evaluation(path, compiled, epoch, data.name, data.classes, len(data.val), scores)
