"""Time `cnnforge check` on the shipped specs against `import torch`, each a whole process.

Run `python -m benchmarks.check_speed [-n N] [--json PATH]` from the project root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "cnnforge" / "architectures").glob("*.yaml"))
TARGET = 1 / 5  # the check should cost at most this fraction of a bare torch import


def seconds(command: list[str]) -> float:
    """Wall time of one run of `command`, which must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--repeats", type=int, default=20, help="timed runs of each command (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each command first (default 2)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the timings as JSON to PATH")
    args = parser.parse_args(argv)

    commands = {
        "cnnforge check": [sys.executable, "-m", "cnnforge", "check", *map(str, SPECS)],
        "import torch": [sys.executable, "-c", "import torch"],
    }
    for _ in range(args.warmup):
        for command in commands.values():
            seconds(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
        for name, command in commands.items():
            times[name].append(seconds(command))

    medians = {name: statistics.median(runs) for name, runs in times.items()}
    ratio = medians["cnnforge check"] / medians["import torch"]
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each after {args.warmup} warm-up, medians:")
    for name, runs in times.items():
        print(f"  {name:<15} {medians[name] * 1000:7.1f} ms  (min {min(runs) * 1000:.1f}, max {max(runs) * 1000:.1f})")
    verdict = "met" if ratio <= TARGET else "missed"
    print(f"  ratio {ratio:.3f} (1/{1 / ratio:.1f}); target at most 1/{round(1 / TARGET)}: {verdict}")
    if args.json:
        report = {
            "python": sys.version.split()[0],
            "specs": [spec.relative_to(ROOT).as_posix() for spec in SPECS],
            "repeats": args.repeats,
            "warmup": args.warmup,
            "seconds": {name: {"median": medians[name], "runs": runs} for name, runs in times.items()},
            "ratio": ratio,
            "target": TARGET,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
