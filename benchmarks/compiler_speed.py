"""`compiler`: the static checker (`cnnforge.compiler.check_file`: read, validate, compile) on generated specs:
chains of 100, 1,000 and 10,000 layers, alternating a 3x3 conv and a relu on [8, 32, 32]; and graphs of 1,000
and 10,000 nodes, a residual block (3x3 conv, relu, 3x3 conv, add of the block's input, relu: 5 nodes) defined
once under `blocks` and used with `repeat`. Ratio: time per layer (per node) against the next smaller spec's,
window by window: about 1 (or less, as fixed costs spread) when the cost grows linearly with the layers, about
10 when it grows with their square. Targets: that ratio at most 1.25, and 1,000 layers well under a second (at
most 0.5 s).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cnnforge.compiler import check_file

from .report import Measure, Row
from .timing import Stat, interleave, ratios

LINEAR = 1.25  # highest per-layer ratio between sizes ten times apart still counted as linear
LIMIT_1000 = 0.5  # seconds: the most a 1,000-layer chain may take
BLOCK_NODES = 5  # nodes of one residual block in graph_text


def chain_text(layers: int) -> str:
    """A valid spec of `layers` layers: conv, relu, conv, relu, ..."""
    lines = ["name: generated", "input: [8, 32, 32]", "layers:"]
    for index in range(layers):
        lines.append("  - {type: relu}" if index % 2 else "  - {type: conv, shape: [8, 8, 3, 3], padding: 1}")
    return "\n".join(lines) + "\n"


def graph_text(nodes: int) -> str:
    """A valid spec of `nodes` nodes (a multiple of BLOCK_NODES): one residual block, repeated."""
    return f"""\
name: generated
params: {{width: 8}}
input: ['${{width}}', 32, 32]
blocks:
  residual:
    params: {{channels: '${{width}}'}}
    layers:
      - type: add
        branches:
          body:
            - {{type: conv, name: conv1, shape: ['${{channels}}', '${{channels}}', 3, 3], padding: 1}}
            - {{type: relu, name: relu1}}
            - {{type: conv, name: conv2, shape: ['${{channels}}', '${{channels}}', 3, 3], padding: 1}}
          shortcut: []
      - {{type: relu, name: relu}}
layers:
  - {{type: residual, name: stage, repeat: {nodes // BLOCK_NODES}}}
"""


KINDS = {  # what a size counts -> (the spec of that size, sizes, sizes with --quick)
    "layers": (chain_text, (100, 1_000, 10_000), (100, 1_000)),
    "graph nodes": (graph_text, (1_000, 10_000), (100, 1_000)),
}


def contender(path: Path, nodes: int) -> Callable[[], float]:
    """Seconds per check of `path`, over enough checks in a window to take a fifth of a second or so."""
    calls = max(1, 2_000 // nodes)

    def window() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            compiled = check_file(path)
        elapsed = (time.perf_counter() - start) / calls
        if not compiled.ok or len(compiled.layers) != nodes:
            raise AssertionError(f"{path}: not a valid spec of {nodes} nodes: {compiled.diagnostics[:3]}")
        return elapsed

    return window


def run(quick: bool = False) -> list[Row]:
    """One row per spec; from the second of each kind on, the per-node ratio to the size before."""
    windows, warmup = (1, 0) if quick else (7, 1)
    sizes = {kind: quick_sizes if quick else full for kind, (_, full, quick_sizes) in KINDS.items()}
    with tempfile.TemporaryDirectory() as folder:
        contenders = {}
        for kind, (text, _, _) in KINDS.items():
            for nodes in sizes[kind]:
                path = Path(folder, f"{kind.replace(' ', '_')}{nodes}.yaml")
                path.write_text(text(nodes))
                contenders[f"{nodes:,} {kind}"] = contender(path, nodes)
        seconds = interleave(contenders, windows, warmup)
    return [row for kind in KINDS for row in rows(kind, sizes[kind], seconds)]


def rows(kind: str, sizes: tuple[int, ...], seconds: dict[str, list[float]]) -> list[Row]:
    """The rows of one kind of spec, smallest first."""
    found = []
    what = "chain" if kind == "layers" else "residual blocks"
    unit = "layer" if kind == "layers" else "node"
    for index, nodes in enumerate(sizes):
        label = f"{nodes:,} {kind}"
        runs = seconds[label]
        ours = Measure(label, "ms", Stat.of(runs).scaled(1000))
        case = f"check_file, {what}, {label}"
        per_node = f"{Stat.of(runs).median / nodes * 1e6:.1f} µs/{unit}"
        if index == 0:
            found.append(Row("compiler", case, ours, note=per_node))
            continue
        smaller = sizes[index - 1]
        before = seconds[f"{smaller:,} {kind}"]
        ratio = ratios([t / nodes for t in runs], [t / smaller for t in before])
        target, met = f"<= {LINEAR}", ratio.median <= LINEAR
        if kind == "layers" and nodes == 1_000:
            target, met = f"{target}; under {LIMIT_1000 * 1000:.0f} ms", met and ours.stat.median <= LIMIT_1000 * 1000
        base = Measure(f"{smaller:,} {kind}", "ms", Stat.of(before).scaled(1000))
        ratio_of = f"time per {unit}, {nodes:,} / {smaller:,} {kind}"
        found.append(Row("compiler", case, ours, base, ratio, ratio_of, target, met, per_node))
    return found
