"""`export`: inference on the CPU, LeNet-5, AlexNet and ResNet-18 with random weights: milliseconds per image at
batch 1 (latency) and images/s at batch 64 (throughput), for torch eager (the baseline), torch.compile (inductor,
static shapes), and onnxruntime running the file `cnnforge export` writes (its own verification passed); all with
the same threads, in one process. A second eager model is the control. Ratio: each contender against eager, as a
speed-up (eager ms / its ms; its images/s / eager's). Target: onnxruntime at least as fast as eager (>= 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cnnforge.train.archs import shipped
from cnnforge.use.export import export, from_spec

from .machine import cores
from .report import Measure, Row
from .timing import Stat, interleave, ratios

BASE, CONTROL = "torch eager", "torch eager, a second model (control)"


@dataclass(frozen=True)
class Case:
    title: str
    arch: str
    calls: int  # per window at batch 1
    windows: int = 7
    warmup: int = 2


CASES = (Case("LeNet-5", "lenet", 200), Case("AlexNet", "alexnet", 10), Case("ResNet-18", "resnet18", 10))
QUICK = (Case("LeNet-5", "lenet", 2, windows=1, warmup=1),)
BATCH = 64


def contender(run: Callable[[torch.Tensor], object], x: torch.Tensor, calls: int) -> Callable[[], float]:
    """Seconds for `calls` calls of `run` on `x`."""

    def window() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            run(x)
        return time.perf_counter() - start

    return window


Runners = dict[str, Callable[[torch.Tensor], object]]


def runners(case: Case, quick: bool) -> tuple[Runners, tuple[int, ...], list[str]]:
    """Each contender's function from inputs to outputs, the input's shape, and notes on what was left out."""
    import onnxruntime

    source = from_spec(str(shipped()[case.arch]), {}, "none", None)
    control = from_spec(str(shipped()[case.arch]), {}, "none", None).model
    exported = export(source, "onnx").data  # verified against torch by export itself
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
    shape = tuple(source.compiled.spec.input)  # type: ignore[union-attr]
    found: Runners = {
        BASE: source.model,
        CONTROL: control,
        "onnxruntime": lambda x: session.run(None, {"input": x.numpy()}),
    }
    if quick:  # inductor's compile takes most of a minute: not for a smoke test
        return found, shape, ["torch.compile left out with --quick"]
    found["torch.compile"] = torch.compile(source.model, dynamic=False)
    return found, shape, []


def measure(case: Case, quick: bool) -> list[Row]:
    """Rows for batch 1 and batch 64: every contender against eager."""
    run, shape, notes = runners(case, quick)
    batch = 4 if quick else BATCH
    rows = []
    for size, calls, what in ((1, case.calls, "batch 1, ms per image"), (batch, 1, f"batch {batch}, images/s")):
        x = torch.randn(size, *shape)
        with torch.inference_mode():
            seconds = interleave({k: contender(f, x, calls) for k, f in run.items()}, case.windows, case.warmup)
        per = calls * size
        if size == 1:
            stat = {k: Stat.of(v).scaled(1000 / per) for k, v in seconds.items()}
            unit = "ms/image"
        else:
            stat = {k: Stat.of(v).inverse(per) for k, v in seconds.items()}
            unit = "images/s"
        base = Measure(BASE, unit, stat[BASE])
        for label in (k for k in run if k != BASE):
            speedup = ratios(seconds[BASE], seconds[label])  # eager seconds / its seconds, window by window
            target = ">= 1" if label == "onnxruntime" else ""
            met = speedup.median >= 1 if target else None
            note = "; ".join([f"{case.windows} windows of {calls} call(s) after {case.warmup} warm-up", *notes])
            rows.append(
                Row(
                    "export",
                    f"{case.title}, {what}, {torch.get_num_threads()} threads",
                    Measure(label, unit, stat[label]),
                    base,
                    speedup,
                    f"speed-up of {label} over {BASE}",
                    target,
                    met,
                    note,
                )
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    """Three contenders against eager, at two batch sizes, for each case."""
    torch.set_num_threads(cores())
    return [row for case in (QUICK if quick else CASES) for row in measure(case, quick)]
