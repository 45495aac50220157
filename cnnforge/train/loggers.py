"""Where a run's metrics go, as the `logger` config group says: metrics.csv and curves.png always, and TensorBoard's
event files with logger=tensorboard. A logger is told after every epoch everything logged so far and writes what is
new to it; another logger (MLflow's file store, say) is one more class here and one more option in conf/logger/."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import metrics

DRAW_EVERY = 10.0  # seconds between redrawings of curves.png during a run


@dataclass
class Logged:
    """A run's metrics so far: epoch rows, step rows ({epoch, step, lr}) where the learning rate changed within
    epochs, and how many optimizer steps an epoch has."""

    title: str
    rows: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    steps_per_epoch: int


class Logger(Protocol):
    def epoch(self, logged: Logged) -> None:
        """After an epoch: record what is new in `logged`."""
        ...

    def close(self) -> None: ...


@dataclass
class CsvLogger:
    """metrics.csv after every epoch, and curves.png at most every DRAW_EVERY seconds and when the run ends (drawing
    takes about a second, longer than an epoch of a small network): each rewritten whole and atomically."""

    run_dir: Path
    drawn: float = field(default=-math.inf)  # when curves.png was last drawn (time.monotonic)
    pending: Logged | None = None  # what curves.png does not show yet

    def epoch(self, logged: Logged) -> None:
        metrics.write_csv(logged.rows, self.run_dir / "metrics.csv", logged.steps)
        self.pending = logged
        if time.monotonic() - self.drawn >= DRAW_EVERY:
            self._draw()

    def _draw(self) -> None:
        if self.pending is not None:
            logged, self.pending = self.pending, None
            metrics.plot(logged.rows, self.run_dir / "curves.png", logged.title, logged.steps, logged.steps_per_epoch)
            self.drawn = time.monotonic()

    def close(self) -> None:
        self._draw()


@dataclass
class TensorBoardLogger:
    """TensorBoard event files in RUN/`dir`: every epoch row's numbers as scalars (train/loss, val/acc, ...) and
    the learning rate of each step, all at their optimizer step. A resumed run drops what the stopped one logged
    after its checkpoint."""

    folder: Path
    start: int  # optimizer steps done before this run (a resumed one's)
    writer: Any = None
    done: int = field(default=0)  # epoch rows written

    def __post_init__(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.folder), purge_step=self.start or None)

    def epoch(self, logged: Logged) -> None:
        new_rows = [row for row in logged.rows if row["epoch"] > self.done]
        epochs = {row["epoch"] for row in new_rows}
        for step in logged.steps:
            if step["epoch"] in epochs:
                self.writer.add_scalar("lr/step", step["lr"], step["step"])
        for row in new_rows:
            at = row["epoch"] * logged.steps_per_epoch
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    self.writer.add_scalar(_tag(key), value, at)
        if new_rows:
            self.done = new_rows[-1]["epoch"]
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _tag(key: str) -> str:
    """A metrics.csv column as a TensorBoard tag: train_loss -> train/loss, ema_val_acc -> ema_val/acc."""
    head, _, tail = key.rpartition("_")
    if key in ("lr", "seconds", "images_per_s"):
        return f"epoch/{key}"
    return f"{head}/{tail}" if head else key


def make(config: Any, run_dir: Path, start: int, epochs_done: int) -> list[Logger]:
    """The loggers of config.logger for a run in `run_dir` that has done `start` steps and `epochs_done` epochs."""
    loggers: list[Logger] = [CsvLogger(run_dir)]
    if config.logger.name == "tensorboard":
        loggers.append(TensorBoardLogger(run_dir / config.logger.dir, start, done=epochs_done))
    return loggers
