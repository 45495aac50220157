"""`build`: time to make AlexNet's torch module from architectures/alexnet.yaml, with the compile
(`build(compile_file(spec))`) and without it (`build(compiled)`), against instantiating the hand-written
AlexNet class. Ratio: cnnforge / hand-written ms, window by window. No target: torch's initialisation of the
61 million weights is most of both.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cnnforge.builder import build
from cnnforge.compiler import compile_file
from cnnforge.train.archs import shipped

from .handwritten import AlexNet
from .report import Measure, Row
from .timing import Stat, interleave, ratios

BASE = "hand-written AlexNet()"


def timed(make: Callable[[], object]) -> Callable[[], float]:
    """A contender: seconds to call `make`, leaving out freeing what it made."""

    def window() -> float:
        start = time.perf_counter()
        made = make()
        elapsed = time.perf_counter() - start
        del made
        return elapsed

    return window


def run(quick: bool = False) -> list[Row]:
    """Two rows: compile and build, and build alone, each against the hand-written class."""
    spec = shipped()["alexnet"]
    compiled = compile_file(spec)
    contenders = {
        "compile + build": timed(lambda: build(compile_file(spec))),
        "build": timed(lambda: build(compiled)),
        BASE: timed(AlexNet),
    }
    windows, warmup = (1, 0) if quick else (9, 1)
    seconds = interleave(contenders, windows, warmup)
    base = Measure(BASE, "ms", Stat.of(seconds[BASE]).scaled(1000))
    cases = {"compile + build": "build(compile_file(alexnet.yaml))", "build": "build(compiled), compiled beforehand"}
    return [
        Row(
            "build",
            f"AlexNet, {call}",
            Measure(label, "ms", Stat.of(seconds[label]).scaled(1000)),
            base,
            ratios(seconds[label], seconds[BASE]),
            f"{label} / {BASE} ms",
            note=f"{windows} windows after {warmup} warm-up",
        )
        for label, call in cases.items()
    ]
