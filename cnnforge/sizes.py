"""Which input sizes H and W a spec accepts (its channels C are fixed), and at which every input pixel is read.

Found statically, along each axis apart, from what each layer does along it (its axis, layers/axis.py) and where
branches meet. A node's size grows with the input's, by one each time the input grows by p, the product of the
strides on the way to it (0: a fixed size, after an adaptive pool). So each check on a window's size is a lower
bound, and the smallest size that passes them all is found by bisection. Where branches meet, their sizes agree
at sizes that repeat with period p when each branch has the same p (a ResNet's strided body and shortcut), and at
a few sizes only when not (a strided branch beside one that is not): these are found one by one. A linear layer
(or a batchnorm with `channels`) after flatten pins the feature count C_f * h * w, and with it the sizes: then the
answer is the exact set, a few boxes of sizes. Whether every pixel is read is worked out size by size from the
rows each node reads; from some size on the answer repeats with a period of the strides, which is what is
reported, checked over several periods. A layer kind that does not say what it does along the axes is asked
through the compiler, by bisection, as if every size from the smallest on were accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import isqrt, lcm

from .compiler import Compiled, CompiledLayer, compile_spec
from .diagnostics import Diagnostic
from .layers import show
from .layers.axis import Axis, every
from .layers.fields import MAX_SIZE
from .layers.merge import Merge
from .spec.model import SpecBase
from .spec.source import Source

LONGEST_PERIOD = 4096  # strides multiplying to more: rows read are not worked out
MOST_SIZES = 1 << 14  # sizes worked out per axis at most
MOST_ROWS = 1 << 16  # rows of a layer's input or output at most: rows read are a bit mask each, worked out size by size
AXES = ("h", "w")


@dataclass(frozen=True)
class Span:
    """Sizes `first`, `first + step`, ... up to `last`; `last` None: no end (up to the largest size, 2^31 - 1)."""

    first: int
    last: int | None = None
    step: int = 1

    def __str__(self) -> str:
        if self.last == self.first:
            return str(self.first)
        text = f"{self.first}.." + ("" if self.last is None else str(self.last))
        return text if self.step == 1 else f"{text} step {self.step}"

    def sizes(self) -> range:
        return range(self.first, (MAX_SIZE if self.last is None else self.last) + 1, self.step)


@dataclass(frozen=True)
class Periodic:
    """Sizes along one axis: below `start`, those in `early`; from `start` on, those n with n % period in
    `residues` (none when `residues` is empty)."""

    period: int
    residues: tuple[int, ...]
    start: int
    early: tuple[int, ...]

    def __contains__(self, n: int) -> bool:
        return n in self.early if n < self.start else n % self.period in self.residues

    def first(self) -> int | None:
        """The smallest size in the set, None if it is empty."""
        if self.early:
            return self.early[0]
        return min((n for n in range(self.start, self.start + self.period) if n in self), default=None)

    def describe(self, axis: str) -> str:
        """'H = 63 + 8k, 64 + 8k or 65 + 8k (k >= 0), and H = 59' and the like."""
        firsts = sorted(n for n in range(self.start, self.start + self.period) if n % self.period in self.residues)
        if self.period == 1:
            text = f"every {axis} from {self.start} on" if firsts else ""
        else:
            terms = [f"{n} + {self.period}k" for n in firsts]
            text = " or ".join([", ".join(terms[:-1]), terms[-1]] if len(terms) > 1 else terms)
            text = f"{axis} = {text} (k >= 0)" if firsts else ""
        early = ", ".join(map(str, self.early))
        if early:
            text = f"{text}, and {axis} = {early}" if text else f"only {axis} = {early}"
        return text or f"no {axis}"

    def spans(self, low: int = 1, high: int | None = None) -> list[Span]:
        """The sizes from `low` to `high` (None: no end) as runs of consecutive early sizes, then one span per
        residue, its step the period."""
        top = MAX_SIZE if high is None else high
        early = [n for n in self.early if low <= n <= top]
        runs: list[Span] = []
        for n in early:
            if runs and runs[-1].last == n - 1:
                runs[-1] = Span(runs[-1].first, n)
            else:
                runs.append(Span(n, n))
        start = max(self.start, low)
        for n in sorted(n for n in range(start, start + self.period) if n % self.period in self.residues):
            if n <= top:
                last = None if high is None else n + (top - n) // self.period * self.period
                runs.append(Span(n, last, self.period) if last != n else Span(n, n))
        return runs


def _everything(first: int) -> Periodic:
    """Every size from `first` on."""
    return Periodic(1, (0,), first, ())


@dataclass(frozen=True)
class Reads(Periodic):
    """The sizes along one axis at which every input row is read, worked out for every accepted size up to
    `checked`."""

    checked: int


@dataclass(frozen=True)
class Pin:
    """A layer after flatten that needs `features` = `channels` * h * w features."""

    layer: str
    features: int
    flatten: str
    channels: int


@dataclass
class Sizes:
    """The answer for one spec: the accepted (H, W) as a union of boxes, empty when no size is accepted. Without
    a pin, the accepted sizes are every pair of `axes`."""

    spec: SpecBase
    accepted: list[tuple[Span, Span]] = field(default_factory=list)
    pin: Pin | None = None
    reads: tuple[Reads | None, Reads | None] = (None, None)
    problems: list[Diagnostic] = field(default_factory=list)
    axes: tuple[Periodic, Periodic] | None = None
    refused: tuple[int, int, Diagnostic] | None = None  # a size past the smallest that branches refuse, and why

    @property
    def channels(self) -> int:
        return self.spec.input[0]

    def smallest(self, axis: int) -> tuple[Span, Span] | None:
        """The box holding the smallest accepted size along `axis` (0: H, 1: W)."""
        return min(self.accepted, key=lambda box: box[axis].first, default=None)

    def declared(self) -> bool:
        """Whether the spec's own input size is accepted."""
        _, h, w = self.spec.input
        return any(h in box[0].sizes() and w in box[1].sizes() for box in self.accepted)


