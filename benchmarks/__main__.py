"""Run cnnforge's benchmarks side by side with their baselines; print one table, write JSON and Markdown.

    python -m benchmarks [train] [check] [compiler] [build] [export] [gpu] [augment] [--quick] [--json PATH]
                         [--markdown PATH]

With no names, all run (gpu reports itself skipped where torch sees no CUDA device). A benchmark that fails is
reported as such in the table, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import shlex
import sys
import traceback
from pathlib import Path
from types import ModuleType

import torch

from . import augment_effect, build_speed, check_speed, compiler_speed, export_speed, gpu_speed, train_speed
from .machine import cores, describe, load
from .report import METHOD, Row, as_json, markdown, table

BENCHMARKS: dict[str, ModuleType] = {
    "train": train_speed,
    "check": check_speed,
    "compiler": compiler_speed,
    "build": build_speed,
    "export": export_speed,
    "gpu": gpu_speed,
    "augment": augment_effect,
}
SEED = 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    results = Path(__file__).parent / "results.json"
    parser.add_argument("--json", metavar="PATH", type=Path, default=results, help="write JSON here (%(default)s)")
    parser.add_argument("--markdown", metavar="PATH", type=Path, help="also write a Markdown report to PATH")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.names if name not in BENCHMARKS]:
        parser.error(f"no benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)

    torch.set_num_threads(cores())
    torch.manual_seed(SEED)
    load_before = load()
    rows, failed = [], []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows += BENCHMARKS[name].run(args.quick)
        except Exception as error:  # one broken benchmark is reported, and the others still run
            traceback.print_exc()
            rows.append(Row(name, "", note=f"failed: {type(error).__name__}: {error}".splitlines()[0]))
            failed.append(name)
    print(table(rows))

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = shlex.join(["python", "-m", "benchmarks", *argv])
    loads = f"{load_before:.2f} / {load():.2f}"
    machine = {**describe(), "load average (1 min), before / after (this run adds up to its threads)": loads}
    report = {"date": date, "command": command, "quick": args.quick, "machine": machine, "rows": as_json(rows)}
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.markdown:
        descriptions = {name: inspect.getdoc(BENCHMARKS[name]).split("\n\n")[0] for name in names}
        methods = list(dict.fromkeys(getattr(BENCHMARKS[name], "METHOD", METHOD) for name in names))
        args.markdown.write_text(markdown(rows, machine, date, command, descriptions, args.quick, methods))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
