"""The training loop: epochs of steps, validation, metrics, checkpoints, Ctrl-C and NaN handling.

Per-step metrics stay on the device and are read only at log time, so a step never waits for the host. With
several processes (torchrun) each trains on its share of every global batch, and process 0 alone writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from . import augment, checkpoint, loggers, schedule
from .data import Data, Prepare, Split, TensorSplit
from .distributed import Processes
from .scores import Scores, evaluate

log = logging.getLogger("cnnforge.train")


AUTOCAST = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}  # trainer.precision -> autocast dtype
DEVICE_MEMORY_SHARE = 0.25  # data_on_device=auto: in-memory data moves to the GPU when it takes at most this share


def keep_on_device(setting: bool | str, device_type: str, size: int, free: int | None) -> bool:
    """Whether in-memory data of `size` bytes should move to the device for good: always (true), never (false),
    or (auto) on a GPU when it takes at most DEVICE_MEMORY_SHARE of the `free` bytes there."""
    if device_type == "cpu" or setting is False:
        return False
    if setting is True:
        return True
    return device_type == "cuda" and free is not None and size <= DEVICE_MEMORY_SHARE * free


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """A stop signal (Ctrl-C's SIGINT, or SIGTERM): the run stopped after saving `path`."""

    def __init__(self, path: Path, epoch: int, step: int, signum: int = signal.SIGINT):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}")
        self.path, self.epoch, self.step, self.signum = path, epoch, step, signum


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
    lrs: list[float] = field(default_factory=list)  # the learning rate of each step of the current epoch
    steps: list[dict] = field(default_factory=list)  # {epoch, step, lr} of epochs whose learning rate changed
    reference: float = -1.0  # early stopping: the accuracy the next epochs must beat by min_delta
    plateau: int = 0  # early stopping: epochs since it was last beaten


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


class EMA(AveragedModel):
    """An exponential moving average of a model's weights and buffers (torch.optim.swa_utils.AveragedModel),
    updated after every step. Its decay warms up as TensorFlow's ExponentialMovingAverage's does, as
    min(decay, (1 + n) / (10 + n)) after n updates, so that the average of a short run is not mostly the
    initial weights."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, multi_avg_fn=self._average, use_buffers=True)
        self.decay, self.updates = decay, 0

    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _: Any) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - decay)
        else:  # counters (batchnorm's batches seen) are the model's own
            torch._foreach_copy_(averaged, current)

    def update(self, model: nn.Module) -> None:
        self.update_parameters(model)
        self.updates += 1

    def restore(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from the average `weights` after `updates` updates (a checkpoint's)."""
        self.module.load_state_dict(weights)
        self.n_averaged.fill_(max(updates, 1))  # not 0, which would make the next update a copy
        self.updates = updates