@dataclass(frozen=True)
class _Node:
    """A node of the map part, before the features: a layer (what it does along the rows and the columns) or
    where branches meet (`op`); `inputs` are positions among the map part's nodes, -1 the network's input."""

    index: int
    inputs: tuple[int, ...]
    axes: tuple[Axis, Axis] | None = None
    op: str | None = None


@dataclass
class _Graph:
    """The map part of a compiled spec; `used` are the nodes whose every row is used (read by a node past the
    maps, or the network's output; -1: the input); `complete` is False while an error hid nodes that read it."""

    nodes: list[_Node]
    used: list[int]
    complete: bool

    def sizes(self, axis: int, n: int) -> tuple[list[int], bool, bool]:
        """Each node's size along `axis` for n input rows; whether every window fits, and whether the branches
        agree everywhere they meet (equal sizes, or 1 where a sum or product broadcasts)."""
        sizes: list[int] = []
        fits = agrees = True
        for node in self.nodes:
            before = [n if i < 0 else sizes[i] for i in node.inputs]
            if node.axes is not None:
                fits = fits and node.axes[axis].fits(before[0])
                sizes.append(node.axes[axis].output(before[0]))
            else:
                big = set(before) if node.op == "concat" else {size for size in before if size != 1}
                agrees = agrees and len(big) <= 1
                sizes.append(max(before))
        return sizes, fits, agrees

    def accepts(self, axis: int, n: int) -> bool:
        _, fits, agrees = self.sizes(axis, n)
        return fits and agrees

    def growth(self, axis: int) -> tuple[list[int], list[bool]]:
        """Per node, p: its size grows by one each time the input grows by p (0: its size is fixed); and whether
        it does so at every size from the smallest that fits on, as it does unless branches before it step
        differently."""
        periods: list[int] = []
        regular: list[bool] = []
        for node in self.nodes:
            before = [(1, True) if i < 0 else (periods[i], regular[i]) for i in node.inputs]
            if node.axes is not None:
                stride = node.axes[axis].stride
                periods.append(before[0][0] * stride)
                regular.append(before[0][1])
            else:
                growing = {p for p, _ in before if p}
                fixed = [i for i, (p, _) in zip(node.inputs, before, strict=True) if not p]
                ones = node.op != "concat" and all(self.sizes(axis, 1)[0][i] == 1 for i in fixed if i >= 0)
                periods.append(growing.pop() if len(growing) == 1 else 0)
                same = len(growing) <= 1 and (not fixed or len(fixed) == len(before) or ones)
                regular.append(all(r for _, r in before) and same)
        return periods, regular

    def every_row_read(self, axis: int, n: int, leading: dict[int, set[int]]) -> bool:
        """Whether every one of `n` input rows reaches the output, through the rows each node reads.

        A pixel is read when one path reads both its row and its column; rows and columns alone tell which
        pixels are read where, at each node read by more than one, one reader reads all the rows (and columns)
        the others read. `leading` keeps, per such node (-1: the input), the readers that have read all the
        rows the others read, at every size asked so far (-2: a read past the map part)."""
        sizes, _, _ = self.sizes(axis, n)
        reads: dict[int, list[tuple[int, int]]] = {}  # per node: (reader, rows it reads)
        for used in self.used:
            reads[used] = [(-2, every(n if used < 0 else sizes[used]))]  # as output, or past flatten
        for position in reversed(range(len(self.nodes))):
            node = self.nodes[position]
            rows = 0
            for _, got in reads.get(position, []):
                rows |= got
            for i in node.inputs:
                size = n if i < 0 else sizes[i]
                if node.axes is not None:
                    got = node.axes[axis].read(size, rows)
                else:  # where branches meet: the same rows, or a broadcast branch's only row
                    got = rows if size == sizes[position] else int(rows != 0)
                reads.setdefault(i, []).append((position, got))
        for node, readers in reads.items():
            if len({reader for reader, _ in readers}) > 1:
                most = {reader for reader, rows in readers if all(other & ~rows == 0 for _, other in readers)}
                leading[node] = leading.get(node, most) & most
        read = 0
        for _, got in reads.get(-1, []):
            read |= got
        return read == every(n)

    def most_rows(self, axis: int, n: int) -> int:
        return max([n, *self.sizes(axis, n)[0]])


