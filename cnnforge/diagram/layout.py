"""Where each stage of a diagram goes, in points (1/72 inch) with y upwards: sizes on a compressed scale, columns
wide enough for their labels, and rows that wrap when the drawing gets too wide. Pure Python: the caller supplies
a function that measures text."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..layers import show
from .stages import Stage, compact

Measure = Callable[[str, float, bool], float]  # (text, font size, bold) -> width in points

TALLEST = 72.0  # the tallest map is drawn this high, ...
SIDE = (4.0, 10.0)  # ... so a map of H x W is u*sqrt(H) high and u*sqrt(W) deep, u in this range
THICKNESS = 2.0  # ... and THICKNESS*sqrt(C) thick
BAR = 6.0  # F features are a bar BAR*cbrt(F) high
BAR_WIDTH = 5.0
LONGEST = 4 * TALLEST  # no side is drawn longer (a map of 5184 rows, 20736 channels, 110,592 features): the labels
# give the true sizes, and a drawing of a [1, 2^31 - 1, 2^31 - 1] input stays a page, not 2 km of PNG
BAR_DEPTH = 4.0
OBLIQUE = 0.6  # depth is drawn at 45 degrees, shortened to this share of its length
FONT = 9.0  # the labels under each stage
OP_FONT = 9.0  # the operation between two stages
TITLE_FONT = 11.0
LINE = 1.25  # line height, in font sizes
PAD = 5.0
MIN_GAP = 24.0  # the least room between two boxes, for the lines that join them
BLOCK_GAP = 10.0  # the least room between two columns of labels
ROW_GAP = 18.0
MARGIN = 10.0
ARROW = 20.0  # the arrows that lead from the end of one row to the start of the next
MAX_WIDTH = 640.0  # rows wrap beyond this
NOTE_FONT = 7.5
NOTE = (  # how to read the drawing, under it
    "Boxes are feature maps [C, H, W]: C across, H up, W in depth, each side as the square root of its size.",
    "Bars are features, as the cube root. A red square is a kernel; its lines meet at the value it computes.",
)
FOLLOWERS_WIDTH = 90.0  # pointwise layers after a stage are listed on lines about this wide or as wide as the rest


def unit(stages: list[Stage]) -> float:
    """Points per square root of a row or column: the tallest map TALLEST high, within SIDE."""
    tallest = max((stage.shape[1] for stage in stages if stage.is_map), default=1)
    return min(max(TALLEST / math.sqrt(tallest), SIDE[0]), SIDE[1])


@dataclass(frozen=True)
class Cuboid:
    """A box in oblique projection: a front face `width` x `height` from its lower left corner (x, y), and its depth
    drawn up and to the right by (dx, dy). The right face is the map's H x W plane."""

    x: float
    y: float
    width: float
    height: float
    dx: float
    dy: float

    @property
    def right(self) -> float:
        return self.x + self.width + self.dx

    @property
    def top(self) -> float:
        return self.y + self.height + self.dy

    def on_face(self, u: float, v: float, right: bool = True) -> tuple[float, float]:
        """The point at depth share u and height share v on the right face (or the hidden left face)."""
        return self.x + (self.width if right else 0.0) + u * self.dx, self.y + v * self.height + u * self.dy

    def moved(self, dx: float, dy: float) -> Cuboid:
        return replace(self, x=self.x + dx, y=self.y + dy)


def cuboid(stage: Stage, side: float) -> Cuboid:
    """The stage's box centred on (0, 0): a map [C, H, W] (`side` points per square root of H and W) or a bar of
    [F] features. Sizes grow with roots, so 224 x 224 x 3 and 13 x 13 x 256 both fit and stay comparable, up to
    LONGEST."""
    if stage.is_map:
        c, h, w = stage.shape
        width, height, depth = (
            min(size, LONGEST) for size in (THICKNESS * math.sqrt(c), side * math.sqrt(h), side * math.sqrt(w))
        )
        depth *= OBLIQUE
    else:
        width, height, depth = BAR_WIDTH, min(BAR * stage.shape[0] ** (1 / 3), LONGEST), BAR_DEPTH
    d = depth / math.sqrt(2)
    return Cuboid(-(width + d) / 2, -(height + d) / 2, width, height, d, d)


def block(stage: Stage, measure: Measure) -> list[tuple[str, bool]]:
    """The lines under a stage, (text, bold): its name, shape, the pointwise layers after it (on as many lines as
    keep them about as wide as the rest), params and MACs."""
    lines = [(stage.head.name if stage.head else "input", True), (show(stage.shape), False)]
    counts = [f"{compact(n)} {what}" for n, what in ((stage.params, "params"), (stage.macs, "MACs")) if n]
    widths = [measure(text, FONT, bold) for text, bold in lines] + [measure(text, FONT, False) for text in counts]
    wide = max(FOLLOWERS_WIDTH, *widths)
    line: list[str] = []
    for follower in stage.after.split(" · ") if stage.after else []:
        if line and measure(" · ".join([*line, follower]), FONT, False) > wide:
            lines.append((" · ".join(line), False))
            line = []
        line.append(follower)
    if line:
        lines.append((" · ".join(line), False))
    return lines + [(text, False) for text in counts]


