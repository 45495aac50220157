"""The report: one HTML page that needs nothing else, its images inline, and a content policy that lets it load
nothing from anywhere."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

import yaml

from ..files import WriteError, replace
from ..summary import as_table
from ..train.checkpoint import CheckpointError
from ..train.data import DataError
from . import evaluation
from .evaluation import Evaluation
from .run import CHECKPOINTS, ReportError, RunFolder, read

__all__ = ["ReportError", "render", "write"]

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # nothing is fetched, no script runs
BLUE, RED = "31, 119, 180", "214, 39, 40"  # shading of the confusion matrix, and of the classes' accuracy
DIAGRAM_ZOOM = 1.6  # the diagram is shown at most this much larger than drawn, and never wider than the page
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.facts { color: #555; } .note { color: #8a5a00; background: #fff6e0; padding: 0.5em 0.8em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } td.text, th.text { text-align: left; } td.pre { white-space: pre; }
tr.best td { font-weight: bold; }
#confusion-matrix td { min-width: 2.2em; text-align: center; border: 1px solid #fff; }
#diagram { margin: 1em 0; } #diagram svg { width: 100%; height: auto; } #curves { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; } pre.totals { background: none; padding: 0; }
"""


def write(run_dir: Path, output: Path | None = None) -> Path:
    """Write the report of the run in `run_dir` to `output` (default RUN_DIR/report.html, replacing an earlier
    one) atomically; return its path."""
    run = read(run_dir)
    output = output or run_dir / "report.html"
    result: Evaluation | str
    if run.checkpoint is None:
        result = f"This run folder has no checkpoint ({' or '.join(CHECKPOINTS)}), so there is no diagram of the "
        result += "spec it trained and no confusion matrix."
    else:
        try:
            result = evaluation.run(run.checkpoint)
        except (CheckpointError, DataError) as error:
            result = f"{run.checkpoint.name} could not be evaluated: {error}"
    text = render(run, result)
    try:
        return replace(output, lambda file: file.write(text.encode()))
    except WriteError as error:
        raise ReportError(str(error)) from None


def render(run: RunFolder, result: Evaluation | str) -> str:
    """The page: the run's facts, the model (diagram and summary table), curves, metrics, confusion matrix with
    each class's accuracy, and config; `result` is the checkpoint's evaluation, or why there is none."""
    config = _config(run.config)
    arch = config.get("arch") if isinstance(config.get("arch"), dict) else {}
    name = result.compiled.spec.name if isinstance(result, Evaluation) else arch.get("name", "run")
    title = f"{name}: run {run.path.resolve().parent.name}/{run.name}"
    sections = [
        _model(run, result),
        _curves(run),
        _metrics(run),
        _confusion(result),
        _section("config", "Config", f"<pre>{_e(run.config)}</pre>"),
    ]
    note = [] if isinstance(result, Evaluation) else [f'<p class="note">{_e(result)}</p>']
    return document(title, _facts(run, config), *note, *sections)


