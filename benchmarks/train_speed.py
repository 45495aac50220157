"""`train`: training throughput on the CPU, in images/s, of cnnforge's Trainer against a minimal hand-written
PyTorch loop over the same network, weights, optimizer, data and normalisation (benchmarks/loops.py): LeNet-5
and AlexNet written by hand, and ResNet-18, ResNet-50 and MobileNetV2 (architectures/*.yaml, graphs) against
torchvision's own models; and ResNet-18 on CIFAR-sized images with augment=crop_flip, against the same loop
cropping and flipping each sample with torchvision's v2.RandomCrop(padding=4) and v2.RandomHorizontalFlip.
Ratio: cnnforge / baseline images/s, window by window. Target: at least 0.97.

A window trains a few batches of synthetic in-memory data; the cases are LeNet-5 at batch 256, AlexNet at batch
32, ResNet-18 and MobileNetV2 on 64x64 images at batch 32, ResNet-50 on them at batch 16, and ResNet-18 on
3x32x32 images with crop_flip at batch 128, CIFAR's (with --quick, a batch or two each, at batch 2 for all but
LeNet-5, the torchvision families on 32x32 images). The torchvision cases are reported skipped without
torchvision.
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from .loops import Case, cnnforge_contender, hand_contender, workload
from .report import Measure, Row
from .timing import Stat, interleave, ratios

TARGET = 0.97
RESNET18 = Case(
    "ResNet-18, 64x64",
    "resnet18",
    32,
    2,
    windows=9,
    warmup=1,
    input=(3, 64, 64),
    baseline="torchvision",
    needs="torchvision",
)
RESNET50 = replace(RESNET18, title="ResNet-50, 64x64", arch="resnet50", batch_size=16, windows=7)
MOBILENET_V2 = replace(RESNET18, title="MobileNetV2, 64x64", arch="mobilenet_v2", windows=7)
# CIFAR's images, batch and augmentation: ResNet-18, the usual CIFAR network, as torchvision writes it (its
# ImageNet stem: 32x32 ends at 1x1), trains about four times the images/s of 64x64, so a window is one batch.
CROP_FLIP = replace(
    RESNET18,
    title="ResNet-18, 32x32, augment=crop_flip",
    batch_size=128,
    batches=1,
    windows=15,
    input=(3, 32, 32),
    augment="crop_flip",
)
CASES = (
    Case("LeNet-5", "lenet", 256, 24, windows=21, warmup=2),
    Case("AlexNet", "alexnet", 32, 2, windows=9, warmup=1),
    RESNET18,
    RESNET50,
    MOBILENET_V2,
    CROP_FLIP,
)


def _quick(case: Case) -> Case:
    return replace(
        case,
        title=case.title.replace("64x64", "32x32"),
        batch_size=2,
        batches=1,
        windows=1,
        warmup=0,
        input=(3, 32, 32),
    )


QUICK = (
    Case("LeNet-5", "lenet", 256, 2, windows=2, warmup=0),
    Case("AlexNet", "alexnet", 2, 1, windows=1, warmup=0),
    *(_quick(case) for case in (RESNET18, RESNET50, MOBILENET_V2, CROP_FLIP)),
)


def run(quick: bool = False) -> list[Row]:
    """Two rows per case: cnnforge against the baseline's loop, and the control."""
    return [row for case in (QUICK if quick else CASES) for row in measure(case, torch.device("cpu"))]


def measure(case: Case, device: torch.device) -> list[Row]:
    """cnnforge against the baseline's loop on one case, their windows interleaved with those of a second,
    identical baseline loop: the control, whose ratio to the first shows what noise alone gives."""
    title = f"{case.title}, batch {case.batch_size}, {device.type.upper()}, {torch.get_num_threads()} threads"
    if case.needs and importlib.util.find_spec(case.needs) is None:
        return [Row("train", title, note=f"skipped: the {case.baseline} baseline needs {case.needs}, not installed")]
    work = workload(case, device)
    base, again = case.baseline, f"{case.baseline} again"
    with tempfile.TemporaryDirectory() as run_dir:
        contenders = {
            "cnnforge": cnnforge_contender(work, [], Path(run_dir)),
            base: hand_contender(work),
            again: hand_contender(work),
        }
        seconds = interleave(contenders, case.windows, case.warmup)
    note = f"{case.windows} windows of {case.batches} batches after {case.warmup} warm-up"
    hand = Measure(base, "images/s", Stat.of(seconds[base]).inverse(case.images))
    ratio = ratios(seconds[base], seconds["cnnforge"])  # images/s of cnnforge over the baseline loop's
    control = ratios(seconds[base], seconds[again])
    return [
        Row(
            "train",
            title,
            Measure("cnnforge", "images/s", Stat.of(seconds["cnnforge"]).inverse(case.images)),
            hand,
            ratio,
            f"cnnforge / {base} images/s",
            f">= {TARGET}",
            ratio.median >= TARGET,
            note,
        ),
        Row(
            "train",
            f"{case.title}: control, the same {base} loop twice",
            Measure(again, "images/s", Stat.of(seconds[again]).inverse(case.images)),
            hand,
            control,
            f"{again} / {base} images/s",
            note="the noise floor: what the ratio above would show with no difference at all",
        ),
    ]
