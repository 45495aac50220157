"""`gpu`: training throughput on a CUDA GPU, in images/s, on synthetic data held on the GPU: AlexNet at batch 256
against the hand-written loop, and ResNet-50 and MobileNetV2 at 224x224, batch 64, against torchvision's own
models. Contenders: the baseline's loop in fp32; cnnforge in fp32; cnnforge with trainer.precision=bf16 and
trainer.channels_last=true; and the same with trainer.compile=true. Ratio: each cnnforge variant / the baseline's
fp32 images/s, window by window. Targets: fp32 at least 0.97, the faster settings at least 2.

Skipped where torch sees no CUDA device; a variant whose settings the config does not have is reported as not
available.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hydra.errors import ConfigCompositionException

from .loops import Case, cnnforge_contender, hand_contender, workload
from .report import Measure, Row
from .timing import Stat, interleave, ratios

FAST = ["trainer.precision=bf16", "trainer.channels_last=true"]
VARIANTS = {  # label -> (overrides, target ratio against the hand-written fp32 loop)
    "cnnforge fp32": ([], 0.97),
    "cnnforge bf16 + channels_last": (FAST, 2.0),
    "cnnforge bf16 + channels_last + compile": ([*FAST, "trainer.compile=true"], 2.0),
}
BASE = "baseline fp32"
TORCHVISION = {"baseline": "torchvision", "needs": "torchvision"}
CASES = (
    Case("AlexNet", "alexnet", 256, 20, windows=7, warmup=2),
    Case("ResNet-50", "resnet50", 64, 10, windows=7, warmup=2, **TORCHVISION),
    Case("MobileNetV2", "mobilenet_v2", 64, 10, windows=7, warmup=2, **TORCHVISION),
)
QUICK = (Case("AlexNet", "alexnet", 32, 2, windows=1, warmup=1),)


def run(quick: bool = False) -> list[Row]:
    """One row per case and cnnforge variant, or one row per case saying why it was skipped."""
    cases = QUICK if quick else CASES
    if not torch.cuda.is_available():
        reason = "skipped: no CUDA device (torch.cuda.is_available() is False)"
        return [Row("gpu", f"{case.title}, batch {case.batch_size}", note=reason) for case in cases]
    return [row for case in cases for row in measure(case, torch.device("cuda"))]


def measure(case: Case, device: torch.device) -> list[Row]:
    """Every available variant against the hand-written loop, all their windows interleaved."""
    work = workload(case, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    title = f"{case.title}, batch {case.batch_size}, {where}, against {case.baseline}"
    with tempfile.TemporaryDirectory() as run_dir:
        contenders, missing = {BASE: hand_contender(work)}, {}
        for label, (overrides, _) in VARIANTS.items():
            try:
                contenders[label] = cnnforge_contender(work, overrides, Path(run_dir))
            except ConfigCompositionException as error:
                missing[label] = str(error).splitlines()[0]
        seconds = interleave(contenders, case.windows, case.warmup)
    base = Measure(BASE, "images/s", Stat.of(seconds[BASE]).inverse(case.images))
    rows = []
    for label, (overrides, target) in VARIANTS.items():
        case_title = f"{title}: {' '.join(overrides) or 'defaults'}"
        if label in missing:
            rows.append(Row("gpu", case_title, target=f">= {target}", note=f"not available: {missing[label]}"))
            continue
        ratio = ratios(seconds[BASE], seconds[label])
        ours = Measure(label, "images/s", Stat.of(seconds[label]).inverse(case.images))
        ratio_of, met = f"{label} / {BASE} images/s", ratio.median >= target
        rows.append(Row("gpu", case_title, ours, base, ratio, ratio_of, f">= {target}", met))
    return rows
