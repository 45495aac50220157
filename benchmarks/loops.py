"""The contenders of the training benchmarks: cnnforge's own Trainer, and a minimal hand-written PyTorch loop
over the same network as a plain PyTorch module (benchmarks/handwritten.py: written by hand, or torchvision's),
starting from the same weights, with the same optimizer, in-memory data, augmentation and batch normalisation.
Each contender is a function that trains one window of batches and returns its seconds, waiting for the GPU at
both ends."""

from __future__ import annotations

import dataclasses
import itertools
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from cnnforge.builder import build
from cnnforge.compiler import Compiled
from cnnforge.train import archs
from cnnforge.train.app import CONF, prepare_run, register_archs
from cnnforge.train.data import Data, Prepare
from cnnforge.train.loop import Progress, Trainer
from cnnforge.train.settings import OPTIM_EXTRAS, arguments, compose, instantiate

from .handwritten import BASELINES, load_by_position


@dataclass(frozen=True)
class Case:
    """A shipped spec trained on synthetic data: `batches` batches of `batch_size` per window. `input` sets the
    spec's input, for smaller images than it was written for; `baseline` names the plain PyTorch module it is
    measured against (BASELINES[arch]), and `needs` the module that one imports. `augment` is the augment config
    both train with: cnnforge's own, and the same transforms sample by sample in the hand-written loop."""

    title: str
    arch: str
    batch_size: int
    batches: int
    windows: int
    warmup: int
    input: tuple[int, int, int] | None = None
    baseline: str = "hand-written"
    needs: str | None = None
    augment: str = "none"

    @property
    def images(self) -> int:
        """Images in one window."""
        return self.batch_size * self.batches

    def overrides(self, device: torch.device) -> list[str]:
        """Hydra overrides for this case; the training split is exactly one window."""
        return [
            f"arch={self.arch}",
            "data=synthetic",
            f"data.train_size={self.images}",
            "data.val_size=1",
            f"trainer.batch_size={self.batch_size}",
            f"trainer.device={device}",
            f"augment={self.augment}",
        ]


@dataclass(frozen=True)
class Workload:
    """What every contender of a case trains: the compiled spec, the data on the device, and its preparation."""

    case: Case
    device: torch.device
    compiled: Compiled
    data: Data
    prepare: Prepare


def compose_config(overrides: list[str]) -> DictConfig:
    """cnnforge's real training config (cnnforge/conf) with `overrides`, as `cnnforge train` composes it (`arch=`
    takes any shipped spec); an unknown key raises hydra.errors.ConfigCompositionException."""
    return compose(register_archs(overrides))


def resized(spec: Path, shape: tuple[int, int, int], folder: Path) -> Path:
    """A copy of `spec` in `folder`, under the same file name, whose `input:` line is `shape`."""
    text, count = re.subn(r"(?m)^input: .*$", f"input: {list(shape)}", spec.read_text())
    if count != 1:
        raise ValueError(f"{spec}: expected one top-level `input:` line to replace, found {count}")
    copy = folder / spec.name
    copy.write_text(text)
    return copy


def workload(case: Case, device: torch.device) -> Workload:
    """The case's spec (with its input set, where the case sets one) and data reconciled as `cnnforge train`
    does (its `classes` bound to the data's), the data on the device and its preparation fitted."""
    with tempfile.TemporaryDirectory() as folder:
        overrides = case.overrides(device)
        if case.input:
            overrides.append(f"arch.spec={resized(archs.resolve(case.arch), case.input, Path(folder))}")
        plan = prepare_run(compose_config(overrides), str(CONF / "data" / "synthetic.yaml"))
    data = dataclasses.replace(plan.data, train=plan.data.train.to(device), val=plan.data.val.to(device))
    return Workload(case, device, plan.compiled, data, plan.prepare.fit(data.train))


def sync(device: torch.device) -> None:
    """Wait for the device to finish its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnnforge_contender(work: Workload, overrides: list[str], run_dir: Path) -> Callable[[], float]:
    """cnnforge's Trainer with the case's config plus `overrides`: one window is one `train_epoch` over the
    one-window training split. Progress bars are off, as when the output is not a terminal."""
    config = compose_config([*work.case.overrides(work.device), *overrides])
    torch.manual_seed(config.trainer.seed)
    model = build(work.compiled)
    meta = {"spec": {"name": work.compiled.spec.name}}
    trainer = Trainer(config, model, work.data, work.prepare, work.device, run_dir, meta)
    trainer.tty = False
    epochs = itertools.count()

    def window() -> float:
        trainer.progress = Progress()
        sync(work.device)
        start = time.perf_counter()
        trainer.train_epoch(next(epochs))
        sync(work.device)
        return time.perf_counter() - start

    return window


def by_hand(augment: DictConfig, size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """An `augment` config as one writes it by hand with torchvision.transforms.v2, for one image [C, H, W] in
    [0, 1]: crop_flip is v2.RandomCrop with its padding, then v2.RandomHorizontalFlip; none is None."""
    if augment.name not in ("none", "crop_flip") or augment.erasing or augment.mixup or augment.cutmix:
        raise ValueError(
            f"augment={augment.name}: the hand-written loop does none and crop_flip, without erasing or mixing"
        )
    if augment.name == "none":
        return None
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(list(size), padding=augment.padding), v2.RandomHorizontalFlip(augment.flip)])


def hand_contender(work: Workload) -> Callable[[], float]:
    """A minimal loop over the case's baseline module, as one writes it by hand: shuffle with randperm, augment
    the batch sample by sample with torchvision's v2 transforms where the case has augmentation (by_hand),
    normalise it with the mean and standard deviation cnnforge's Prepare uses, cross-entropy, zero_grad,
    backward, step."""
    config = compose_config(work.case.overrides(work.device))
    torch.manual_seed(config.trainer.seed)
    reference = build(work.compiled)  # the weights cnnforge's model starts from
    model = BASELINES[work.case.arch](len(work.data.classes))
    count, arch = sum(p.numel() for p in model.parameters()), work.case.arch
    if count != work.compiled.total_params:
        raise AssertionError(f"{work.case.baseline} {arch}: {count} params, the spec {work.compiled.total_params}")
    model = load_by_position(model, reference).to(work.device)
    # torch's optimizer from config.optim without the Trainer's own keys, at their defaults here as this loop has
    # them: no label smoothing, weight decay on every parameter
    optimizer = instantiate(arguments(config.optim, OPTIM_EXTRAS), params=model.parameters())
    x, y = work.data.train.x, work.data.train.y  # [N, C, H, W], [N], already on the device
    mean, std = work.prepare.mean.to(work.device), work.prepare.std.to(work.device)
    batch_size = config.trainer.batch_size
    generator = torch.Generator().manual_seed(config.trainer.seed)
    augment = by_hand(config.augment, tuple(x.shape[2:]))

    def window() -> float:
        sync(work.device)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=generator).to(work.device)
        for first in range(0, len(y), batch_size):
            index = order[first : first + batch_size]
            batch = x[index]  # [B, C, H, W] in [0, 1]
            if augment is not None:
                batch = torch.stack([augment(image) for image in batch])  # each sample its own crop and flip
            loss = F.cross_entropy(model((batch - mean) / std), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(work.device)
        return time.perf_counter() - start

    return window
