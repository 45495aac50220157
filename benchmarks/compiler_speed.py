"""`compiler`: the static checker (`cnnforge.compiler.check_file`: read, validate, compile) on generated specs
of 100, 1,000 and 10,000 layers, alternating a 3x3 conv and a relu on [8, 32, 32]. Ratio: time per layer
against the next smaller spec's, window by window: about 1 (or less, as fixed costs spread) when the cost grows
linearly with the layers, about 10 when it grows with their square. Targets: that ratio at most 1.25, and
1,000 layers well under a second (at most 0.5 s).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cnnforge.compiler import check_file

from .report import Measure, Row
from .timing import Stat, interleave, ratios

SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
LINEAR = 1.25  # highest per-layer ratio between sizes ten times apart still counted as linear
LIMIT_1000 = 0.5  # seconds: the most a 1,000-layer spec may take


def spec_text(layers: int) -> str:
    """A valid spec of `layers` layers: conv, relu, conv, relu, ..."""
    lines = ["name: generated", "input: [8, 32, 32]", "layers:"]
    for index in range(layers):
        lines.append("  - {type: relu}" if index % 2 else "  - {type: conv, shape: [8, 8, 3, 3], padding: 1}")
    return "\n".join(lines) + "\n"


def contender(path: Path, layers: int) -> Callable[[], float]:
    """Seconds per check of `path`, over enough checks in a window to take a fifth of a second or so."""
    calls = max(1, 2_000 // layers)

    def window() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            compiled = check_file(path)
        elapsed = (time.perf_counter() - start) / calls
        if not compiled.ok or len(compiled.layers) != layers:
            raise AssertionError(f"{path}: not a valid {layers}-layer spec: {compiled.diagnostics[:3]}")
        return elapsed

    return window


def run(quick: bool = False) -> list[Row]:
    """One row per size; from the second on, the per-layer ratio to the size before."""
    sizes, windows, warmup = (QUICK_SIZES, 1, 0) if quick else (SIZES, 7, 1)
    with tempfile.TemporaryDirectory() as folder:
        contenders = {}
        for layers in sizes:
            path = Path(folder, f"layers{layers}.yaml")
            path.write_text(spec_text(layers))
            contenders[layers] = contender(path, layers)
        seconds = interleave({f"{n:,} layers": c for n, c in contenders.items()}, windows, warmup)
    rows = []
    for index, layers in enumerate(sizes):
        runs = seconds[f"{layers:,} layers"]
        ours = Measure(f"{layers:,} layers", "ms", Stat.of(runs).scaled(1000))
        per_layer = f"{Stat.of(runs).median / layers * 1e6:.1f} µs/layer"
        if index == 0:
            rows.append(Row("compiler", f"check_file, {layers:,} layers", ours, note=per_layer))
            continue
        smaller = sizes[index - 1]
        before = seconds[f"{smaller:,} layers"]
        ratio = ratios([t / layers for t in runs], [t / smaller for t in before])
        target, met = f"<= {LINEAR}", ratio.median <= LINEAR
        if layers == 1_000:
            target, met = f"{target}; under {LIMIT_1000 * 1000:.0f} ms", met and ours.stat.median <= LIMIT_1000 * 1000
        base = Measure(f"{smaller:,} layers", "ms", Stat.of(before).scaled(1000))
        ratio_of = f"time per layer, {layers:,} / {smaller:,} layers"
        rows.append(
            Row("compiler", f"check_file, {layers:,} layers", ours, base, ratio, ratio_of, target, met, per_layer)
        )
    return rows
