"""What a run folder holds, read without torch: its config, summary, metrics and curves; and what a sweep folder
holds: its sweep.csv, a row per job."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..train.metrics import epochs
from ..train.sweep import COLUMNS, TABLE

SWEEP_RECORD = "multirun.yaml"  # Hydra writes it at the root of every sweep
CHECKPOINTS = ("best.pt", "last.pt")  # the report evaluates the first of these that the run has


class ReportError(Exception):
    """A folder that is not a run or sweep folder: said in one line, never as a traceback."""


@dataclass
class RunFolder:
    """The files of one `cnnforge train` run; None (or empty) for those it lacks."""

    path: Path
    config: str
    summary: str | None = None
    metrics: list[dict[str, str]] = field(default_factory=list)
    curves: bytes | None = None
    checkpoint: Path | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name


def read(path: Path) -> RunFolder:
    """The run folder at `path`; ReportError when it is missing or not a run folder (no config.yaml)."""
    if not path.exists():
        raise ReportError(f"{path}: no such folder")
    if not path.is_dir():
        raise ReportError(f"{path}: not a folder; give a run folder, outputs/<date>/<time>_<arch>/")
    config = path / "config.yaml"
    if not config.is_file():
        raise ReportError(
            f"{path}: neither a run folder (it has no config.yaml) nor a sweep folder (no {TABLE}); give one that "
            "cnnforge train made"
        )
    try:
        run = RunFolder(path, config.read_text(errors="replace"))
        if (summary := path / "summary.txt").is_file():
            run.summary = summary.read_text(errors="replace")
        if (metrics := path / "metrics.csv").is_file():
            with open(metrics, newline="", errors="replace") as file:
                run.metrics = epochs(list(csv.DictReader(file)))  # without the learning rate's step rows
        if (curves := path / "curves.png").is_file():
            run.curves = curves.read_bytes()
    except OSError as error:
        raise ReportError(f"{error.filename or path}: cannot read: {error.strerror or error}") from None
    run.checkpoint = next((path / name for name in CHECKPOINTS if (path / name).is_file()), None)
    return run


@dataclass
class SweepFolder:
    """The root of a `cnnforge train -m` sweep: its sweep.csv, a row per finished job."""

    path: Path
    jobs: list[dict[str, str]]

    @property
    def name(self) -> str:
        return self.path.resolve().name


def is_sweep(path: Path) -> bool:
    return (path / TABLE).is_file() or (path / SWEEP_RECORD).is_file()


def read_sweep(path: Path) -> SweepFolder:
    """The sweep folder at `path`; ReportError when it has no sweep.csv yet or it cannot be read."""
    table = path / TABLE
    if not table.is_file():
        raise ReportError(
            f"{path}: a sweep folder without {TABLE}: none of its jobs has finished yet, or a cnnforge older than "
            "sweep tables ran it"
        )
    try:
        with open(table, newline="", errors="replace") as file:
            reader = csv.DictReader(file)
            jobs = list(reader)
    except OSError as error:
        raise ReportError(f"{table}: cannot read: {error.strerror or error}") from None
    if missing := [column for column in COLUMNS if column not in (reader.fieldnames or [])]:
        raise ReportError(f"{table}: not a sweep table of cnnforge train: no column {', '.join(missing)}")
    return SweepFolder(path, jobs)
