"""Which input sizes H and W a spec accepts (its channels C are fixed), and at which every input pixel is read.

Found statically. Each layer's output size is a non-decreasing function of its input size and each check on
sizes is a lower bound, so along each axis the accepted sizes are all those from a smallest one on: the compiler
itself, asked by bisection, finds it. A linear layer (or a batchnorm with `channels`) after flatten pins the
feature count C_f * h * w, and with it the sizes: then the answer is the exact set, a few boxes of sizes. Whether
every pixel is read is worked out size by size from the rows each layer reads (its axes); from some size on the
answer repeats with a period of the product of the strides, which is what is reported, checked over several periods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import isqrt

from .compiler import Compiled, CompiledLayer, compile_spec
from .diagnostics import Diagnostic
from .layers import show
from .layers.axis import Axis, every
from .layers.fields import MAX_SIZE
from .spec.model import SpecBase
from .spec.source import Source

LONGEST_PERIOD = 4096  # strides multiplying to more: rows read are not worked out
MOST_SIZES = 1 << 14  # sizes worked out per axis at most
MOST_ROWS = 1 << 16  # rows of a layer's input or output at most: rows read are a bit mask each, worked out size by size
AXES = ("h", "w")


@dataclass(frozen=True)
class Span:
    """Sizes `first` to `last`; `last` None: no end (up to the largest size, 2^31 - 1)."""

    first: int
    last: int | None = None

    def __str__(self) -> str:
        if self.last == self.first:
            return str(self.first)
        return f"{self.first}.." + ("" if self.last is None else str(self.last))

    def sizes(self) -> range:
        return range(self.first, (MAX_SIZE if self.last is None else self.last) + 1)


@dataclass(frozen=True)
class Reads:
    """The sizes along one axis at which every input row is read: below `start`, those in `early`; from `start`
    on, those n with n % period in `residues`. Worked out for every accepted size up to `checked`."""

    period: int
    residues: tuple[int, ...]
    start: int
    early: tuple[int, ...]
    checked: int

    def __contains__(self, n: int) -> bool:
        return n in self.early if n < self.start else n % self.period in self.residues

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


@dataclass(frozen=True)
class Pin:
    """A layer after flatten that needs `features` = `channels` * h * w features."""

    layer: str
    features: int
    flatten: str
    channels: int


@dataclass
class Sizes:
    """The answer for one spec: the accepted (H, W) as a union of boxes, empty when no size is accepted."""

    spec: SpecBase
    accepted: list[tuple[Span, Span]] = field(default_factory=list)
    pin: Pin | None = None
    reads: tuple[Reads | None, Reads | None] = (None, None)
    problems: list[Diagnostic] = field(default_factory=list)

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


def find(spec: SpecBase, file: str = "<spec>", source: Source | None = None) -> Sizes:
    """The sizes the validated `spec` accepts; `file` and `source` place the problems when none is."""
    answer = Sizes(spec)

    def compiled(h: int, w: int, placed: bool = False) -> Compiled:
        resized = spec.model_copy(update={"input": (spec.input[0], h, w)})
        return compile_spec(resized, file, source) if placed else compile_spec(resized, guess=False)

    if not _spatial_ok(compiled(MAX_SIZE, MAX_SIZE)):
        answer.problems = _errors(compiled(*spec.input[1:], placed=True))
        return answer
    h_min = _first(lambda n: _spatial_ok(compiled(n, MAX_SIZE)), 1)
    w_min = _first(lambda n: _spatial_ok(compiled(MAX_SIZE, n)), 1)
    smallest = compiled(h_min, w_min)
    chains = _chains(smallest)
    answer.reads = (_reads(chains[0], h_min), _reads(chains[1], w_min))
    boxes = [(Span(h_min), Span(w_min))]
    flatten = next((layer for layer in smallest.layers if _dims(layer) == (3, 1)), None)
    pinned = _pin(smallest, flatten)

    def size_at(axis: int, n: int) -> int:
        """The map's size along `axis` at flatten, for an input size n along it."""
        chain = chains[axis]
        if chain is not None:
            return _size(chain, n)
        sizes = (n, w_min) if axis == 0 else (h_min, n)
        return compiled(*sizes).layers[flatten.index].input[axis + 1]  # type: ignore[union-attr, index]

    fixed = flatten is None or all(size_at(a, n) == size_at(a, MAX_SIZE) for a, n in enumerate((h_min, w_min)))
    if flatten is not None and pinned is not None and not fixed:  # else the feature count is the same for all
        answer.pin = Pin(pinned.name, pinned.layer.first_axis() or 0, flatten.name, flatten.input[0])  # type: ignore[index]
        boxes = _pinned(answer.pin, (h_min, w_min), size_at)
    for box in boxes:
        tried = compiled(box[0].first, box[1].first, placed=True)
        if tried.ok:
            answer.accepted.append(box)
        elif not answer.problems:
            answer.problems = _errors(tried)
    if answer.accepted:
        answer.problems = []
    elif not answer.problems:
        answer.problems = [_no_factors(answer.pin, file)]  # type: ignore[arg-type]
    return answer


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