def find(spec: SpecBase, file: str = "<spec>", source: Source | None = None) -> Sizes:
    """The sizes the validated `spec` accepts; `file` and `source` place the problems when none is."""
    answer = Sizes(spec)

    def compiled(h: int, w: int, placed: bool = False) -> Compiled:
        resized = spec.model_copy(update={"input": (spec.input[0], h, w)})
        return compile_spec(resized, file, source) if placed else compile_spec(resized, guess=False)

    graph = _structure(compiled, (spec.input[1], spec.input[2]))
    if graph is None:  # a kind says nothing of its axes: ask the compiler
        if not _spatial_ok(compiled(MAX_SIZE, MAX_SIZE)):
            answer.problems = _errors(compiled(*spec.input[1:], placed=True))
            return answer
        firsts = (
            _first(lambda n: _spatial_ok(compiled(n, MAX_SIZE)), 1),
            _first(lambda n: _spatial_ok(compiled(MAX_SIZE, n)), 1),
        )
        axes: tuple[Periodic, Periodic] | None = (_everything(firsts[0]), _everything(firsts[1]))
    else:
        axes = _accepted(graph, 0), _accepted(graph, 1)
        found = [a.first() if a is not None else None for a in axes]  # type: ignore[union-attr]
        if None in found:
            answer.problems = _errors(compiled(*spec.input[1:], placed=True))
            if axes[0] is None or axes[1] is None:
                answer.problems.append(_not_worked_out(file))
            return answer
        firsts = found[0], found[1]  # type: ignore[assignment]
        leading: tuple[dict[int, set[int]], dict[int, set[int]]] = ({}, {})
        reads = _reads(graph, 0, axes[0], leading[0]), _reads(graph, 1, axes[1], leading[1])  # type: ignore[arg-type]
        if all(leading[0][node] & leading[1].get(node, set()) for node in leading[0]):
            answer.reads = reads  # else a pixel may be read along a path that reads its row, not its column
    assert axes is not None
    answer.axes = axes
    smallest = compiled(*firsts)
    flatten = next((layer for layer in smallest.layers if _dims(layer) == (3, 1)), None)
    pinned = _pin(smallest, flatten)

    def size_at(axis: int, n: int) -> int:
        """The map's size along `axis` at flatten, for an input size n along it."""
        assert flatten is not None
        if graph is not None:
            source = flatten.inputs[0]
            at = [i for i, node in enumerate(graph.nodes) if node.index == source]
            return graph.sizes(axis, n)[0][at[0]] if at else n
        sizes = (n, firsts[1]) if axis == 0 else (firsts[0], n)
        return compiled(*sizes).layers[flatten.index].input[axis + 1]  # type: ignore[union-attr, index]

    fixed = flatten is None or all(size_at(a, n) == size_at(a, MAX_SIZE) for a, n in enumerate(firsts))
    if flatten is not None and pinned is not None and not fixed:  # else the feature count is the same for all
        answer.pin = Pin(pinned.name, pinned.layer.first_axis() or 0, flatten.name, flatten.input[0])  # type: ignore[index]
        boxes = _pinned(answer.pin, axes, firsts, size_at)
        tries = [[box] for box in boxes]
    else:  # the axes apart: any size tells of them all
        tries = [[(h, w) for h in axes[0].spans() for w in axes[1].spans()]]
    for boxes in tries:
        tried = compiled(boxes[0][0].first, boxes[0][1].first, placed=True)
        if tried.ok:
            answer.accepted += boxes
        elif not answer.problems:
            answer.problems = _errors(tried)
    if answer.accepted:
        answer.problems = []
        if graph is not None:
            answer.refused = _refused(axes, compiled)
    elif not answer.problems:
        answer.problems = [_no_factors(answer.pin, file)]  # type: ignore[arg-type]
    return answer


