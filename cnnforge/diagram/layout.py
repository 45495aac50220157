"""Where each stage of a diagram goes, in points (1/72 inch) with y upwards: sizes on a compressed scale, columns
wide enough for their labels, and rows that wrap when the drawing gets too wide. In a graph, a fork's branches are
lanes one under the other, an empty branch an arc over them, and a frame a box around its lane, which wraps into
rows too when it is wider than the page. Pure Python: the caller supplies a function that measures text."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..layers import show
from .stages import Fork, Frame, Part, Stage, compact, flat

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
SPLIT = 8.0  # a fork's branches leave its input this far into it
LANE_GAP = 10.0  # between a fork's branches, one under the other
TAG_FONT = 8.0  # a branch's label, over its lane or its arc
JOIN = 5.0  # the radius of the circle where branches meet
ARC_GAP = 8.0  # an arc passes this far over its fork's top branch
CORNER = 6.0  # the radius of an arc's corners
FRAME_PAD = 6.0  # between a frame and what it holds
FRAME_FONT = 8.0  # a frame's title
PAGE = math.sqrt(2)  # a graph's drawing is made about this much taller than wide, as a portrait page


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
    lines = [(stage.label, True), (show(stage.shape), False)]
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
    operation label over the gap before it (centred on `op_x`, baseline `op_y`). Kernel lines join it to the
    column `before` it, or an arrow leads into it from `arrow_from` (on its centre line)."""

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
    before: Column | None = None
    arrow_from: float | None = None

    @property
    def span(self) -> float:
        return max(self.box.width + self.box.dx, self.block_width)

    @property
    def box_half(self) -> float:
        return (self.box.width + self.box.dx) / 2

    @property
    def right(self) -> float:
        return self.x + self.span / 2

    @property
    def gap(self) -> float:
        """The room its operation label needs before its box."""
        return max(MIN_GAP, self.op_width + 2 * PAD)

    def moved(self, dx: float, dy: float) -> None:
        self.box = self.box.moved(dx, dy)
        self.x += dx
        self.label_top += dy
        self.op_x += dx
        self.op_y += dy
        if self.arrow_from is not None:
            self.arrow_from += dx


Point = tuple[float, float]


@dataclass
class Line:
    """A connector through `points`, with an arrowhead at its end when `arrow`."""

    points: list[Point]
    arrow: bool = False

    def moved(self, dx: float, dy: float) -> None:
        self.points = [(x + dx, y + dy) for x, y in self.points]


@dataclass
class Skip:
    """An empty branch: an arc from its fork's input, over the other branches, into the join; its label centred
    on (label_x, baseline label_y)."""

    points: list[Point]  # the corners: up from the input, across, down into the join
    label: str
    label_x: float
    label_y: float

    def moved(self, dx: float, dy: float) -> None:
        self.points = [(x + dx, y + dy) for x, y in self.points]
        self.label_x += dx
        self.label_y += dy


