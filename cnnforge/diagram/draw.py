"""A spec's diagram drawn with matplotlib in the style of the LeNet and AlexNet papers: each feature map a box,
each kernel a small square on the map it reads with lines to the map it makes, features as bars; in a graph, a
skip connection an arc past its block into a circle where the branches meet, branches side by side, and groups in
dashed frames, repetitions that are alike drawn once as ×N."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import BinaryIO

from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon
from matplotlib.path import Path as Curve
from matplotlib.textpath import TextPath

from ..compiler import Compiled
from ..files import write_new
from ..layers import show
from . import layout as geometry
from .layout import Box, Column, Cuboid, Join, Layout, Skip
from .stages import plan

FONT_FAMILY = "DejaVu Sans"  # ships with matplotlib, so text measures the same everywhere
COLOURS = {"input": "#d4d4d4", "conv": "#8fbfe0", "pool": "#a6d9a0", "linear": "#f8b878"}
EDGE = "#4a4a4a"
LINES = "#3a3a3a"
KERNEL = "#d6443a"
SKIP = "#2a6fb0"  # an empty branch's arc, and its label
FRAME = "#8a8a8a"
TAG = "#555555"
MIN_KERNEL = 2.5  # points: a kernel is drawn at least this big, however large the map
DPI = 150  # for PNG
RC = {  # the same SVG every time, and PNG text as wide as measured
    "svg.hashsalt": "cnnforge",
    "svg.fonttype": "path",
    "font.family": FONT_FAMILY,
    "text.hinting": "none",
}


@cache
def measure(text: str, size: float, bold: bool) -> float:
    """The width of `text` in points, as matplotlib will draw it."""
    prop = FontProperties(family=FONT_FAMILY, weight="bold" if bold else "normal")
    return TextPath((0, 0), text, size=size, prop=prop).get_extents().width


def title(compiled: Compiled) -> str:
    spec = compiled.spec
    assert spec is not None and compiled.output is not None
    return (
        f"{spec.name}: {show(spec.input)} → {show(compiled.output)}, "
        f"{compiled.total_params:,} params, {compiled.total_macs():,} MACs"
    )


def figure(compiled: Compiled, max_width: float = geometry.MAX_WIDTH) -> Figure:
    """The diagram of a spec without errors, one point of the layout per 1/72 inch."""
    placed = geometry.layout(plan(compiled), title(compiled), measure, max_width)
    fig = Figure(figsize=(placed.width / 72, placed.height / 72))
    axes = fig.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, placed.width)
    axes.set_ylim(0, placed.height)
    axes.set_axis_off()
    _draw(axes, placed)
    return fig


def save(compiled: Compiled, path: Path, max_width: float = geometry.MAX_WIDTH) -> Path:
    """Write the diagram as SVG or PNG (by the file's suffix) as a new file: `path`, or STEM-2.svg and so on when
    that exists (never replacing a file), written atomically; the same bytes on every run. Returns its path."""
    fmt = path.suffix.lower().lstrip(".")
    (written,) = write_new(path.parent, path.stem, {path.suffix: lambda file: _write(compiled, file, fmt, max_width)})
    return written


def svg(compiled: Compiled, max_width: float = geometry.MAX_WIDTH) -> str:
    """The diagram as an <svg> element, to put in an HTML page."""
    text = io.StringIO()
    _write(compiled, text, "svg", max_width)
    return text.getvalue()[text.getvalue().index("<svg") :]


def _write(compiled: Compiled, target: BinaryIO | io.StringIO, suffix: str, max_width: float) -> None:
    import matplotlib

    with matplotlib.rc_context(RC):
        metadata = {"Date": None} if suffix == "svg" else {"Software": None}
        figure(compiled, max_width).savefig(target, format=suffix, dpi=DPI, metadata=metadata)


def _draw(axes, placed: Layout) -> None:
    axes.text(
        placed.width / 2,
        placed.title_y,
        placed.title,
        ha="center",
        va="baseline",
        weight="bold",
        fontsize=geometry.TITLE_FONT,
    )
    for column in placed.columns:
        _box(axes, column.box, COLOURS[column.stage.role])
        if column.arrow_from is not None:
            y = column.op_y - geometry.PAD
            _arrow(axes, (column.arrow_from, y), (column.box.x - 2, y))
        elif column.before is not None:
            _join(axes, column.before, column)
        if column.exit:
            y = column.box.y + (column.box.height + column.box.dy) / 2
            _arrow(axes, (column.box.right + 2, y), (column.box.right + geometry.ARROW, y))
        if column.arrow_from is not None or column.before is not None:
            colour = KERNEL if column.stage.kernel else LINES
            for i, text in enumerate(reversed(column.op_lines)):
                y = column.op_y + i * geometry.OP_FONT * geometry.LINE
                axes.text(column.op_x, y, text, ha="center", va="baseline", fontsize=geometry.OP_FONT, color=colour)
        _labels(axes, column.x, column.label_top, column.lines)
    for line in placed.lines:
        if line.arrow:
            _arrow(axes, line.points[0], (line.points[-1][0] - 2, line.points[-1][1]))
        else:
            axes.plot(*zip(*line.points, strict=True), color=LINES, linewidth=0.8, zorder=2)
    for number, skip in enumerate(placed.skips):
        _skip(axes, skip, number)
    for join in placed.joins:
        _merge(axes, join)
    for text in placed.texts:
        axes.text(text.x, text.y, text.text, fontsize=geometry.TAG_FONT, style="italic", color=TAG)
    for number, box in enumerate(placed.boxes):
        _frame(axes, box, number)
    for i, line in enumerate(geometry.NOTE):
        y = placed.note_y - i * geometry.NOTE_FONT * geometry.LINE
        axes.text(geometry.MARGIN, y, line, ha="left", va="top", fontsize=geometry.NOTE_FONT, color=LINES)


def _labels(axes, x: float, top: float, lines: list[tuple[str, bool]]) -> None:
    for i, (text, bold) in enumerate(lines):
        y = top - i * geometry.FONT * geometry.LINE
        axes.text(x, y, text, ha="center", va="top", fontsize=geometry.FONT, weight="bold" if bold else "normal")


def _skip(axes, skip: Skip, number: int) -> None:
    """An arc with rounded corners from the fork's input over its branches into the join; the SVG names it
    skip<number>."""
    (x0, y0), (_, top), (x1, _), (_, y1) = skip.points
    r = geometry.CORNER
    vertices = [(x0, y0), (x0, top - r), (x0, top), (x0 + r, top), (x1 - r, top), (x1, top), (x1, top - r), (x1, y1)]
    codes = [Curve.MOVETO, Curve.LINETO, Curve.CURVE3, Curve.CURVE3, Curve.LINETO, Curve.CURVE3, Curve.CURVE3]
    arc = FancyArrowPatch(
        path=Curve(vertices, [*codes, Curve.LINETO]), arrowstyle="-|>", mutation_scale=7, color=SKIP, linewidth=0.9
    )
    arc.set_gid(f"skip{number}")
    axes.add_patch(arc)
    font = {"fontsize": geometry.TAG_FONT, "style": "italic", "color": SKIP}
    axes.text(skip.label_x, skip.label_y, skip.label, ha="center", **font)


def _merge(axes, join: Join) -> None:
    """A circle marked + (add), × (multiply) or ‖ (concat), and its label block under it."""
    r = geometry.JOIN
    axes.add_patch(Circle((join.x, join.y), r, facecolor="white", edgecolor=LINES, linewidth=0.8, zorder=3))
    d = r * 0.55
    strokes = {
        "add": [((-d, 0), (d, 0)), ((0, -d), (0, d))],
        "multiply": [((-d, -d), (d, d)), ((-d, d), (d, -d))],
        "concat": [((-d / 2, -d), (-d / 2, d)), ((d / 2, -d), (d / 2, d))],
    }[join.op]
    for (a, b), (c, e) in strokes:
        axes.plot([join.x + a, join.x + c], [join.y + b, join.y + e], color=LINES, linewidth=0.8, zorder=4)
    _labels(axes, join.x, join.label_top, join.lines)


def _frame(axes, box: Box, number: int) -> None:
    """A dashed frame with its title at its top left; the SVG names it frame<number>."""
    pad = geometry.FRAME_PAD
    frame = FancyBboxPatch(
        (box.x0, box.y0),
        box.x1 - box.x0,
        box.y1 - box.y0,
        boxstyle="round,pad=0,rounding_size=4",
        facecolor="none",
        edgecolor=FRAME,
        linewidth=0.7,
        linestyle=(0, (4, 2)),
        zorder=0,
    )
    frame.set_gid(f"frame{number}")
    axes.add_patch(frame)
    for i, text in enumerate(box.title):
        y = box.y1 - pad / 2 - i * geometry.FRAME_FONT * geometry.LINE
        weight = "bold" if i == 0 else "normal"
        axes.text(box.x0 + pad, y, text, va="top", fontsize=geometry.FRAME_FONT, weight=weight, color=LINES)


def _shade(colour: str, amount: float) -> tuple[float, float, float]:
    """Lighter towards white for amount > 0, darker towards black for amount < 0."""
    target = 1.0 if amount > 0 else 0.0
    return tuple(c + (target - c) * abs(amount) for c in to_rgb(colour))  # type: ignore[return-value]


def _box(axes, box: Cuboid, colour: str) -> None:
    x, y, w, h, dx, dy = box.x, box.y, box.width, box.height, box.dx, box.dy
    faces = [
        ([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], colour),  # front: C wide, H high
        ([(x, y + h), (x + w, y + h), (x + w + dx, y + h + dy), (x + dx, y + h + dy)], _shade(colour, 0.45)),  # top
        ([(x + w, y), (x + w + dx, y + dy), (x + w + dx, y + h + dy), (x + w, y + h)], _shade(colour, -0.15)),  # H x W
    ]
    for corners, fill in faces:
        axes.add_patch(Polygon(corners, closed=True, facecolor=fill, edgecolor=EDGE, linewidth=0.6, zorder=1))


def _join(axes, before: Column, column: Column) -> None:
    """A kernel on the map before with lines to the point it makes on this one, or lines joining the whole
    faces when every input reaches every output (linear layers, adaptive pooling)."""
    kernel = column.stage.kernel
    if kernel is None or not before.stage.is_map:
        for u, v in ((0.0, 0.0), (1.0, 1.0)):
            (x0, y0), (x1, y1) = before.box.on_face(u, v), column.box.on_face(u, v, right=False)
            axes.plot([x0, x1], [y0, y1], color=LINES, linewidth=0.5, zorder=2)
        return
    _, h, w = before.stage.shape
    box = before.box
    half_u = max(kernel[1] / w * box.dx, MIN_KERNEL) / box.dx / 2 if box.dx else 0.0
    half_v = max(kernel[0] / h * box.height, MIN_KERNEL) / box.height / 2
    half_u, half_v = min(half_u, 0.5), min(half_v, 0.5)  # a window larger than the map (padded) covers all of it
    corners = [box.on_face(0.5 + su * half_u, 0.5 + sv * half_v) for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    target = column.box.on_face(0.5, 0.5, right=False)
    for x, y in corners:
        axes.plot([x, target[0]], [y, target[1]], color=KERNEL, linewidth=0.5, zorder=2)
    axes.add_patch(
        Polygon(corners, closed=True, facecolor=_shade(KERNEL, 0.5), edgecolor=KERNEL, linewidth=0.6, zorder=3)
    )
    axes.plot(*target, marker="o", markersize=1.6, color=KERNEL, zorder=3)


def _arrow(axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, color=LINES, linewidth=0.8))