def _structure(compiled: Callable[..., Compiled], declared: tuple[int, int]) -> _Graph | None:
    """The map part, from the spec compiled at the declared size, or where an error there hides nodes after it,
    at the smallest sizes the nodes before it accept; None when a layer kind does not say what it does along
    the axes."""
    probe = declared
    while True:
        graph = _graph(compiled(*probe))
        if graph is None or graph.complete:
            return graph
        sizes = _accepted(graph, 0), _accepted(graph, 1)
        found = [None if a is None else a.first() for a in sizes]
        if None in found or tuple(found) == probe:
            return graph
        probe = found[0], found[1]  # type: ignore[assignment]


def _graph(compiled: Compiled) -> _Graph | None:
    """The nodes from the input up to the features, with what each does along the axes."""
    position: dict[int, int] = {-1: -1}
    nodes: list[_Node] = []
    used: list[int] = []
    complete = True
    for layer in compiled.layers:
        if not all(i in position for i in layer.inputs):
            continue  # past the maps
        inputs = tuple(position[i] for i in layer.inputs)
        if isinstance(layer.layer, Merge):
            if all(s is not None and len(s) == 3 for s in layer.shapes):
                position[layer.index] = len(nodes)
                nodes.append(_Node(layer.index, inputs, op=layer.layer.kind))
                continue
        elif layer.input is not None and len(layer.input) == 3:
            axes = layer.layer.axes(layer.input)
            if axes is not None:
                position[layer.index] = len(nodes)
                nodes.append(_Node(layer.index, inputs, axes))
                continue
            if layer.output is not None and len(layer.output) == 3:
                return None
        if any(s is None for s in layer.shapes):
            complete = False  # an error before it left its input unknown
        used += inputs
    if compiled.layers and compiled.layers[-1].index in position:
        used.append(position[compiled.layers[-1].index])
    return _Graph(nodes, sorted(set(used)), complete)


