"""`augment`: what augmentation does to accuracy on small data, in validation accuracy (%): LeNet-5 (arch=lenet)
trained by `cnnforge train`'s Trainer on a tenth of the digits' training split (data=digits,
data.train_fraction=0.1: 143 of 1,438 images, stratified) for 100 epochs, with augment=shift_rotate (random
rotations of up to 10 degrees and shifts of up to a tenth of the side, the shipped defaults) against
augment=none, with trainer.seed 0 to 9; at a seed both start from the same weights and see the same batches.
Rows: each seed's validation accuracy (359 images) at its best epoch and after the last, and their mean ± standard
deviation over the seeds; the difference, shift_rotate - none, is taken seed by seed, in percentage points.
Target: a mean difference above twice its standard error.

With --quick, seed 0 for 2 epochs: a smoke test. A full run is 20 runs of 100 epochs (300 steps each at the
default batch of 64).
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnforge.builder import build
from cnnforge.train.app import CONF, normalise, prepare_run
from cnnforge.train.loop import Trainer
from cnnforge.train.settings import validate

from .loops import compose_config
from .report import Measure, Row, number
from .timing import Stat

SEEDS = tuple(range(10))
# Training loss, mean over 10 epochs, at seed 99 (not one of SEEDS): without augmentation flat from about epoch 40
# (0.009 over epochs 31-40, 0.003 over 91-100); with shift_rotate still falling at 60 (0.22 over 51-60, 0.09 over
# 91-100, 0.06 over 111-120).
EPOCHS = 100
QUICK_EPOCHS = 2
ARMS = ("shift_rotate", "none")  # augmented, and the baseline
OVERRIDES = [
    "arch=lenet",
    "data=digits",
    "data.train_fraction=0.1",
    "trainer.device=cpu",
    "trainer.checkpoint.last=false",
    "trainer.checkpoint.best=false",
]
METHOD = (
    "The augment rows are accuracies, not times: each figure comes from a whole training run of cnnforge's Trainer, "
    "and the validation accuracy is read after every epoch. Both arms of a seed start from the same weights and see "
    "the same batches in the same order, so the difference is taken seed by seed (paired). Over the seeds, figures "
    "are the mean ± the sample standard deviation, with the lowest and highest in brackets; the target is checked "
    "against the mean difference divided by its standard error (standard deviation / √seeds)."
)


@dataclass(frozen=True)
class Run:
    """One training run's outcome: validation accuracy after every epoch, the last epoch's training loss, and the
    number of training images."""

    accuracies: list[float]
    train_loss: float
    images: int

    @property
    def best(self) -> float:
        return max(self.accuracies)

    @property
    def best_epoch(self) -> int:
        return self.accuracies.index(self.best) + 1

    @property
    def final(self) -> float:
        return self.accuracies[-1]


def train(overrides: list[str]) -> Run:
    """A run of `cnnforge train` with OVERRIDES and `overrides`, set up as the app sets one up (validate, compile,
    load, seed, normalise, build), trained epoch by epoch as Trainer.fit does, without its loggers: redrawing
    curves.png after every epoch takes longer than training one here."""
    config = compose_config([*OVERRIDES, *overrides])
    validate(config)
    plan = prepare_run(config, str(CONF / "data" / "digits.yaml"))
    torch.manual_seed(config.trainer.seed)
    normalise(plan.prepare, config, plan.data)
    model = build(plan.compiled)
    meta = {"spec": {"name": plan.compiled.spec.name}}
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, model, plan.data, plan.prepare, torch.device("cpu"), Path(run_dir), meta)
        trainer.tty = False
        for epoch in range(config.trainer.epochs):
            trainer.train_epoch(epoch)
            trainer._end_epoch(epoch)
    history = trainer.progress.history
    return Run([row["val_acc"] for row in history], history[-1]["train_loss"], len(plan.data.train))


def run(quick: bool = False) -> list[Row]:
    """The summary rows (best, then final accuracy over the seeds), then each seed's two rows."""
    seeds, epochs = ((0,), QUICK_EPOCHS) if quick else (SEEDS, EPOCHS)
    runs: dict[str, list[Run]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            done = train([f"augment={arm}", f"trainer.seed={seed}", f"trainer.epochs={epochs}"])
            runs[arm].append(done)
            print(
                f"  seed {seed}, augment={arm}: best {done.best:.4f}, final {done.final:.4f}",
                file=sys.stderr,
                flush=True,
            )
    title = f"LeNet-5, digits, train_fraction 0.1 ({runs[ARMS[0]][0].images} images), {epochs} epochs"
    ours, base = (runs[arm] for arm in ARMS)
    summaries = [summary(title, which, seeds, ours, base) for which in ("best", "final")]
    per_seed = [row for i, seed in enumerate(seeds) for row in seed_rows(title, seed, ours[i], base[i])]
    return [*summaries, *per_seed]


def percent(runs: list[Run], which: str) -> list[float]:
    """Each run's best or final validation accuracy, in %."""
    return [100 * getattr(run, which) for run in runs]


def differences(ours: list[Run], base: list[Run], which: str) -> list[float]:
    """Seed by seed, the best or final accuracy of the augmented arm minus the baseline's, in percentage points."""
    return [x - y for x, y in zip(percent(ours, which), percent(base, which), strict=True)]


def compared(
    case: str, which: str, ours: list[Run], base: list[Run], note: str, target: str = "", met: bool | None = None
) -> Row:
    """A row of the best or final accuracies of both arms, and their seed-by-seed differences."""
    return Row(
        "augment",
        case,
        Measure(ARMS[0], "%", Stat.of(percent(ours, which)), "mean"),
        Measure(ARMS[1], "%", Stat.of(percent(base, which)), "mean"),
        Stat.of(differences(ours, base, which)),
        f"{ARMS[0]} - {ARMS[1]} validation accuracy, percentage points",
        target,
        met,
        note,
        difference=True,
    )


def summary(title: str, which: str, seeds: tuple[int, ...], ours: list[Run], base: list[Run]) -> Row:
    """The mean ± standard deviation over the seeds; met when the mean difference is above twice its standard
    error (no target for one seed)."""
    d = Stat.of(differences(ours, base, which))
    higher, lower = sum(x > 0 for x in d.values), sum(x < 0 for x in d.values)
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    note = f"{span}; {ARMS[0]} higher on {higher}, lower on {lower}, equal on {len(seeds) - higher - lower}"
    case = f"{title}: {which} validation accuracy, {len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
    if len(seeds) == 1:
        return compared(case, which, ours, base, note)
    error = d.sd / math.sqrt(len(seeds))
    note += f"; standard error of the mean difference: {number(error)}"
    return compared(case, which, ours, base, note, "mean > 2 standard errors", d.mean > 2 * error)


def seed_rows(title: str, seed: int, ours: Run, base: Run) -> list[Row]:
    """One seed's best accuracy (with the epoch that gave it) and final accuracy (with the last training loss)."""
    epochs = f"best epoch: {ours.best_epoch} ({ARMS[0]}), {base.best_epoch} ({ARMS[1]})"
    loss = f"last training loss: {ours.train_loss:.3g} ({ARMS[0]}), {base.train_loss:.3g} ({ARMS[1]})"
    return [
        compared(f"{title}, seed {seed}: best validation accuracy", "best", [ours], [base], epochs),
        compared(f"{title}, seed {seed}: final validation accuracy", "final", [ours], [base], loss),
    ]
