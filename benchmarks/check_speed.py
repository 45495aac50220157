"""`check`: wall time of `cnnforge check` against `python -c "import torch"`, each a whole process: on all the
shipped specs at once, and on ResNet-50 (architectures/resnet50.yaml, a graph of blocks) alone. Ratio: cnnforge
check / import torch, run by run. Target: at most 1/5.

Alone: `python -m benchmarks.check_speed [-n N] [--warmup N] [--json PATH]` from the project root.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

from .report import Measure, Row
from .timing import Stat, interleave, ratios

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "cnnforge" / "architectures").glob("*.yaml"))
CHECKS = {  # case -> the specs one `cnnforge check` reads
    f"{len(SPECS)} shipped specs": SPECS,
    "ResNet-50 (architectures/resnet50.yaml)": [ROOT / "cnnforge" / "architectures" / "resnet50.yaml"],
}
BASE = "import torch"
TARGET = 1 / 5  # the check should cost at most this fraction of a bare torch import
REPEATS, WARMUP = 20, 2  # timed and untimed runs of each command
COMMANDS = {
    **{
        f"cnnforge check, {case}": [sys.executable, "-m", "cnnforge", "check", *map(str, specs)]
        for case, specs in CHECKS.items()
    },
    BASE: [sys.executable, "-c", "import torch"],
}


def seconds(command: list[str]) -> float:
    """Wall time of one run of `command`, which must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each command's timed runs, the commands' runs interleaved."""
    contenders = {name: functools.partial(seconds, command) for name, command in COMMANDS.items()}
    return interleave(contenders, repeats, warmup)


def run(quick: bool = False) -> list[Row]:
    """One row per case (--quick: one run of each, no warm-up)."""
    repeats, warmup = (1, 0) if quick else (REPEATS, WARMUP)
    times = measure(repeats, warmup)
    base = Measure(BASE, "ms", Stat.of(times[BASE]).scaled(1000))
    rows = []
    for case in CHECKS:
        name = f"cnnforge check, {case}"
        ratio = ratios(times[name], times[BASE])
        rows.append(
            Row(
                "check",
                f"{case}, whole processes",
                Measure("cnnforge check", "ms", Stat.of(times[name]).scaled(1000)),
                base,
                ratio,
                "cnnforge check / import torch wall time",
                f"<= 1/{round(1 / TARGET)}",
                ratio.median <= TARGET,
                f"{repeats} runs each after {warmup} warm-up",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--repeats", type=int, default=REPEATS, help="timed runs of each (%(default)s)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed runs of each first (%(default)s)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the timings as JSON to PATH")
    args = parser.parse_args(argv)

    times = measure(args.repeats, args.warmup)
    medians = {name: Stat.of(runs).median for name, runs in times.items()}
    found = {case: ratios(times[f"cnnforge check, {case}"], times[BASE]).median for case in CHECKS}
    width = max(map(len, times))
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each after {args.warmup} warm-up, medians:")
    for name, runs in times.items():
        spread = f"(min {min(runs) * 1000:.1f}, max {max(runs) * 1000:.1f})"
        print(f"  {name:<{width}} {medians[name] * 1000:7.1f} ms  {spread}")
    for case, ratio in found.items():
        verdict = "met" if ratio <= TARGET else "missed"
        print(f"  {case}: ratio {ratio:.3f} (1/{1 / ratio:.1f}); target at most 1/{round(1 / TARGET)}: {verdict}")
    if args.json:
        report = {
            "python": sys.version.split()[0],
            "checks": {case: [spec.relative_to(ROOT).as_posix() for spec in specs] for case, specs in CHECKS.items()},
            "repeats": args.repeats,
            "warmup": args.warmup,
            "seconds": {name: {"median": medians[name], "runs": runs} for name, runs in times.items()},
            "ratios": found,
            "target": TARGET,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