def _accepted(graph: _Graph, axis: int) -> Periodic | None:
    """The sizes along `axis` that every node accepts; None where they are not worked out (too many)."""
    if not graph.sizes(axis, MAX_SIZE)[1]:
        return Periodic(1, (), MAX_SIZE + 1, ())
    least = _first(lambda n: graph.sizes(axis, n)[1], 1)
    periods, regular = graph.growth(axis)
    for node_at, node in enumerate(graph.nodes):
        if node.op is not None and not regular[node_at]:
            return _few(graph, axis, node, least, periods)  # the branches step differently: a few sizes only
    meeting = [i for node in graph.nodes if node.op in ("add", "multiply") for i in node.inputs if i < 0 or periods[i]]

    def apart(n: int) -> bool:
        sizes = graph.sizes(axis, n)[0]
        return all((n if i < 0 else sizes[i]) >= 2 for i in meeting)

    start = _first(apart, least)  # from here on no branch broadcasts but a fixed one: the answers repeat
    period = lcm(1, *(p for p in periods if p))
    if start - least + period > MOST_SIZES:
        return None
    flags = [graph.accepts(axis, n) for n in range(least, start + period)]
    period = next(d for d in range(1, period + 1) if period % d == 0 and _repeats(flags[start - least :], d))
    while start > least and flags[start - 1 - least] == flags[start - 1 - least + period]:
        start -= 1
    early = tuple(n for n in range(least, start) if flags[n - least])
    residues = tuple(sorted({n % period for n in range(start, start + period) if flags[n - least]}))
    return Periodic(period, residues, start, early)