def document(title: str, facts: str, *body: str) -> str:
    """A whole page: `title` as its heading, a line of `facts` under it, then `body` (HTML)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="facts">{_e(facts)}</p>',
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


class Raw(str):
    """A table cell that is HTML already (a link), not text to escape."""


class Indented(str):
    """A table cell whose spaces are kept as they are (a name in a graph's tree: '│  ├─ conv1')."""


def _e(text: object) -> str:
    return html.escape(str(text))


def _config(text: str) -> dict:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _facts(run: RunFolder, config: dict) -> str:
    """One line: the folder, the data, the epochs, the best validation accuracy."""
    facts = [f"run folder {run.path}"]
    if isinstance(data := config.get("data"), dict) and "name" in data:
        facts.append(f"data {data['name']}")
    if run.metrics:
        facts.append(f"{len(run.metrics)} epochs")
        best = max(run.metrics, key=lambda row: _number(row.get("val_acc")))
        facts.append(f"best validation accuracy {best.get('val_acc')} (epoch {best.get('epoch')})")
    return " · ".join(facts)


def _number(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return float("-inf")


def _section(id: str, heading: str, *body: str) -> str:
    return "\n".join([f'<section id="{id}-section">', f"<h2>{_e(heading)}</h2>", *body, "</section>"])


def _table(id: str, header: list[str], rows: list[list[str]], text_columns: set[int], row_class=None) -> str:
    """An HTML table; cells are escaped, columns in `text_columns` left-aligned."""

    def cell(tag: str, i: int, value: str) -> str:
        content = value if isinstance(value, Raw) else _e(value)
        css = "text pre" if isinstance(value, Indented) else "text"
        return f'<{tag} class="{css}">{content}</{tag}>' if i in text_columns else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    lines = [f'<table id="{id}">', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for n, row in enumerate(rows):
        css = f' class="{row_class(n)}"' if row_class and row_class(n) else ""
        lines.append(f"<tr{css}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _model(run: RunFolder, result: Evaluation | str) -> str:
    """The diagram of the checkpoint's spec, and its summary table as `cnnforge summary` prints it (else the
    run's summary.txt)."""
    parts = []
    if isinstance(result, Evaluation):
        from ..diagram.draw import svg

        diagram = svg(result.compiled)
        width = float(re.search(r'width="([\d.]+)pt"', diagram)[1])
        parts.append(f'<figure id="diagram" style="max-width: {DIAGRAM_ZOOM * width:.0f}pt">{diagram}</figure>')
    summary = as_table(result.compiled) if isinstance(result, Evaluation) else run.summary
    if summary is None:
        parts.append('<p class="note">No summary.txt in this run.</p>')
    elif table := _summary_table(summary):
        parts.append(table)
    else:
        parts.append(f"<pre>{_e(summary)}</pre>")
    return _section("model", "Model", *parts)


def _summary_table(text: str) -> str | None:
    """A fixed-width table with a line of dashes under its header and after its rows, as HTML: the lines before
    it and after it become paragraphs. None for text of another form."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() and set(line) <= {"-", " "}]
    if len(rules) < 2 or rules[0] < 1 or lines[rules[0]] != lines[rules[1]]:
        return None
    first, last = rules[:2]
    spans = [match.span() for match in re.finditer(r"-+", lines[first])]

    def cells(line: str) -> list[str]:
        return [line[start:end].strip() for start, end in spans]

    rows = [cells(line) for line in lines[first + 1 : last]]
    numeric = re.compile(r"-?[\d,.]*")  # a graph's group rows have no number
    text_columns = {i for i in range(len(spans)) if not all(numeric.fullmatch(row[i]) for row in rows)}
    for row, line in zip(rows, lines[first + 1 : last], strict=True):  # a graph's tree indents its names: kept
        for i in text_columns:
            row[i] = Indented(line[spans[i][0] : spans[i][1]].rstrip())
    before = [f"<p>{_e(line)}</p>" for line in lines[: first - 1]]
    after = f'<pre class="totals">{_e(chr(10).join(lines[last + 1 :]))}</pre>' if lines[last + 1 :] else ""
    return "\n".join([*before, _table("summary-table", cells(lines[first - 1]), rows, text_columns), after])


def _curves(run: RunFolder) -> str:
    if run.curves is None:
        return _section("curves", "Curves", '<p class="note">No curves.png in this run.</p>')
    data = base64.b64encode(run.curves).decode("ascii")
    image = f'<img id="curves" alt="loss and accuracy per epoch" src="data:image/png;base64,{data}">'
    return _section("curves", "Curves", image)


def _metrics(run: RunFolder) -> str:
    if not run.metrics:
        return _section("metrics", "Metrics per epoch", '<p class="note">No metrics.csv in this run.</p>')
    header = list(run.metrics[0])
    best = max(range(len(run.metrics)), key=lambda n: _number(run.metrics[n].get("val_acc")))
    rows = [[row.get(key) or "" for key in header] for row in run.metrics]
    table = _table("metrics-table", header, rows, set(), lambda n: "best" if n == best else "")
    return _section("metrics", "Metrics per epoch", table, "<p>The best validation accuracy is in bold.</p>")


def _confusion(result: Evaluation | str) -> str:
    """Rows: the true class; columns: the predicted class; shaded by the share of the row. Under it, each class's
    accuracy."""
    if not isinstance(result, Evaluation):
        return _section("confusion", "Confusion matrix", f'<p class="note">{_e(result)}</p>')
    head = ['<th class="text">true \\ predicted</th>', *(f"<th>{_e(c)}</th>" for c in result.classes)]
    lines = ['<table id="confusion-matrix">', f"<thead><tr>{''.join(head)}</tr></thead>", "<tbody>"]
    for name, row in zip(result.classes, result.scores.confusion.tolist(), strict=True):
        total = max(sum(row), 1)
        cells = "".join(_shaded(str(count), count / total, BLUE) for count in row)
        lines.append(f'<tr><th class="text">{_e(name)}</th>{cells}</tr>')
    lines += ["</tbody>", "</table>"]
    about = (
        f"{result.checkpoint.name} (after epoch {result.epoch}) on the {result.data} validation split, "
        f"{result.samples:,} samples: {result.scores}. "
        "Rows are the true classes, columns the predicted ones; shading is the share of the row."
    )
    return _section("confusion", "Confusion matrix", f"<p>{_e(about)}</p>", *lines, *_per_class(result))


def _per_class(result: Evaluation) -> list[str]:
    """Each class's samples, those predicted as it and their share, the worst class first, shaded by the square
    root of the share missed (so that a few misses show); classes without samples last."""
    scores = result.scores
    rows = sorted(
        zip(result.classes, scores.per_class_counts, scores.per_class, strict=True),
        key=lambda row: (row[2] is None, row[2] or 0.0),  # stable: classes of equal accuracy keep their order
    )
    lines = [
        "<h3>Accuracy per class</h3>",
        "<p>The share of each class's samples predicted as it (its recall), the worst first; shading grows with the "
        "share missed (as its square root, so that a few misses show); a class without samples has a dash.</p>",
        '<table id="per-class">',
        '<thead><tr><th class="text">class</th><th>samples</th><th>correct</th><th>accuracy</th></tr></thead>',
        "<tbody>",
    ]
    for name, (samples, correct), share in rows:
        accuracy = "<td>-</td>" if share is None else _shaded(f"{share:.4f}", math.sqrt(1 - share), RED)
        lines.append(f'<tr><td class="text">{_e(name)}</td><td>{samples}</td><td>{correct}</td>{accuracy}</tr>')
    return [*lines, "</tbody>", "</table>"]


def _shaded(text: str, share: float, colour: str) -> str:
    """A cell whose background is `colour` (r, g, b) at opacity `share`, its text light where that is dark."""
    ink = "#fff" if share > 0.6 else "#222"
    return f'<td style="background: rgba({colour}, {share:.3f}); color: {ink}">{_e(text)}</td>'
