"""A sweep (`cnnforge train -m`): each job's folder is named by the settings it sweeps (`3_lr=0.01_optim=adam`),
and sweep.csv at the sweep's root has a row per finished job. Each job writes its own result file, then rebuilds
sweep.csv from all of them under a lock, so jobs running in parallel processes lose none of each other's rows.
Pure Python: no torch."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..files import replace
from .metrics import epochs

TABLE = "sweep.csv"  # at the sweep's root
RESULTS = ".jobs"  # at the sweep's root: N.json per finished job, and the lock that serializes rebuilding TABLE
COLUMNS = ["job", "folder", "overrides", "best_val_acc", "epochs", "seconds", "status", "error"]
NOT_SETTINGS = ("trainer.resume",)  # never part of a job folder's name
NAME_MAX = 100  # characters of a job folder's name; longer names are cut and end in a hash of the whole name
EXCLUDE_KEY = "hydra.job.config.override_dirname.exclude_keys"
RESOLVER = "cnnforge_job_folder"


def register_resolver() -> None:
    """Make `${cnnforge_job_folder:${hydra.job.num},${arch.name}}` (conf/config.yaml's sweep subdir) known."""
    from .settings import register_resolver

    register_resolver(RESOLVER, _job_folder)


def _job_folder(num: int, arch: str, *, _root_: DictConfig) -> str:
    return job_folder(num, arch, _root_.hydra)


def job_folder(num: int, arch: str, hydra: DictConfig) -> str:
    """`NUM_KEY=VALUE_KEY=VALUE`: the job's number, then its overrides but those in Hydra's
    `job.config.override_dirname.exclude_keys`, sorted as Hydra's override_dirname sorts them, each key cut to its
    last part, any character other than letters, digits and `_.=,+-` made `-`; `NUM_ARCH` when none is left.

    >>> job_folder(0, "tiny", OmegaConf.create({"overrides": {"task": ["arch=tiny", "optim.lr=0.1"]},
    ...     "job": {"config": {"override_dirname": {"kv_sep": "=", "item_sep": "_", "exclude_keys": ["arch"]}}}}))
    '0_lr=0.1'
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    options = hydra.job.config.override_dirname
    excluded = {*options.exclude_keys, *NOT_SETTINGS}
    task = OmegaConf.to_container(hydra.overrides.task, resolve=False)  # values may hold ${...}: kept as written
    items = []
    for override in sorted(OverridesParser.create().parse_overrides(task), key=lambda o: o.input_line):
        if override.key_or_group in excluded:
            continue
        key = re.split(r"[./]", override.key_or_group)[-1]
        items.append(f"{key}{options.kv_sep}{override.input_line.partition('=')[2]}")
    name = re.sub(r"[^A-Za-z0-9_.=,+-]+", "-", f"{num}_{options.item_sep.join(items) or arch}")
    if len(name) > NAME_MAX:
        name = f"{name[: NAME_MAX - 9]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def exclude_unswept(argv: list[str]) -> list[str]:
    """For `cnnforge train -m ARGV`: the Hydra override that leaves every key given one value (and
    trainer.resume) out of the job folders' names, so they name only what the sweep varies; nothing when ARGV
    sets the exclusions itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if any(arg.startswith(f"{EXCLUDE_KEY}=") for arg in argv):
        return []
    parser = OverridesParser.create()
    keys = list(NOT_SETTINGS)
    for arg in argv:
        if arg.startswith("-") or "=" not in arg or arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except HydraException:
            continue  # Hydra says what is wrong with it
        if not override.is_sweep_override() and override.key_or_group not in keys:
            keys.append(override.key_or_group)
    return [f"{EXCLUDE_KEY}=[{','.join(repr(key) for key in keys)}]"]


@dataclass
class Result:
    """One finished job, a row of sweep.csv."""

    job: int
    folder: str
    overrides: str  # as a shell would take them
    best_val_acc: str
    epochs: int
    seconds: float
    status: str  # ok or failed
    error: str = ""  # why it failed, the first line


class Job:
    """A sweep job being timed, that records how it ended in the sweep's results and sweep.csv."""

    def __init__(self, sweep_dir: Path, num: int, run_dir: Path, overrides: list[str]) -> None:
        self.sweep_dir, self.num, self.run_dir, self.overrides = sweep_dir, num, run_dir, overrides
        self.started = time.monotonic()

    def finished(self, error: str | None = None, best_accuracy: float | None = None) -> Path:
        """Record the job as ok (no `error`) or failed, and rebuild sweep.csv; returns its path. `best_accuracy` is
        the one the run returned (its EMA's where those weights serve); without it, metrics.csv's best."""
        best, epochs = _progress(self.run_dir / "metrics.csv")
        if best_accuracy is not None:
            best = f"{best_accuracy:.6g}"
        result = Result(
            job=self.num,
            folder=self.run_dir.name,
            overrides=" ".join(self.overrides),
            best_val_acc=best,
            epochs=epochs,
            seconds=round(time.monotonic() - self.started, 1),
            status="failed" if error is not None else "ok",
            error=(error or "").strip().partition("\n")[0],
        )
        results = self.sweep_dir / RESULTS
        results.mkdir(exist_ok=True)
        text = json.dumps(asdict(result), indent=1)
        replace(results / f"{self.num}.json", lambda file: file.write(text.encode()))
        return write_table(self.sweep_dir)


def _progress(metrics: Path) -> tuple[str, int]:
    """The best validation accuracy (as metrics.csv has it) and the epochs done; ("", 0) before the first."""
    try:
        with open(metrics, newline="") as file:
            rows = list(csv.DictReader(file))
    except OSError:
        return "", 0
    rows = epochs(rows)
    if not rows:
        return "", 0
    best = max(rows, key=lambda row: float(row["val_acc"]))
    return best["val_acc"], int(rows[-1]["epoch"])


def results(sweep_dir: Path) -> Iterator[dict[str, Any]]:
    """The results the sweep's jobs recorded, by job number; unreadable files are skipped."""
    found = []
    for path in (sweep_dir / RESULTS).glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    yield from sorted(found, key=lambda result: result.get("job", 0))


def write_table(sweep_dir: Path) -> Path:
    """Rebuild SWEEP/sweep.csv from the jobs' results, atomically; one writer at a time."""
    with open(sweep_dir / RESULTS / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed; a later writer reads this job's result too
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results(sweep_dir))
        return replace(sweep_dir / TABLE, lambda file: file.write(text.getvalue().encode()))