@dataclass
class Column:
    """One stage placed: its box, the label block under it (centred on x, from `label_top` down), and the
    operation label over the gap before it (centred on `op_x`, baseline `op_y`)."""

    stage: Stage
    box: Cuboid
    lines: list[tuple[str, bool]]
    block_width: float
    op_lines: list[str]
    op_width: float
    x: float = 0.0
    label_top: float = 0.0
    op_x: float = 0.0
    op_y: float = 0.0
    entry: bool = False  # the first of a row after the first: it continues from the row above
    exit: bool = False  # the last of a row before the last: it continues on the row below

    @property
    def span(self) -> float:
        return max(self.box.width + self.box.dx, self.block_width)

    def moved(self, dx: float, dy: float) -> None:
        self.box = self.box.moved(dx, dy)
        self.x += dx
        self.label_top += dy
        self.op_x += dx
        self.op_y += dy


@dataclass
class Layout:
    """The whole drawing: its size, the title (centred on the top line), the placed stages and the note under them
    (from `note_y` down)."""

    width: float
    height: float
    title: str
    title_y: float
    note_y: float
    columns: list[Column] = field(default_factory=list)


def layout(stages: list[Stage], title: str, measure: Measure, max_width: float = MAX_WIDTH) -> Layout:
    """Place every stage, left to right, wrapping into rows at `max_width`."""
    side = unit(stages)
    columns = [_column(stage, side, measure) for stage in stages]
    once = _rows(columns, math.inf)[0]
    total = once[-1].x + once[-1].span / 2
    rows = math.ceil(total / max_width)
    limit = total / rows
    while len(placed := _rows(columns, limit)) > rows and limit < max_width:  # as few rows as needed, evenly long
        limit = min(limit * 1.05, max_width)
    y = -MARGIN - TITLE_FONT * LINE - PAD  # below the title; all is shifted up once the height is known
    for row in placed:
        top, bottom = _vertical(row)
        for column in row:
            column.moved(MARGIN, y - top)
        y -= top - bottom + ROW_GAP
    note_y = y + ROW_GAP - PAD
    height = -(note_y - len(NOTE) * NOTE_FONT * LINE) + MARGIN
    for column in columns:
        column.moved(0.0, height)
    right = max(max(column.x + column.span / 2, column.box.right + ARROW * column.exit) for column in columns)
    texts = [measure(title, TITLE_FONT, True)] + [measure(line, NOTE_FONT, False) for line in NOTE]
    width = max(right + MARGIN, max(texts) + 2 * MARGIN)
    return Layout(width, height, title, height - MARGIN - TITLE_FONT, note_y + height, columns)


def _column(stage: Stage, side: float, measure: Measure) -> Column:
    lines = block(stage, measure)
    op_lines = stage.operation.split(" ", 1)  # "maxpool 3x3 /2" over two lines: "maxpool", "3x3 /2"
    return Column(
        stage,
        cuboid(stage, side),
        lines,
        max(measure(text, FONT, bold) for text, bold in lines),
        op_lines,
        max(measure(text, OP_FONT, False) for text in op_lines),
    )


def _rows(columns: list[Column], max_width: float) -> list[list[Column]]:
    """Columns placed left to right (x: the centre of box and labels), a new row when one would pass max_width."""
    rows: list[list[Column]] = [[]]
    for column in columns:
        column.entry = column.exit = False
    for column in columns:
        box_half = (column.box.width + column.box.dx) / 2
        row = rows[-1]
        if row:
            before = row[-1]
            gap = max(MIN_GAP, column.op_width + 2 * PAD)
            column.x = max(
                before.x + (before.box.width + before.box.dx) / 2 + gap + box_half,
                before.x + before.block_width / 2 + BLOCK_GAP + column.block_width / 2,
            )
            if column.x + column.span / 2 <= max_width:
                row.append(column)
                continue
            before.exit = column.entry = True
            rows.append(row := [])
        lead = max(MIN_GAP, column.op_width + 2 * PAD) if column.entry else 0.0
        column.x = max(lead + box_half, column.span / 2)
        row.append(column)
    return rows


def _vertical(row: list[Column]) -> tuple[float, float]:
    """Set each column's box, label and operation heights around the row's centre line y=0; return the row's
    top and bottom."""
    for before, column in zip([None, *row[:-1]], row, strict=True):
        column.box = column.box.moved(column.x - (column.box.x + (column.box.width + column.box.dx) / 2), 0.0)
        if before is not None:
            column.op_x = (before.box.right + column.box.x) / 2
            column.op_y = max(before.box.top, column.box.top) + PAD
        elif column.entry:  # over an arrow along the centre line, from the row's start to the box
            column.op_x = column.box.x / 2
            column.op_y = PAD
    labelled = [column for column in row if column.entry or column is not row[0]]
    top = max([column.box.top for column in row] + [c.op_y + len(c.op_lines) * OP_FONT * LINE for c in labelled])
    boxes_bottom = min(column.box.y for column in row)
    for column in row:
        column.label_top = boxes_bottom - PAD
    return top, boxes_bottom - PAD - max(len(column.lines) for column in row) * FONT * LINE