@dataclass
class Join:
    """Where branches meet: a circle at (x, y) marked with the merge, and the label block under it."""

    x: float
    y: float
    op: str
    lines: list[tuple[str, bool]]
    label_top: float

    def moved(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy
        self.label_top += dy


@dataclass
class Text:
    """A line of text left-aligned at x, its baseline at y: a branch's label."""

    text: str
    x: float
    y: float

    def moved(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy


@dataclass
class Box:
    """A frame from (x0, y0) to (x1, y1), its title lines (the first bold) at its top left."""

    x0: float
    y0: float
    x1: float
    y1: float
    title: list[str]

    def moved(self, dx: float, dy: float) -> None:
        self.x0, self.x1, self.y0, self.y1 = self.x0 + dx, self.x1 + dx, self.y0 + dy, self.y1 + dy


@dataclass
class Drawing:
    """What a Placed and a Layout draw, kind by kind (CONTENTS): columns, lines, skips, joins, texts, boxes."""

    columns: list[Column] = field(default_factory=list, kw_only=True)
    lines: list[Line] = field(default_factory=list, kw_only=True)
    skips: list[Skip] = field(default_factory=list, kw_only=True)
    joins: list[Join] = field(default_factory=list, kw_only=True)
    texts: list[Text] = field(default_factory=list, kw_only=True)
    boxes: list[Box] = field(default_factory=list, kw_only=True)

    def drawn(self) -> list:
        return [item for name in CONTENTS for item in getattr(self, name)]


@dataclass
class Placed(Drawing):
    """A fork, a frame or a lane laid out around its centre line y=0, from x=0 to `width`, its last part ending
    at (`end`, `end_y`): on the centre line, or lower when it wraps into rows; then placed with its left edge at
    `left` and its centre line at `y`. What it draws is in its lists. Like a column, it may start or end a row,
    and a line leads into it from `arrow_from`."""

    width: float
    top: float
    bottom: float
    end: float
    left: float = 0.0
    y: float = 0.0
    x: float = 0.0  # where `left` goes
    end_y: float = 0.0
    entry: bool = False
    exit: bool = False
    arrow_from: float | None = None

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def wraps(self) -> bool:
        """Whether it leaves on a lower line than it enters: then it ends its row."""
        return self.end_y < self.y

    def moved(self, dx: float, dy: float) -> None:
        self.left += dx
        self.x += dx
        self.end += dx
        self.y += dy
        self.end_y += dy
        self.top += dy
        self.bottom += dy
        if self.arrow_from is not None:
            self.arrow_from += dx
        for item in self.drawn():
            item.moved(dx, dy)

    def copied(self) -> Placed:
        """A copy to place apart from this one: what it draws copied too, each column's `before` the copy's."""
        twin = copy.copy(self)
        for name in CONTENTS:
            setattr(twin, name, [copy.copy(item) for item in getattr(self, name)])
        columns = {id(column): twin_column for column, twin_column in zip(self.columns, twin.columns, strict=True)}
        for column in twin.columns:
            if column.before is not None:
                column.before = columns[id(column.before)]
        return twin


CONTENTS = ("columns", "lines", "skips", "joins", "texts", "boxes")  # what a Drawing draws


Element = Column | Placed


@dataclass
class Sheet:
    """What the parts of one drawing are laid out with: points per square root of a side, the text measure, and
    each fork and frame laid out so far, by part and the room it had, to copy where it is drawn again. A frame
    that does not wrap is drawn as with no limit, and one with no room at all an item a row however little it
    has, so each is laid out once for all such rooms; whether a frame wraps is known without laying it out. The
    room of nested frames narrows level by level: laying out a frame to see whether it wraps, and then again in
    less room, would take time exponential in their depth."""

    side: float
    measure: Measure
    laid: dict[tuple[int, float], Placed] = field(default_factory=dict)
    lengths: dict[int, float] = field(default_factory=dict)  # a frame's lane in one row, with no limit: its length

    def length(self, frame: Frame) -> float:
        if id(frame) not in self.lengths:
            items = _items(frame.parts, self, math.inf, True, FRAME_PAD)
            self.lengths[id(frame)] = max(row[-1].right for row in _rows(items, math.inf, True, FRAME_PAD))
        return self.lengths[id(frame)]

    def wraps(self, frame: Frame, limit: float) -> bool:
        """Whether the frame laid out at most `limit` wide wraps into rows (else it is drawn as with no limit): when
        a frame in it wraps in the room it is left, or its parts, more than one, are longer in one row than its
        room. A frame wraps in less room wherever it wraps in more."""
        room = limit - FRAME_PAD - ARROW  # as _frame and _lane narrow it
        inner = room - MIN_GAP - FRAME_PAD  # as _items narrows it for each part
        frames = (part for part in frame.parts if isinstance(part, Frame))
        return any(self.wraps(part, inner) for part in frames) or (len(frame.parts) > 1 and self.length(frame) > room)


@dataclass
class Layout(Drawing):
    """The whole drawing: its size, the title (centred on the top line), the placed stages and the note under them
    (from `note_y` down); in a graph, also its connectors, arcs, joins, branch labels and frames."""

    width: float
    height: float
    title: str
    title_y: float
    note_y: float


def layout(parts: list[Part], title: str, measure: Measure, max_width: float = MAX_WIDTH) -> Layout:
    """Place every stage (and a graph's forks and frames), left to right, wrapping into rows at `max_width`; a
    graph's rows (and frames wider than them) as wide as makes the drawing no taller than a portrait page."""
    sheet = Sheet(unit([part for part in flat(parts) if isinstance(part, Stage)]), measure)

    def rows(width: float) -> Placed:
        return _stack(_wrap(_items(parts, sheet, width), width))

    placed = rows(max_width)
    if placed.boxes or placed.joins:
        placed = _page(rows, max_width)
    placed.moved(MARGIN, -MARGIN - TITLE_FONT * LINE - PAD - placed.top)  # below the title
    note_y = placed.bottom - PAD
    height = -(note_y - len(NOTE) * NOTE_FONT * LINE) + MARGIN
    placed.moved(0.0, height)
    texts = [measure(title, TITLE_FONT, True)] + [measure(line, NOTE_FONT, False) for line in NOTE]
    width = max(placed.right + MARGIN, max(texts) + 2 * MARGIN)
    drawing = Layout(width, height, title, height - MARGIN - TITLE_FONT, note_y + height)
    _take(drawing, placed)
    return drawing


def _take(into: Drawing, placed: Placed) -> None:
    """Draw in `into` what `placed` draws, as placed now, and the line into it (an arrow from a row's start)."""
    for name in CONTENTS:
        getattr(into, name).extend(getattr(placed, name))
    if placed.arrow_from is not None:
        into.lines.append(Line([(placed.arrow_from, placed.y), (placed.left, placed.y)], arrow=placed.entry))


def _wrap(items: list[Element], max_width: float, lead: bool = False, pad: float = 0.0) -> list[list[Element]]:
    """The items in as few rows as fit in `max_width`, evenly long (a wrapped frame ends its row, so the rows
    between such frames are made evenly long); an item a row where there is no room (frames nested deeper than
    the page is wide)."""
    placed = _rows(items, math.inf, lead, pad)
    lengths = [row[-1].right for row in placed]
    if max(lengths) <= max_width:
        return placed
    if max_width <= 0.0:
        return _rows(items, 0.0, lead, pad)
    rows = len(_rows(items, max_width, lead, pad))  # the fewest; fewer the wider, so the narrowest that many
    limit = min(lengths) / rows
    while len(placed := _rows(items, limit, lead, pad)) > rows:
        limit = min(limit * 1.05, max_width)
    return placed


def _page(rows: Callable[[float], Placed], least: float) -> Placed:
    """The rows laid out `rows(width)` at the narrowest width, from `least` up, at which they are drawn no taller
    than a portrait page (as A4, its height sqrt(2) times its width): a graph's forks and frames are tall, and
    wrapped as narrowly as a chain's stages they make a strip."""
    total = rows(math.inf).width  # one row: wider than this, nothing changes
    width = least
    while width < total:
        placed = rows(width)
        if placed.top - placed.bottom <= PAGE * (placed.width + 2 * MARGIN):  # as drawn: even rows are narrower
            return placed
        width *= 1.05
    return rows(total)


def _stack(rows: list[list[Element]]) -> Placed:
    """Rows one under the other, ROW_GAP apart, the first on the centre line y=0; an arrow leads from the end of
    each row but the last."""
    stack = Placed(0.0, 0.0, 0.0, 0.0)
    y = 0.0  # the row's centre line
    for number, row in enumerate(rows):
        top, bottom = _vertical(row)
        if number:
            y = stack.bottom - ROW_GAP - top
        else:
            stack.top = top
        stack.bottom = y + bottom
        for item in row:
            item.moved(0.0, y)
            stack.width = max(stack.width, item.right, _exit(item) + ARROW * item.exit)
            if isinstance(item, Column):
                stack.columns.append(item)
                continue
            _take(stack, item)
            if item.exit:
                stack.lines.append(Line([(item.end + 2, item.end_y), (item.end + ARROW, item.end_y)], arrow=True))
    last = rows[-1][-1]
    stack.end, stack.end_y = _exit(last), last.end_y if isinstance(last, Placed) else y
    return stack


def _items(parts: list[Part], sheet: Sheet, width: float, lead: bool = False, pad: float = 0.0) -> list[Element]:
    """The parts laid out for rows `width` wide (from x=0, as `_rows` places them): a frame wider than a row wraps
    in a row of its own, or in what is left of the row before it when that is at least half a row (torchvision's
    `features` beside the input)."""
    items: list[Element] = []
    for part in parts:
        limit = width - MIN_GAP - pad  # a row's first, after the arrow into it
        if isinstance(part, Frame) and items and sheet.wraps(part, limit):
            last = _rows(items, width, lead, pad)[-1][-1]
            left = width - (last.right + MIN_GAP)
            if not (isinstance(last, Placed) and last.wraps) and left >= width / 2:
                limit = left
        items.append(_element(part, sheet, limit))
    return items


def _element(part: Part, sheet: Sheet, limit: float = math.inf) -> Element:
    """A stage's column, or a fork or frame laid out; a frame wraps its contents into rows to be at most `limit`
    wide. A fork or frame is laid out once for each room that draws it differently, and copied."""
    if isinstance(part, Stage):
        return _column(part, sheet)
    if isinstance(part, Fork) or not sheet.wraps(part, limit):
        room = math.inf
    elif limit - FRAME_PAD - ARROW <= 0.0:  # no room: an item a row, however little (_wrap)
        room = -math.inf
    else:
        room = limit
    key = (id(part), room)
    if key not in sheet.laid:
        sheet.laid[key] = _fork(part, sheet) if isinstance(part, Fork) else _frame(part, sheet, limit)
    return sheet.laid[key].copied()


def _column(stage: Stage, sheet: Sheet) -> Column:
    side, measure = sheet.side, sheet.measure
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


def _exit(item: Element) -> float:
    """Where a line leaves it, on its centre line."""
    return item.box.right if isinstance(item, Column) else item.end


def _rows(items: list[Element], max_width: float, lead: bool = False, pad: float = 0.0) -> list[list[Element]]:
    """Items placed left to right (a column's x: the centre of box and labels; anything else's: its left edge), a
    new row when one would pass max_width. With `lead`, a line leads into the first from x=0; `pad` keeps the
    first one's labels off x=0."""
    rows: list[list[Element]] = [[]]
    for item in items:
        item.entry = item.exit = False
        item.arrow_from = None
        if isinstance(item, Column):
            item.before = None
    for item in items:
        row = rows[-1]
        if row:
            _after(row[-1], item)
            if item.right <= max_width and not (isinstance(row[-1], Placed) and row[-1].wraps):
                row.append(item)
                continue
            row[-1].exit = item.entry = True
            rows.append(row := [])
            if isinstance(item, Column):
                item.before = None
        _first(item, lead or item.entry, pad)
        row.append(item)
    return rows


def _first(item: Element, lead: bool, pad: float) -> None:
    item.arrow_from = 0.0 if lead else None
    if isinstance(item, Column):
        item.x = max((item.gap if lead else 0.0) + item.box_half, pad + item.span / 2)
    else:  # a line from the row's start has an arrowhead to make room for, one from a lane's start not
        item.x = (MIN_GAP if item.entry else 2 * PAD if lead else 0.0) + pad


def _after(before: Element, item: Element) -> None:
    """Place `item` after `before` in a row: room for its operation label, and labels BLOCK_GAP apart."""
    if isinstance(item, Column) and isinstance(before, Column):
        item.x = max(
            before.x + before.box_half + item.gap + item.box_half,
            before.x + before.block_width / 2 + BLOCK_GAP + item.block_width / 2,
        )
        item.before = before
    elif isinstance(item, Column):
        item.x = max(before.right + item.gap + item.box_half, before.right + BLOCK_GAP + item.block_width / 2)
        item.arrow_from = before.right
    else:
        ends = (before.x + before.box_half + MIN_GAP, before.right + BLOCK_GAP) if isinstance(before, Column) else ()
        item.x = max([before.right + MIN_GAP, *ends])
        item.arrow_from = before.x + before.box_half if isinstance(before, Column) else before.end


def _vertical(row: list[Element]) -> tuple[float, float]:
    """Set each column's box, label and operation heights around the row's centre line y=0, and move each fork
    and frame to its place on it; return the row's top and bottom."""
    columns = [item for item in row if isinstance(item, Column)]
    others = [item for item in row if isinstance(item, Placed)]
    for column in columns:
        column.box = column.box.moved(column.x - (column.box.x + column.box_half), 0.0)
        if column.before is not None:
            column.op_x = (column.before.box.right + column.box.x) / 2
            column.op_y = max(column.before.box.top, column.box.top) + PAD
        elif column.arrow_from is not None:  # over an arrow along the centre line, from where it starts to the box
            column.op_x = (column.arrow_from + column.box.x) / 2
            column.op_y = PAD
    for placed in others:  # what it draws to where its row put it (x), where the line into it starts already
        x, arrow_from = placed.x, placed.arrow_from
        placed.moved(x - placed.left, 0.0)
        placed.x, placed.arrow_from = x, arrow_from
    labelled = [column for column in columns if column.before is not None or column.arrow_from is not None]
    top = max(
        [column.box.top for column in columns]
        + [c.op_y + len(c.op_lines) * OP_FONT * LINE for c in labelled]
        + [placed.top for placed in others]
    )
    bottom = min([placed.bottom for placed in others], default=0.0)
    if columns:
        boxes_bottom = min(column.box.y for column in columns)
        for column in columns:
            column.label_top = boxes_bottom - PAD
        bottom = min(bottom, boxes_bottom - PAD - max(len(column.lines) for column in columns) * FONT * LINE)
    return top, bottom


def _lane(parts: list[Part], sheet: Sheet, pad: float, limit: float = math.inf) -> Placed:
    """A branch or a frame's contents from x=0, a line leading into its first part, its first row around y=0: in
    one row, or in rows at most `limit` wide."""
    room = limit - ARROW  # a row that goes on below ends in an arrow
    return _stack(_wrap(_items(parts, sheet, room, True, pad), room, lead=True, pad=pad))


def _fork(fork: Fork, sheet: Sheet) -> Placed:
    """Branches that are layers one under the other from x=SPLIT, their labels over them; an empty branch an
    arc over them all; and where they meet, a circle with the merge's label block under it."""
    placed = Placed(0.0, 0.0, 0.0, 0.0)
    lanes = [(label, _lane(branch, sheet, PAD)) for label, branch in fork.branches if branch]
    empty = [label for label, branch in fork.branches if not branch]
    tag = TAG_FONT * LINE
    below, ends = 0.0, []
    for number, (label, lane) in enumerate(lanes):
        y = 0.0 if number == 0 else below - LANE_GAP - lane.top - tag
        lane.moved(SPLIT, y)
        _take(placed, lane)
        placed.texts.append(Text(label, SPLIT + PAD, lane.top + PAD / 2))
        placed.lines.append(
            Line([(0.0, 0.0), (SPLIT / 2, 0.0), (SPLIT / 2, y), (SPLIT, y)] if number else [(0.0, 0.0), (SPLIT, 0.0)])
        )
        below = lane.bottom
        ends.append((lane.end, lane.end_y))
    lines = [(fork.merge.name, True), (show(fork.merge.output), False)] + ([(fork.after, False)] if fork.after else [])
    label_width = max(sheet.measure(text, FONT, bold) for text, bold in lines)
    bus = max([lane.right for _, lane in lanes], default=SPLIT) + PAD
    x = max(bus + MIN_GAP / 2 + JOIN, bus + BLOCK_GAP + label_width / 2)
    for end, y in ends:
        placed.lines.append(
            Line([(end, y), (bus, y), (bus, 0.0), (x - JOIN, 0.0)] if y else [(end, 0.0), (x - JOIN, 0.0)])
        )
    if not lanes:
        placed.lines.append(Line([(0.0, 0.0), (x - JOIN, 0.0)]))
    top = (lanes[0][1].top + tag) if lanes else 0.0
    for label in empty[1:] if not lanes else empty:
        y = top + ARC_GAP
        points = [(0.0, 0.0), (0.0, y), (x, y), (x, JOIN)]
        placed.skips.append(Skip(points, label, x / 2, y + PAD / 2))
        top = y + PAD / 2 + tag
    label_top = -JOIN - PAD
    placed.joins.append(Join(x, 0.0, fork.merge.type, lines, label_top))
    placed.width = max(x + JOIN, x + label_width / 2)
    placed.end = x + JOIN
    placed.top = top
    placed.bottom = min(below, label_top - len(lines) * FONT * LINE)
    return placed


def _frame(frame: Frame, sheet: Sheet, limit: float = math.inf) -> Placed:
    """A box around the frame's lane, its title over the lane at the top left; the lane in rows when it would
    make the frame wider than `limit`, the line out leaving from the last row."""
    lane = _lane(frame.parts, sheet, FRAME_PAD, limit - FRAME_PAD)
    titles = [sheet.measure(text, FRAME_FONT, number == 0) for number, text in enumerate(frame.title)]
    width = max(lane.width + FRAME_PAD, max(titles) + 2 * FRAME_PAD)
    top = lane.top + FRAME_PAD + len(frame.title) * FRAME_FONT * LINE
    placed = Placed(width, top, lane.bottom - FRAME_PAD, width, end_y=lane.end_y)
    _take(placed, lane)
    placed.lines.append(Line([(lane.end, lane.end_y), (width, lane.end_y)]))
    placed.boxes.append(Box(0.0, placed.bottom, width, top, frame.title))
    return placed
