"""The report of a sweep: one page comparing its jobs (a table best first, every job's validation accuracy on one
plot), linking to each job's own report, which it writes too."""

from __future__ import annotations

import base64
import csv
import io
import math
import os
import shlex
from pathlib import Path
from urllib.parse import quote

from ..files import WriteError, replace
from ..train.metrics import epochs as epoch_rows
from . import page
from .page import Raw, _e, _number, _section, _table, document
from .run import ReportError, SweepFolder, read_sweep

COLUMNS = ["rank", "job", "settings", "best val acc", "epochs", "seconds", "status", "report"]


def write(sweep_dir: Path, output: Path | None = None) -> Path:
    """Write each job's report (JOB/report.html) and the sweep's page comparing them to `output` (default
    SWEEP_DIR/report.html, replacing an earlier one), atomically; return the sweep page's path."""
    sweep = read_sweep(sweep_dir)
    output = output or sweep_dir / "report.html"
    reports = {}
    for job in sweep.jobs:
        folder = sweep_dir / job["folder"]
        if (folder / "config.yaml").is_file():
            reports[job["job"]] = page.write(folder)
    text = render(sweep, reports, output.parent)
    try:
        return replace(output, lambda file: file.write(text.encode()))
    except WriteError as error:
        raise ReportError(str(error)) from None


def render(sweep: SweepFolder, reports: dict[str, Path], here: Path) -> str:
    """The page: the jobs best first, with the settings they differ in and links (relative to `here`) to the
    `reports` of those that have one, then the validation accuracy of every job per epoch."""
    jobs = sorted(sweep.jobs, key=lambda job: (-_accuracy(job), _number(job["job"])))
    common, differs = _settings(jobs)
    rows = []
    for rank, job in enumerate(jobs, 1):
        status = job["status"] if not job.get("error") else f"{job['status']}: {job['error']}"
        report = reports.get(job["job"])
        link = Raw(f'<a href="{_e(quote(os.path.relpath(report, here)))}">{_e(job["folder"])}</a>') if report else ""
        row = [job["best_val_acc"], job["epochs"], job["seconds"], status, link]
        rows.append([str(rank), job["job"], differs[job["job"]], *row])
    table = _table("sweep-table", COLUMNS, rows, {2, 6, 7}, lambda n: "best" if n == 0 and rows[0][3] else "")
    ok = sum(job["status"] == "ok" for job in jobs)
    facts = [f"sweep folder {sweep.path}", f"{len(jobs)} jobs: {ok} ok, {len(jobs) - ok} failed"]
    if common:
        facts.append(f"every job: {common}")
    title = f"sweep {sweep.path.resolve().parent.name}/{sweep.name}"
    about = "<p>Best validation accuracy first, in bold; settings are those the jobs differ in.</p>"
    return document(
        title,
        " · ".join(facts),
        _section("jobs", "Jobs", table, about),
        _section("curves", "Validation accuracy", _curves(sweep, jobs, differs)),
    )


def _accuracy(job: dict[str, str]) -> float:
    """The job's best validation accuracy; -inf when it has none (failed before an epoch), so it sorts last."""
    accuracy = _number(job["best_val_acc"])
    return float("-inf") if math.isnan(accuracy) else accuracy


def _settings(jobs: list[dict[str, str]]) -> tuple[str, dict[str, str]]:
    """The overrides every job has, and for each job those it does not share with all the others."""
    overrides = {job["job"]: shlex.split(job["overrides"]) for job in jobs}
    shared = set.intersection(*map(set, overrides.values())) if len(jobs) > 1 else set()
    first = next(iter(overrides.values()), [])
    common = " ".join(shlex.quote(o) for o in first if o in shared)
    return common, {n: " ".join(shlex.quote(o) for o in own if o not in shared) for n, own in overrides.items()}


def _curves(sweep: SweepFolder, jobs: list[dict[str, str]], differs: dict[str, str]) -> str:
    """Every job's validation accuracy per epoch on one plot, as an inline PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = {}
    for job in jobs:
        try:
            with open(sweep.path / job["folder"] / "metrics.csv", newline="") as file:
                rows = epoch_rows(list(csv.DictReader(file)))
        except OSError:
            continue
        if rows:
            curves[job["job"]] = ([_number(r.get("epoch")) for r in rows], [_number(r.get("val_acc")) for r in rows])
    if not curves:
        return '<p class="note">No job has finished an epoch (no metrics.csv in the job folders).</p>'
    figure, axes = plt.subplots(figsize=(10, 5), constrained_layout=True)
    for job, (epochs, accuracy) in curves.items():
        axes.plot(epochs, accuracy, "o-", label=f"{job}: {differs[job]}"[:80])
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("validation accuracy")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    png = io.BytesIO()
    try:
        figure.savefig(png, format="png", dpi=100)
    finally:
        plt.close(figure)
    data = base64.b64encode(png.getvalue()).decode("ascii")
    return f'<img id="sweep-curves" alt="validation accuracy per epoch, every job" src="data:image/png;base64,{data}">'