class Trainer:
    """Trains `model` on `data` as `config` (the composed Hydra config) says, writing into `run_dir`.

    `model` stays the plain module (its state_dict is what checkpoints hold); `net` is what the steps call:
    the model itself, or it wrapped by DistributedDataParallel and torch.compile as the config asks.
    """

    def __init__(
        self,
        config: DictConfig,
        model: nn.Module,
        data: Data,
        prepare: Prepare,
        device: torch.device,
        run_dir: Path,
        meta: dict[str, Any],
        procs: Processes = Processes(),  # noqa: B008  (immutable)
    ) -> None:
        self.config, self.trainer, self.procs = config, config.trainer, procs
        self.memory_format = torch.channels_last if self.trainer.channels_last else torch.preserve_format
        if procs.world > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            if device.type == "cuda" and self.trainer.sync_batchnorm:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                log.info("batchnorm statistics are each process's own (SyncBatchNorm needs GPUs and sync_batchnorm)")
        self.model = model.to(device, memory_format=self.memory_format)
        self.data, self.prepare, self.device = self._place(data, device), prepare, device
        self.pin = device.type == "cuda"  # batches of data left in host memory are copied asynchronously
        self.run_dir, self.meta = run_dir, meta
        self.steps_per_epoch = math.ceil(len(self.data.train) / self.trainer.batch_size)
        self.optimizer = schedule.optimizer(config, self.model)
        self.scheduler = schedule.scheduler(config, self.optimizer, self.steps_per_epoch)
        self.label_smoothing = config.optim.get("label_smoothing", 0.0)
        augment_config = config.get("augment") or {"name": "none", "erasing": 0, "mixup": 0, "cutmix": 0}
        self.augment = augment.build(OmegaConf.create(augment_config), len(data.classes), tuple(prepare.target[1:]))
        self.augment_in_loader = not isinstance(self.data.train, TensorSplit)  # images read from disk
        self.ema = EMA(self.model, self.trainer.ema_decay) if self.trainer.get("ema") else None
        best_on = self.trainer.checkpoint.get("best_on", "auto")
        self.serve_ema = self.ema is not None and best_on != "raw"  # whose accuracy picks best.pt, whose weights
        self.loggers: list[loggers.Logger] = []
        precision = str(self.trainer.precision)
        self.autocast_dtype = AUTOCAST[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
        self.net = self._wrap(self.model)
        self.progress = Progress()
        self.stop_requested = 0  # the signal that asked the run to stop: SIGINT (Ctrl-C) or SIGTERM (Slurm, torchrun)
        self.saving = False  # a checkpoint is being written: a second Ctrl-C waits for it
        self.tty = sys.stderr.isatty() and procs.main

    @property
    def steps_done(self) -> int:
        """Optimizer steps taken over the whole run."""
        return self.progress.epoch * self.steps_per_epoch + self.progress.step

    def _place(self, data: Data, device: torch.device) -> Data:
        """In-memory splits moved to the GPU once when trainer.data_on_device says so (auto: when they fit)."""
        splits = {k: s for k, s in (("train", data.train), ("val", data.val)) if isinstance(s, TensorSplit)}
        size = sum(s.x.nbytes + s.y.nbytes for s in splits.values())
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" and splits else None
        if not splits or not keep_on_device(self.trainer.data_on_device, device.type, size, free):
            if splits and device.type == "cuda":
                log.info("data kept in host memory (%.2f GB), copied batch by batch from pinned memory", size / 1e9)
            return data
        return dataclasses.replace(data, **{k: s.to(device) for k, s in splits.items()})

    def _wrap(self, model: nn.Module) -> nn.Module:
        net = model
        if self.procs.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.trainer.compile is not False:
            mode = None if self.trainer.compile is True else self.trainer.compile
            net = torch.compile(net, mode=mode)
        return net

    # -- checkpoints -------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds. "model" is the weights that evaluate, predict, export and the report use: the
        EMA's where it serves ("raw" then holds the trained weights), else the trained ones ("ema" then holds the
        EMA's)."""
        weights: dict[str, Any] = {"model": self.model.state_dict(), "served": "raw"}
        if self.ema is not None:
            averaged = self.ema.module.state_dict()
            updates = self.ema.updates
            if self.serve_ema:
                weights = {"model": averaged, "served": "ema", "raw": weights["model"], "ema": {"updates": updates}}
            else:
                weights["ema"] = {"weights": averaged, "updates": updates}
        return {
            **weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "progress": asdict(self.progress),
            "rng": checkpoint.rng_state(),
            **self.meta,
        }

    def save(self, name: str) -> Path:
        """Write the state as `name` in the run folder (process 0), with every process's random state."""
        rngs = self.procs.gather(checkpoint.rng_state())
        path = self.run_dir / name
        self.saving = True
        try:
            if self.procs.main:
                checkpoint.save({**self.state(), "rng_processes": rngs}, path)
        finally:
            self.saving = False
        self.procs.wait()
        return path

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer state, progress and random states. The optimizer's
        settings and the schedule are this run's config: the schedule is rebuilt and stepped through the
        steps done, which gives the checkpoint's learning rate when the config is the one it was saved with; the EMA
        continues from the checkpoint's (or starts from its weights)."""
        self.model.load_state_dict(state.get("raw", state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        settings = schedule.settings(self.config)
        for group in self.optimizer.param_groups:
            decay = group["weight_decay"] if not self.config.optim.get("decay_norm_and_bias", True) else None
            group.update(settings)
            if decay == 0.0:  # the group of biases and normalisation weights stays without decay
                group["weight_decay"] = 0.0
            group.pop("initial_lr", None)  # set again by the schedule from lr
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        if self.ema is not None and "ema" in state:
            averaged = state["model"] if state.get("served") == "ema" else state["ema"]["weights"]
            self.ema.restore(averaged, state["ema"]["updates"])
        elif self.ema is not None:
            self.ema.restore(self.model.state_dict(), 0)
            log.info("trainer.ema: the checkpoint's run had no EMA; it starts from the checkpoint's weights")
        if self.scheduler is not None:
            self.scheduler = schedule.scheduler(self.config, self.optimizer, self.steps_per_epoch)
            schedule.advance(self.scheduler, self.steps_done)
        rngs = state.get("rng_processes") or []
        checkpoint.set_rng_state(rngs[self.procs.rank] if len(rngs) == self.procs.world else state["rng"])

    # -- the loop ----------------------------------------------------------------------------------------------

    def fit(self) -> float:
        """Train until trainer.epochs; return the best validation accuracy."""
        handled = (signal.SIGINT, signal.SIGTERM) if _main_thread() else ()
        previous = {sig: signal.signal(sig, self._request_stop) for sig in handled}
        if self.procs.main:
            self.loggers = loggers.make(self.config, self.run_dir, self.steps_done, self.progress.epoch)
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
                if self._end_epoch(epoch):
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for logger in self.loggers:
                logger.close()
        return self.progress.best

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested and not self.saving:  # a second Ctrl-C stops at once, but not inside a save
            raise KeyboardInterrupt
        self.stop_requested = signum  # said by the loop: writing to a stream here could interrupt a write in progress

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _batches(
        self, split: Split, epoch: int | None, skip: int = 0, augment: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's share of each batch, on the device; shuffled by a generator seeded from (seed, epoch)
        so a resumed run, or one in several processes, sees exactly the batches of an uninterrupted single one.
        With `augment`, images read from disk come augmented by the loader processes."""
        generator = None
        if epoch is not None:
            generator = torch.Generator().manual_seed(self.trainer.seed * 1_000_003 + epoch)
        options = {}
        if augment and self.augment_in_loader and (per_sample := self.augment.per_sample()):
            options["augment"] = per_sample
        for x, y in split.batches(self.trainer.batch_size, generator, skip, self.procs.shard, self.pin, **options):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        return self._format(x)

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.memory_format is torch.preserve_format else x.contiguous(memory_format=self.memory_format)

    def _training_input(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch as the network sees it, augmented, and its targets: labels [N], or class
        probabilities [N, classes] where batches are mixed."""
        if not self.augment:
            return self._input(x), y
        x = self.prepare.unit(x)  # [N, C, H, W] in [0, 1] at the spec's size
        if not self.augment_in_loader:
            x = self.augment.images(x)
        x, target = self.augment.normalised(self.prepare.normalise(x), y)
        return self._format(x), target

    def train_epoch(self, epoch: int) -> None:
        """Train one epoch, from the step where `progress` says it stopped."""
        p, net, batch_size = self.progress, self.net, self.trainer.batch_size
        net.train()
        size = len(self.data.train)
        steps = math.ceil(size / batch_size)
        scale = self.procs.world  # DistributedDataParallel averages gradients over processes; this undoes it
        # Sums over the epoch, from those of the steps before a resumed one (on process 0), in float64 where the
        # device has it: a resumed epoch adds up exactly the numbers, in the order, of an uninterrupted one.
        base = self.procs.main
        exact = torch.float64 if self.device.type != "mps" else torch.float32
        loss_sum = torch.tensor(p.loss_sum if base else 0.0, dtype=exact, device=self.device)
        correct = torch.tensor(p.correct if base else 0, dtype=torch.long, device=self.device)
        bad_step = torch.tensor(-1, device=self.device)  # first step whose loss was not finite
        start, seen_at_start = time.perf_counter() - p.seconds, p.seen
        bar = tqdm(
            total=steps, initial=p.step, desc=f"epoch {epoch + 1}", leave=False, disable=not self.tty, position=1
        )
        for x, y in self._batches(self.data.train, epoch, skip=p.step, augment=True):
            batch = min(batch_size, size - p.step * batch_size)  # the global batch, all processes together
            x, target = self._training_input(x, y)
            with self._autocast():
                out = net(x)
                summed = F.cross_entropy(out.float(), target, reduction="sum", label_smoothing=self.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(summed * (scale / batch)).backward()  # the mean over the global batch
            if self.trainer.get("clip_grad_norm"):
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.trainer.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            p.lrs.append(self.optimizer.param_groups[0]["lr"])
            if self.scheduler is not None:
                self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            summed = summed.detach()
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(summed), p.step, bad_step)
            loss_sum += summed
            labels = target if target.ndim == 1 else target.argmax(dim=1)  # mixed: the larger share's class
            correct += (out.argmax(dim=1) == labels).sum()
            p.step += 1
            p.seen += batch
            bar.update()
            alone_stopping = self.procs.world == 1 and self.stop_requested  # several processes agree at log steps
            if p.step % self.trainer.log_every == 0 or p.step == steps or alone_stopping:
                totals = self.procs.sum(torch.stack([loss_sum.to(exact), correct.to(exact)])).tolist()
                flags = self.procs.max(torch.stack([bad_step, torch.tensor(self.stop_requested, device=self.device)]))
                first_bad, stop = flags.tolist()
                p.loss_sum, p.correct = totals[0], round(totals[1])
                p.seconds = time.perf_counter() - start
                self._check_finite(first_bad, epoch)
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
                if stop:
                    bar.close()
                    log.warning("stop requested: saving a checkpoint first (press Ctrl-C again to stop at once)")
                    raise Interrupted(self.save("interrupted.pt"), epoch, p.step, stop)
        bar.close()

    def _check_finite(self, bad_step: int, epoch: int) -> None:
        if bad_step >= 0:
            raise NonFiniteLoss(
                f"the loss became NaN or infinite at epoch {epoch + 1}, step {bad_step + 1}; "
                "try a lower optim.lr, or trainer.precision=32"
            )

    def evaluate(self, split: Split, model: nn.Module | None = None) -> Scores:
        """How the model (or `model`, the EMA's) does on `split` (all processes' shares together)."""
        batches = ((self._input(x), y) for x, y in self._batches(split, None))
        classes = len(self.data.classes)
        return evaluate(model or self.net, batches, None, classes, self._autocast, self.device, self.procs.sum)

    def _end_epoch(self, epoch: int) -> bool:
        """Validate, log and checkpoint the epoch just trained; True when early stopping ends the run here."""
        p = self.progress
        scores = self.evaluate(self.data.val)
        if not math.isfinite(scores.loss):
            raise NonFiniteLoss(f"the validation loss is NaN or infinite after epoch {epoch + 1}")
        row = {
            "epoch": epoch + 1,
            "train_loss": p.loss_sum / max(p.seen, 1),
            "train_acc": p.correct / max(p.seen, 1),
            "val_loss": scores.loss,
            "val_acc": scores.accuracy,
            "lr": p.lrs[0] if p.lrs else self.optimizer.param_groups[0]["lr"],
            "seconds": p.seconds,
            "images_per_s": p.seen / max(p.seconds, 1e-9),
        }
        if scores.top5 is not None:
            row["val_top5"] = scores.top5
        chosen = scores.accuracy
        if self.ema is not None:
            averaged = self.evaluate(self.data.val, self.ema.module)
            row |= {"ema_val_loss": averaged.loss, "ema_val_acc": averaged.accuracy}
            if averaged.top5 is not None:
                row["ema_val_top5"] = averaged.top5
            chosen = averaged.accuracy if self.serve_ema else chosen
        if len(set(p.lrs)) > 1:  # the learning rate changed within the epoch: a row per step
            first = epoch * self.steps_per_epoch
            p.steps += [{"epoch": epoch + 1, "step": first + i + 1, "lr": lr} for i, lr in enumerate(p.lrs)]
        improved = chosen > p.best
        p.history.append(row)
        p.best = max(p.best, chosen)
        stop = self._early_stop(chosen)
        p.epoch, p.step, p.loss_sum, p.correct, p.seen, p.seconds, p.lrs = epoch + 1, 0, 0.0, 0, 0, 0.0, []
        ema = f" (EMA {row['ema_val_acc']:.4f})" if self.ema is not None else ""
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f%s | lr %.3g | %.1f s, %.0f img/s",
            epoch + 1,
            self.trainer.epochs,
            row["train_loss"],
            row["train_acc"],
            row["val_loss"],
            row["val_acc"],
            ema,
            row["lr"],
            row["seconds"],
            row["images_per_s"],
        )
        if self.trainer.checkpoint.last:
            self.save("last.pt")
        if self.trainer.checkpoint.best and improved:
            self.save("best.pt")
        title = f"{self.meta['spec']['name']} on {self.data.name}"
        for logger in self.loggers:
            logger.epoch(loggers.Logged(title, p.history, p.steps, self.steps_per_epoch))
        if stop:
            which = "the EMA's validation accuracy" if self.serve_ema else "validation accuracy"
            log.info(
                "early stop after epoch %d: %s has not improved by more than %g for %d epochs (best %.4f)",
                epoch + 1,
                which,
                self.trainer.early_stop.min_delta,
                p.plateau,
                p.best,
            )
        return stop

    def _early_stop(self, accuracy: float) -> bool:
        """Count the epochs since `accuracy` last beat the reference by trainer.early_stop.min_delta; True when
        they reach its patience."""
        p, rule = self.progress, self.trainer.get("early_stop") or {}
        if p.reference < 0 or accuracy - rule.get("min_delta", 0.0) > p.reference:
            p.reference, p.plateau = accuracy, 0
        else:
            p.plateau += 1
        patience = rule.get("patience")
        return patience is not None and p.plateau >= patience


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
