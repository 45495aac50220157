"""The training loop: epochs of steps, validation, metrics, checkpoints, Ctrl-C and NaN handling.

Per-step metrics stay on the device and are read only at log time, so a step never waits for the host.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from . import checkpoint, metrics
from .data import Data, Prepare, Split

log = logging.getLogger("cnnforge.train")


AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}  # trainer.precision -> autocast dtype


def check_settings(trainer: Any) -> list[str]:
    """What is wrong with the trainer config, before anything is allocated."""
    problems = []
    if str(trainer.precision) not in AUTOCAST:
        problems.append(f"trainer.precision must be 32, bf16 or 16-mixed, found {trainer.precision}")
    for key, low in (("epochs", 0), ("batch_size", 1), ("log_every", 1)):
        value = trainer[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"trainer.{key} must be an integer >= {low}, found {value}")
    return problems


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """Ctrl-C: the run stopped after saving `path`."""

    def __init__(self, path: Path, epoch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.path, self.epoch, self.step = path, epoch, step


@dataclass
class Progress:
    """Where a run is: completed epochs, batches done in the current one and their sums, and the history."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    best: float = -1.0


class DeviceError(Exception):
    """A device that is not a device name, or that this machine does not have."""


def pick_device(name: str) -> torch.device:
    """`auto` is the first of cuda, mps and cpu that is available; any other name must be available here."""
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"{name}: not a device (auto, cpu, cuda, cuda:N or mps)") from None
    count = {"cpu": 1, "cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0, "mps": int(mps)}
    if count.get(device.type, 1) <= (device.index or 0):
        raise DeviceError(f"{name}: this machine has no such device (auto picks what it has)")
    return device


class Trainer:
    """Trains `model` on `data` as `config` (the composed Hydra config) says, writing into `run_dir`."""

    def __init__(
        self,
        config: DictConfig,
        model: nn.Module,
        data: Data,
        prepare: Prepare,
        device: torch.device,
        run_dir: Path,
        meta: dict[str, Any],
    ) -> None:
        self.config, self.trainer = config, config.trainer
        self.model, self.data, self.prepare, self.device = model.to(device), data, prepare, device
        self.run_dir, self.meta = run_dir, meta
        self.optimizer = instantiate(config.optim, params=model.parameters())
        self.scheduler = instantiate(config.sched, optimizer=self.optimizer) if config.sched.get("_target_") else None
        precision = str(self.trainer.precision)
        self.autocast_dtype = AUTOCAST[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
        self.progress = Progress()
        self.stop_requested = False
        self.tty = sys.stderr.isatty()

    # -- checkpoints -------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "progress": asdict(self.progress),
            "rng": checkpoint.rng_state(),
            **self.meta,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer, scheduler, progress and random states."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        progress = Progress(**state["progress"])
        saved = state["config"]["trainer"]["batch_size"]
        if progress.step and saved != self.trainer.batch_size:
            raise ValueError(f"it stopped mid-epoch with trainer.batch_size={saved}; resume with that batch size")
        self.progress = progress
        checkpoint.set_rng_state(state["rng"])

    # -- the loop ----------------------------------------------------------------------------------------------

    def fit(self) -> float:
        """Train until trainer.epochs; return the best validation accuracy."""
        previous = signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        try:
            epochs = range(self.progress.epoch, self.trainer.epochs)
            for epoch in tqdm(
                epochs,
                desc="epochs",
                disable=not self.tty,
                initial=self.progress.epoch,
                total=self.trainer.epochs,
                position=0,
            ):
                self.train_epoch(epoch)
                self._end_epoch(epoch)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.progress.best

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop_requested = True  # said by the loop: writing to a stream here could interrupt a write in progress

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _batches(self, split: Split, epoch: int | None, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches on the device; shuffled by a generator seeded from (seed, epoch) so a resumed run sees
        exactly the batches an uninterrupted one would."""
        generator = None
        if epoch is not None:
            generator = torch.Generator().manual_seed(self.trainer.seed * 1_000_003 + epoch)
        for x, y in split.batches(self.trainer.batch_size, generator, skip):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int) -> None:
        p, model = self.progress, self.model
        model.train()
        steps = math.ceil(len(self.data.train) / self.trainer.batch_size)
        loss_sum = torch.tensor(p.loss_sum, device=self.device)
        correct = torch.tensor(p.correct, device=self.device)
        bad_step = torch.tensor(-1, device=self.device)  # first step whose loss was not finite
        start, seen_at_start = time.perf_counter() - p.seconds, p.seen
        bar = tqdm(
            total=steps, initial=p.step, desc=f"epoch {epoch + 1}", leave=False, disable=not self.tty, position=1
        )
        for x, y in self._batches(self.data.train, epoch, skip=p.step):
            with self._autocast():
                out = model(self.prepare(x))
                loss = F.cross_entropy(out.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss = loss.detach()
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), p.step, bad_step)
            loss_sum += loss * len(y)
            correct += (out.argmax(dim=1) == y).sum()
            p.step += 1
            p.seen += len(y)
            bar.update()
            if p.step % self.trainer.log_every == 0 or p.step == steps or self.stop_requested:
                p.loss_sum, p.correct = loss_sum.item(), int(correct.item())
                p.seconds = time.perf_counter() - start
                self._check_finite(bad_step, epoch)
                rate = (p.seen - seen_at_start) / max(p.seconds, 1e-9)
                stats = {"loss": p.loss_sum / p.seen, "acc": p.correct / p.seen, "img/s": rate}
                bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()})
                if not self.tty:
                    log.info(
                        "epoch %d/%d step %d/%d loss %.4f acc %.4f %.0f img/s",
                        epoch + 1,
                        self.trainer.epochs,
                        p.step,
                        steps,
                        stats["loss"],
                        stats["acc"],
                        rate,
                    )
            if self.stop_requested:
                bar.close()
                log.warning("Ctrl-C: saving a checkpoint before stopping (press again to stop at once)")
                raise Interrupted(checkpoint.save(self.state(), self.run_dir / "interrupted.pt"), epoch, p.step)
        bar.close()

    def _check_finite(self, bad_step: torch.Tensor, epoch: int) -> None:
        step = int(bad_step.item())
        if step >= 0:
            raise NonFiniteLoss(
                f"the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1}; "
                "try a lower optim.lr, or trainer.precision=32"
            )

    def evaluate(self, split: Split) -> tuple[float, float, torch.Tensor]:
        """Mean loss, accuracy and confusion matrix on `split`."""
        batches = self._batches(split, None)
        return evaluate(self.model, batches, self.prepare, len(self.data.classes), self._autocast)

    def _end_epoch(self, epoch: int) -> None:
        p = self.progress
        val_loss, val_acc, _ = self.evaluate(self.data.val)
        if not math.isfinite(val_loss):
            raise NonFiniteLoss(f"the validation loss is NaN or infinite after epoch {epoch + 1}")
        row = {
            "epoch": epoch + 1,
            "train_loss": p.loss_sum / max(p.seen, 1),
            "train_acc": p.correct / max(p.seen, 1),
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": p.seconds,
            "images_per_s": p.seen / max(p.seconds, 1e-9),
        }
        if self.scheduler:
            self.scheduler.step()
        improved = val_acc > p.best
        p.history.append(row)
        p.best = max(p.best, val_acc)
        p.epoch, p.step, p.loss_sum, p.correct, p.seen, p.seconds = epoch + 1, 0, 0.0, 0, 0, 0.0
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.3g | %.1f s, %.0f img/s",
            epoch + 1,
            self.trainer.epochs,
            row["train_loss"],
            row["train_acc"],
            val_loss,
            val_acc,
            row["lr"],
            row["seconds"],
            row["images_per_s"],
        )
        if self.trainer.checkpoint.last:
            checkpoint.save(self.state(), self.run_dir / "last.pt")
        if self.trainer.checkpoint.best and improved:
            checkpoint.save(self.state(), self.run_dir / "best.pt")
        metrics.write_csv(p.history, self.run_dir / "metrics.csv")
        metrics.plot(p.history, self.run_dir / "curves.png", f"{self.meta['spec']['name']} on {self.data.name}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    prepare: Prepare,
    classes: int,
    autocast: Any = contextlib.nullcontext,
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and confusion matrix (rows: true class, columns: predicted) over `batches`."""
    model.eval()
    loss_sum, confusion = torch.zeros(()), torch.zeros(classes * classes, dtype=torch.long)
    for x, y in batches:
        with autocast():
            out = model(prepare(x))
        loss_sum = loss_sum.to(y.device) + F.cross_entropy(out.float(), y, reduction="sum")
        confusion = confusion.to(y.device) + torch.bincount(y * classes + out.argmax(dim=1), minlength=classes**2)
    confusion = confusion.view(classes, classes).cpu()
    n = max(int(confusion.sum()), 1)
    return loss_sum.item() / n, int(confusion.trace()) / n, confusion


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