def _chains(compiled: Compiled) -> tuple[list[Axis] | None, list[Axis] | None]:
    """What the layers up to the features do along each axis; None where a layer does not say."""
    chains: list[list[Axis] | None] = [[], []]
    for layer in compiled.layers:
        if _dims(layer) != (3, 3):
            break
        axes = layer.layer.axes(layer.input)  # type: ignore[arg-type]
        for axis in (0, 1):
            chain = chains[axis]
            chains[axis] = None if axes is None or chain is None else [*chain, axes[axis]]
    return chains[0], chains[1]


def _size(chain: list[Axis], n: int) -> int:
    for axis in chain:
        n = axis.output(n)
    return n


def _pin(compiled: Compiled, flatten: CompiledLayer | None) -> CompiledLayer | None:
    """The first layer after flatten that requires a feature count."""
    if flatten is None:
        return None
    return next((layer for layer in compiled.layers[flatten.index + 1 :] if layer.layer.first_axis()), None)


def _pinned(pin: Pin, firsts: tuple[int, int], size_at: Callable[[int, int], int]) -> list[tuple[Span, Span]]:
    """The boxes of (H, W) whose map at flatten, channels x h x w, has the pinned feature count."""
    if pin.features % pin.channels:
        return []
    product = pin.features // pin.channels
    spans = []
    for axis in (0, 1):
        low, high = size_at(axis, firsts[axis]), size_at(axis, MAX_SIZE)

        def span(value: int, axis: int = axis, low: int = low, high: int = high) -> Span | None:
            if not low <= value <= high:
                return None
            if low == high:  # the size at flatten does not depend on the input's (an adaptive pool)
                return Span(firsts[axis])
            start = _first(lambda n: size_at(axis, n) >= value, firsts[axis])
            end = _first(lambda n: size_at(axis, n) > value, start)
            return Span(start, end - 1)

        spans.append(span)
    boxes = []
    for a in range(1, isqrt(product) + 1):
        if product % a == 0:
            for h, w in {(a, product // a), (product // a, a)}:
                box = spans[0](h), spans[1](w)
                if box[0] and box[1]:
                    boxes.append(box)
    return sorted(boxes, key=lambda box: (box[0].first, box[1].first))  # type: ignore[arg-type, return-value]


def _no_factors(pin: Pin, file: str) -> Diagnostic:
    return Diagnostic(
        file,
        f"no input size is accepted: {pin.layer} needs {pin.features} features after {pin.flatten}, "
        f"which gives {pin.channels} * h * w for the sizes h x w its map can have",
    )


def every_row_read(chain: list[Axis], n: int) -> bool:
    """Whether every one of `n` input rows reaches the output, through the rows each layer reads."""
    sizes = [n]
    for axis in chain:
        sizes.append(axis.output(sizes[-1]))
    wanted = every(sizes[-1])  # every output row is used: as output, or by the layers after flatten
    for axis, size in zip(reversed(chain), reversed(sizes[:-1]), strict=True):
        wanted = axis.read(size, wanted)
    return wanted == every(n)


def _reads(chain: list[Axis] | None, first: int) -> Reads | None:
    """The sizes from `first` on at which every row is read: worked out size by size until the answers have
    repeated with the period of the strides (up to the first adaptive pool) over three periods."""
    if chain is None:
        return None
    period = 1
    for axis in chain:
        if axis.stride == 0:  # sizes after an adaptive pool no longer follow the input's
            break
        period *= axis.stride
    if period > LONGEST_PERIOD or first > MOST_SIZES:
        return None
    flags: list[bool] = []
    end = first + 4 * period + 64
    while True:
        if _rows(chain, end - 1) > MOST_ROWS:  # sizes only grow with n: the batch's last size is its largest
            return None
        flags += [every_row_read(chain, n) for n in range(first + len(flags), end)]
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


def _rows(chain: list[Axis], n: int) -> int:
    """The most rows any layer along `chain` has, in or out, for `n` input rows."""
    most = n
    for axis in chain:
        n = axis.output(n)
        most = max(most, n)
    return most


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
        "accepted": [{a: [s.first, s.last] for a, s in zip(AXES, box, strict=True)} for box in answer.accepted],
        "pinned_by": None if answer.pin is None else vars(answer.pin),
        "smallest": None if low[0] is None else {"h": low[0][0].first, "w": low[1][1].first},  # type: ignore[index]
        "declared_accepted": answer.declared(),
        "every_pixel_read": {a: reads(r) for a, r in zip(AXES, answer.reads, strict=True)},
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
        ((h, w),) = answer.accepted
        lines.append(f"accepted: every H >= {h.first} with every W >= {w.first}")
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
            f"or a layer has over {MOST_ROWS} rows or columns"
        )
    elif answer.pin is None:
        for axis, found in zip("HW", reads, strict=True):
            lines.append(
                f"every {'row' if axis == 'H' else 'column'} is read at {found.describe(axis)}; "
                f"worked out up to {axis} = {found.checked}, repeating every {found.period}"
            )
    if not answer.declared():
        lines.append(f"the spec's own input {show(spec.input)} is not accepted")
    return "\n".join(lines)


def _listed(sizes: list[int]) -> str:
    return "{" + ", ".join(map(str, sizes)) + "}" if sizes else "{}"
