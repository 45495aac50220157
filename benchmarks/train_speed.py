"""`train`: training throughput on the CPU, in images/s, of cnnforge's Trainer against a minimal hand-written
PyTorch loop over the same network, weights, optimizer, data and normalisation (benchmarks/loops.py).
Ratio: cnnforge / hand-written images/s, window by window. Target: at least 0.97.

A window trains a few batches of synthetic in-memory data; the cases are LeNet-5 at batch 256 and AlexNet at
batch 32 (with --quick, a couple of batches each, AlexNet at batch 2).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .loops import Case, cnnforge_contender, hand_contender, workload
from .report import Measure, Row
from .timing import Stat, interleave, ratios

TARGET = 0.97
CASES = (
    Case("LeNet-5", "lenet", 256, 24, windows=21, warmup=2),
    Case("AlexNet", "alexnet", 32, 2, windows=9, warmup=1),
)
QUICK = (Case("LeNet-5", "lenet", 256, 2, windows=2, warmup=0), Case("AlexNet", "alexnet", 2, 1, windows=1, warmup=0))


def run(quick: bool = False) -> list[Row]:
    """Two rows per case: cnnforge against the hand-written loop, and the control."""
    return [row for case in (QUICK if quick else CASES) for row in measure(case, torch.device("cpu"))]


def measure(case: Case, device: torch.device) -> list[Row]:
    """cnnforge against the hand-written loop on one case, their windows interleaved with those of a second,
    identical hand-written loop: the control, whose ratio to the first shows what noise alone gives."""
    work = workload(case, device)
    with tempfile.TemporaryDirectory() as run_dir:
        contenders = {
            "cnnforge": cnnforge_contender(work, [], Path(run_dir)),
            "hand-written": hand_contender(work),
            "hand-written again": hand_contender(work),
        }
        seconds = interleave(contenders, case.windows, case.warmup)
    title = f"{case.title}, batch {case.batch_size}, {device.type.upper()}, {torch.get_num_threads()} threads"
    note = f"{case.windows} windows of {case.batches} batches after {case.warmup} warm-up"
    hand = Measure("hand-written", "images/s", Stat.of(seconds["hand-written"]).inverse(case.images))
    ratio = ratios(seconds["hand-written"], seconds["cnnforge"])  # images/s of cnnforge over the hand loop's
    control = ratios(seconds["hand-written"], seconds["hand-written again"])
    return [
        Row(
            "train",
            title,
            Measure("cnnforge", "images/s", Stat.of(seconds["cnnforge"]).inverse(case.images)),
            hand,
            ratio,
            "cnnforge / hand-written images/s",
            f">= {TARGET}",
            ratio.median >= TARGET,
            note,
        ),
        Row(
            "train",
            f"{case.title}: control, the same hand-written loop twice",
            Measure("hand-written again", "images/s", Stat.of(seconds["hand-written again"]).inverse(case.images)),
            hand,
            control,
            "hand-written again / hand-written images/s",
            note="the noise floor: what the ratio above would show with no difference at all",
        ),
    ]