def _few(graph: _Graph, axis: int, node: _Node, least: int, periods: list[int]) -> Periodic | None:
    """The sizes from `least` on that every node accepts, where branches that step differently meet at `node`:
    only where two of them agree (or one has size 1), at most once per lcm of their periods in each residue."""
    sizes = [graph.sizes(axis, least)[0][i] if i >= 0 else least for i in node.inputs]
    ins = [(1 if i < 0 else periods[i], i, size) for i, size in zip(node.inputs, sizes, strict=True)]
    growing = [entry for entry in ins if entry[0]]
    fixed = [entry for entry in ins if not entry[0] and (node.op == "concat" or entry[2] != 1)]

    def size(i: int, n: int) -> int:
        return n if i < 0 else graph.sizes(axis, n)[0][i]

    def equal(i: int, value: int) -> range:
        """The n from `least` on at which node i (growing) has size `value`."""
        low = _first(lambda n: size(i, n) >= value, least)
        return range(low, _first(lambda n: size(i, n) > value, low))

    candidates: set[int] = set()
    (p_a, a, _), rest = growing[0], growing[1:]
    if node.op != "concat":
        candidates |= set(equal(a, 1))
    other = next(((p, i) for p, i, _ in rest if p != p_a), None)
    if other is None:  # beside a fixed size
        candidates |= set(equal(a, fixed[0][2]))
    else:
        p_b, b = other
        if node.op != "concat":
            candidates |= set(equal(b, 1))
        every_ = lcm(p_a, p_b)
        if every_ > MOST_SIZES:
            return None
        step = every_ // p_a - every_ // p_b  # how much the difference grows each lcm
        for n in range(least, least + every_):
            difference = size(a, n) - size(b, n)
            if difference % step == 0 and -difference // step >= 0:
                candidates.add(n - difference // step * every_)
    found = tuple(sorted(n for n in candidates if least <= n <= MAX_SIZE and graph.accepts(axis, n)))
    return Periodic(1, (), found[-1] + 1 if found else least, found)


def _refused(axes: tuple[Periodic, Periodic], compiled: Callable[..., Compiled]) -> tuple[int, int, Diagnostic] | None:
    """The smallest size past the first accepted one that branches refuse, if any, with the compiler's error."""
    firsts = [a.first() for a in axes]
    for axis in (0, 1):
        low = firsts[axis]
        assert low is not None
        refused = next((n for n in range(low, low + 4 * axes[axis].period + 64) if n not in axes[axis]), None)
        if refused is not None and refused < MAX_SIZE:
            sizes = (refused, firsts[1]) if axis == 0 else (firsts[0], refused)
            errors = _errors(compiled(*sizes, placed=True))
            if errors:
                return sizes[0], sizes[1], errors[0]
    return None


def _not_worked_out(file: str) -> Diagnostic:
    return Diagnostic(file, f"the sizes are not worked out: branches step over more than {MOST_SIZES} sizes apart")


def _spatial_ok(compiled: Compiled) -> bool:
    """No error at a layer that takes a feature map: the sizes pass every layer up to the features."""
    maps = {layer.index for layer in compiled.layers if layer.input is not None and len(layer.input) == 3}
    return not any(d.severity == "error" and d.layer_index in maps for d in compiled.diagnostics)


def _errors(compiled: Compiled) -> list[Diagnostic]:
    return [d for d in compiled.diagnostics if d.severity == "error"]


def _first(ok: Callable[[int], bool], low: int, high: int = MAX_SIZE) -> int:
    """The smallest n in [low, high] with ok(n), for ok false then true; high + 1 if none."""
    if not ok(high):
        return high + 1
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if ok(middle) else (middle + 1, high)
    return low


def _dims(layer: CompiledLayer) -> tuple[int, int]:
    """The ranks of the layer's input and output: (3, 3) for a map to a map, (3, 1) for flatten; 0 if unknown."""
    return len(layer.input or ()), len(layer.output or ())


def _pin(compiled: Compiled, flatten: CompiledLayer | None) -> CompiledLayer | None:
    """The first layer after flatten that requires a feature count."""
    if flatten is None:
        return None
    return next((layer for layer in compiled.layers[flatten.index + 1 :] if layer.layer.first_axis()), None)


def _pinned(
    pin: Pin, axes: tuple[Periodic, Periodic], firsts: tuple[int, int], size_at: Callable[[int, int], int]
) -> list[tuple[Span, Span]]:
    """The boxes of (H, W) whose map at flatten, channels x h x w, has the pinned feature count."""
    if pin.features % pin.channels:
        return []
    product = pin.features // pin.channels
    spans = []
    for axis in (0, 1):
        low, high = size_at(axis, firsts[axis]), size_at(axis, MAX_SIZE)

        def span(value: int, axis: int = axis, low: int = low, high: int = high) -> list[Span]:
            if not low <= value <= high:
                return []
            if low == high:  # the size at flatten does not depend on the input's (an adaptive pool)
                return axes[axis].spans()
            start = _first(lambda n: size_at(axis, n) >= value, firsts[axis])
            end = _first(lambda n: size_at(axis, n) > value, start)
            return axes[axis].spans(start, end - 1)

        spans.append(span)
    boxes = []
    for a in range(1, isqrt(product) + 1):
        if product % a == 0:
            for h, w in {(a, product // a), (product // a, a)}:
                boxes += [(rows, columns) for rows in spans[0](h) for columns in spans[1](w)]
    return sorted(boxes, key=lambda box: (box[0].first, box[1].first))


def _no_factors(pin: Pin, file: str) -> Diagnostic:
    return Diagnostic(
        file,
        f"no input size is accepted: {pin.layer} needs {pin.features} features after {pin.flatten}, "
        f"which gives {pin.channels} * h * w for the sizes h x w its map can have",
    )


def _reads(graph: _Graph, axis: int, accepted: Periodic, leading: dict[int, set[int]]) -> Reads | None:
    """The accepted sizes at which every row is read: worked out size by size until the answers have repeated
    with the period of the strides (up to the first adaptive pool) over three periods. `leading`: as in
    _Graph.every_row_read."""
    first = accepted.first()
    assert first is not None
    period = lcm(1, *(p for p in graph.growth(axis)[0] if p))
    if period > LONGEST_PERIOD or first > MOST_SIZES:
        return None
    flags: list[bool] = []
    end = first + 4 * period + 64
    while True:
        if graph.most_rows(axis, end - 1) > MOST_ROWS:  # sizes only grow with n: the batch's last is the largest
            return None
        flags += [n in accepted and graph.every_row_read(axis, n, leading) for n in range(first + len(flags), end)]
        start = end - period
        while start > first and flags[start - 1 - first] == flags[start - 1 - first + period]:
            start -= 1
        if end - start >= 3 * period or end - first >= MOST_SIZES:
            break
        end = first + 2 * (end - first)
    period = next(d for d in range(1, period + 1) if period % d == 0 and _repeats(flags[start - first :], d))
    residues = tuple(sorted({n % period for n in range(start, start + period) if flags[n - first]}))
    early = tuple(n for n in range(first, start) if flags[n - first])
    return Reads(period, residues, start, early, end - 1)


def _repeats(flags: list[bool], period: int) -> bool:
    return all(flags[i] == flags[i + period] for i in range(len(flags) - period))


def as_json(answer: Sizes) -> dict:
    """The answer as one JSON-ready object."""

    def reads(found: Reads | None) -> dict | None:
        if found is None:
            return None
        keys = ("period", "residues", "start", "early", "checked")
        return {key: list(v) if isinstance(v := getattr(found, key), tuple) else v for key in keys}

    low = [answer.smallest(axis) for axis in (0, 1)]
    return {
        "name": answer.spec.name,
        "input": list(answer.spec.input),
        "channels": answer.channels,
        "accepted": [
            {
                **{a: [s.first, s.last] for a, s in zip(AXES, box, strict=True)},
                "step": {"h": box[0].step, "w": box[1].step},
            }
            for box in answer.accepted
        ],
        "pinned_by": None if answer.pin is None else vars(answer.pin),
        "smallest": None if low[0] is None else {"h": low[0][0].first, "w": low[1][1].first},  # type: ignore[index]
        "declared_accepted": answer.declared(),
        "every_pixel_read": {a: reads(r) for a, r in zip(AXES, answer.reads, strict=True)},
        "refused": None
        if answer.refused is None
        else dict(zip(("h", "w"), answer.refused[:2], strict=True)) | {"problem": answer.refused[2].to_json()},
        "problems": [d.to_json() for d in answer.problems],
    }


def as_text(answer: Sizes) -> str:
    """The answer for people."""
    spec = answer.spec
    lines = [f"{spec.name}: input {show(spec.input)}; the channels, C = {answer.channels}, are fixed"]
    if not answer.accepted:
        return "\n".join([*lines, "no input size is accepted:", *(f"  {d}" for d in answer.problems)])
    reads = answer.reads
    if answer.pin is None:
        assert answer.axes is not None
        h, w = answer.axes
        if h.period == w.period == 1 and h.residues == w.residues == (0,) and not h.early + w.early:
            lines.append(f"accepted: every H >= {h.start} with every W >= {w.start}")
        else:
            lines.append(f"accepted: {h.describe('H')} with {w.describe('W')}")
    else:
        pin = answer.pin
        lines.append(
            f"accepted: exactly these sizes, as {pin.layer} needs {pin.features} features after {pin.flatten}, "
            f"{pin.channels} * h * w with h * w = {pin.features // pin.channels}:"
        )
        for box in answer.accepted:
            note = ""
            if reads[0] is not None and reads[1] is not None:
                read = [
                    [n for n in span.sizes()[:LONGEST_PERIOD] if n in r] for span, r in zip(box, reads, strict=True)
                ]
                note = f"; every pixel read at H in {_listed(read[0])} and W in {_listed(read[1])}"
                note = note if read[0] and read[1] else "; no size in it reads every pixel"
            lines.append(f"  H {box[0]}, W {box[1]}{note}")
        low_h, low_w = answer.smallest(0), answer.smallest(1)
        lines.append(
            f"smallest H: {low_h[0].first} (with W {low_h[1]}); smallest W: {low_w[1].first} (with H {low_w[0]})"  # type: ignore[index]
        )
    if None in reads:
        lines.append(
            "which pixels are read is not worked out: a layer kind does not say which rows it reads, "
            f"or the strides multiply to over {LONGEST_PERIOD}, or the sizes start over {MOST_SIZES}, "
            f"or a layer has over {MOST_ROWS} rows or columns, or branches meet of which none reads every row "
            "and column the others read"
        )
    elif answer.pin is None:
        for axis, found in zip("HW", reads, strict=True):
            lines.append(
                f"every {'row' if axis == 'H' else 'column'} is read at {found.describe(axis)}; "
                f"worked out up to {axis} = {found.checked}, repeating every {found.period}"
            )
    if answer.refused is not None:
        rows, columns, problem = answer.refused
        lines.append(f"where branches meet, other sizes are refused; at {rows} x {columns}: {problem}")
    if not answer.declared():
        lines.append(f"the spec's own input {show(spec.input)} is not accepted")
    return "\n".join(lines)


def _listed(sizes: list[int]) -> str:
    return "{" + ", ".join(map(str, sizes)) + "}" if sizes else "{}"
