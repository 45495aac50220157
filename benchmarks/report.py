"""Rows of results, and the table, JSON and Markdown made from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .timing import Stat

COMPARED = "ratio (median, min-max) / difference (mean ± sd, min to max)"
COLUMNS = ("benchmark", "case", "measured", "baseline", COMPARED, "target", "verdict", "note")


@dataclass(frozen=True)
class Measure:
    """One contender's figure: what was measured, in which unit, over the kept windows (`summary` "median": the
    median, lowest and highest) or over independent runs ("mean": the mean ± standard deviation, lowest and
    highest; a single run's figure alone)."""

    label: str
    unit: str
    stat: Stat
    summary: str = "median"

    def __str__(self) -> str:
        s = self.stat
        if self.summary == "mean":
            if len(s.values) == 1:
                return f"{self.label}: {number(s.mean)} {self.unit}"
            return f"{self.label}: {number(s.mean)} ± {number(s.sd)} {self.unit} ({number(s.low)}-{number(s.high)})"
        return f"{self.label}: {number(s.median)} {self.unit} ({number(s.low)}-{number(s.high)})"


@dataclass(frozen=True)
class Row:
    """One line of the table: a contender against its baseline, their window-by-window ratio and its target; with
    `difference`, `ratio` holds run-by-run differences (ours - base) instead, shown signed as mean ± standard
    deviation. A row without figures says why in `note` (a benchmark skipped, a setting not available)."""

    benchmark: str
    case: str
    ours: Measure | None = None
    base: Measure | None = None
    ratio: Stat | None = None
    ratio_of: str = ""  # what the ratio divides, e.g. "cnnforge / hand-written images/s"
    target: str = ""
    met: bool | None = None
    note: str = ""
    difference: bool = False

    def cells(self) -> tuple[str, ...]:
        ratio = "" if self.ratio is None else f"{self.ratio.median:.3f} ({self.ratio.low:.3f}-{self.ratio.high:.3f})"
        if self.ratio is not None and self.difference:
            d = self.ratio
            ratio = signed(d.mean)
            if len(d.values) > 1:
                ratio += f" ± {number(d.sd)} ({signed(d.low)} to {signed(d.high)})"
        verdict = {True: "met", False: "missed", None: ""}[self.met]
        ours, base = str(self.ours or ""), str(self.base or "")
        return (self.benchmark, self.case, ours, base, ratio, self.target, verdict, self.note)


def number(x: float) -> str:
    """A figure to three significant digits, whole numbers from 100 on: 12,345, 123, 12.3, 1.23, 0.0123."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def signed(x: float) -> str:
    """A difference as number() writes it, with its sign: +1.23, -0.5, 0."""
    return f"+{number(x)}" if x > 0 else number(x)


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table."""
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def markdown_table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [COLUMNS, tuple("---" for _ in COLUMNS), *(row.cells() for row in rows)]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)


def as_json(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows as plain data, every window's figure included."""
    return [asdict(row) for row in rows]


METHOD = (  # of the timings; a benchmark that measures something else has a METHOD of its own
    "Every ratio is measured side by side in one process run: the contenders' windows are interleaved, the order "
    "reversed every other round, after warm-up windows that are not kept. Figures are medians of the kept windows, "
    "with the lowest and highest in brackets; a ratio is taken window by window (contenders of the same round), "
    "and the target is checked against the median of those ratios."
)


def markdown(
    rows: list[Row],
    machine: dict[str, str],
    date: str,
    command: str,
    descriptions: dict[str, str],
    quick: bool,
    methods: list[str] | None = None,
) -> str:
    """A Markdown report: the table, how it was measured (`methods`, a paragraph each; METHOD by default), what
    each benchmark is, the machine, date and command."""
    smoke = " With --quick every benchmark is tiny: a smoke test, not a measurement." if quick else ""
    lines = [
        "# Benchmarks",
        "",
        f"Produced on {date} by `{command}`, run from the project root.{smoke}",
        "",
        markdown_table(rows),
        "",
        *(line for method in methods or [METHOD] for line in (method, "")),
        "## What each benchmark measures",
        "",
        *(f"- {' '.join(text.split())}" for text in descriptions.values()),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
    ]
    return "\n".join(lines) + "\n"
