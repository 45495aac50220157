"""The sliding-window arithmetic that conv and pooling layers share, as torch computes it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from .axis import bits, every
from .base import Checks, Shape, plural, show
from .receptive import Reach


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding window: kernel, stride, padding on each side, dilation, and how
    padding rows are filled (conv's padding_mode; pools pad with values that are no input row, at most half
    the kernel of them, and may leave the stride to follow the kernel)."""

    kernel: int
    stride: int
    pad_lo: int
    pad_hi: int
    dilation: int = 1
    ceil_mode: bool = False
    padding_mode: str = "zeros"
    pool: bool = False
    stride_is_kernel: bool = False

    @property
    def span(self) -> int:
        """Input rows one window covers, dilation included."""
        return self.dilation * (self.kernel - 1) + 1

    def output(self, size: int) -> int:
        """torch's output size: floor((size + pads - span) / stride) + 1, or ceil in ceil_mode,
        where a last window starting inside the right padding is dropped."""
        room = size + self.pad_lo + self.pad_hi - self.span
        out = (room + (self.stride - 1 if self.ceil_mode else 0)) // self.stride + 1
        if self.ceil_mode and (out - 1) * self.stride >= size + self.pad_lo:
            out -= 1
        return out

    def fits(self, size: int) -> bool:
        """Whether the checker accepts this window over `size` rows: a non-empty output, and padding that a pool
        (at most half the kernel) or the padding mode (reflect: less than the input, circular: at most it) allows."""
        pad = max(self.pad_lo, self.pad_hi)
        if self.pool and pad > self.kernel // 2:
            return False
        if (self.padding_mode == "reflect" and pad >= size) or (self.padding_mode == "circular" and pad > size):
            return False
        return self.output(size) >= 1

    def receptive(self, reach: Reach) -> Reach:
        """The receptive field of the output positions, given the input positions'."""
        return reach.slide(self.span, self.stride, self.pad_lo, self.output(reach.count))

    def read(self, size: int, wanted: int) -> int:
        """The input rows (a bit per row) that the output positions set in `wanted` read, a padding row
        counting as the row it copies."""
        out = self.output(size)
        if wanted & every(out) == every(out):  # windows at rows 0, stride, 2*stride, ... of the padded input
            starts = every(out * self.stride) // every(self.stride)
        else:
            starts = sum(1 << (o * self.stride) for o in bits(wanted & every(out)))
        taps = 0
        for j in range(self.kernel):
            taps |= starts << (j * self.dilation)
        rows = (taps >> self.pad_lo) & every(size)
        if self.padding_mode != "zeros":
            padding = (taps & every(self.pad_lo)) | (taps >> (self.pad_lo + size) << (self.pad_lo + size))
            for row in bits(padding):
                rows |= 1 << self._source(row - self.pad_lo, size)
        return rows

    def unread(self, size: int, out: int) -> int:
        """Input rows after the last one any window reads: torch never reads them."""
        if self.stride == 1 and self.dilation == 1:  # windows at every padded row: each row is read
            return 0
        return size - 1 - self.last_read(size, out)

    def last_read(self, size: int, out: int) -> int:
        """The last input row some window reads, a padding row counting as the row it copies; -1 if none.

        Window m's taps sit at padded rows m*stride + j*dilation (j < kernel), with gaps when stride or
        dilation exceed 1. Within the left padding, the input and the right padding, the padding mode maps
        padded rows to input rows monotonically, so only the first and the last tap in each part matter.
        """
        lo, end = self.pad_lo, self.pad_lo + size
        rows = [-1]
        for start, stop in ((0, lo), (lo, end), (end, end + self.pad_hi)):  # left padding, input, right padding
            taps = self._tap(out, start, after=True), self._tap(out, stop - 1, after=False)
            rows += [self._source(t - lo, size) for t in taps if t is not None and start <= t < stop]
        return max(rows)

    def _tap(self, out: int, bound: int, after: bool) -> int | None:
        """The padded row nearest `bound` that a tap reads, at or after it (or at or before it); None if none.

        Taps sit at i*outer + j*inner (i < n_outer, j < n_inner), inner being the smaller step. For each i
        the nearest j is solved for. Where j is clipped to its range the best i is the edge one; elsewhere
        the distance to `bound` repeats in i with period inner/gcd, so one period of i next to it suffices.
        """
        (inner, n_inner), (outer, n_outer) = sorted([(self.dilation, self.kernel), (self.stride, out)])
        period = inner // math.gcd(inner, outer)
        if after:
            edge = max(-(-bound // outer), 0)  # from here on, j is clipped to 0
            first = -(-(bound - (n_inner - 1) * inner) // outer)  # before this, j would be too large
            top = min(edge, n_outer) - 1
            tried = [edge, *range(max(first, top - period + 1), top + 1)]
        else:
            edge = (bound - (n_inner - 1) * inner) // outer  # up to here, j is clipped to n_inner - 1
            last = bound // outer  # after this, j would be negative
            bottom = max(edge + 1, 0)
            tried = [min(edge, n_outer - 1), *range(bottom, min(last, n_outer - 1, bottom + period - 1) + 1)]
        found = []
        for i in tried:
            rest = bound - i * outer
            j = max(-(-rest // inner), 0) if after else min(rest // inner, n_inner - 1)
            if 0 <= i < n_outer and 0 <= j < n_inner:
                found.append(i * outer + j * inner)
        return (min if after else max)(found, default=None)

    def _source(self, row: int, size: int) -> int:
        """The input row that padded row `row` (0 = first input row) holds; -1 for a constant padding value."""
        if 0 <= row < size:
            return row
        if self.padding_mode == "replicate":
            return 0 if row < 0 else size - 1
        if self.padding_mode == "reflect":  # clamped: padding as large as the input is an error of its own
            return min(-row, size - 1) if row < 0 else max(2 * (size - 1) - row, 0)
        if self.padding_mode == "circular":
            return row % size
        return -1  # zeros


def slide(x: Shape, hw: tuple[Window, Window], checks: Checks) -> tuple[int, int] | None:
    """Output (H, W) of sliding `hw` over the feature map `x`; None (with an error) if it does not fit."""
    sizes = x[1], x[2]
    out = hw[0].output(sizes[0]), hw[1].output(sizes[1])
    padded = [s + w.pad_lo + w.pad_hi for s, w in zip(sizes, hw, strict=True)]
    spans = [w.span for w in hw]
    dilated = "a dilated window" if any(w.dilation > 1 for w in hw) else "the kernel"
    if not checks.require(
        min(out) >= 1,
        lambda: (
            f"{dilated} spans {show(spans)} but the input {show(x)} is only {show(padded)} "
            f"with padding, so the output would be empty (computed size {show(out)}){_fixes(sizes, hw)}; "
            "`cnnforge sizes FILE` lists the input sizes the spec accepts"
        ),
    ):
        return None
    rows, cols = hw[0].unread(sizes[0], out[0]), hw[1].unread(sizes[1], out[1])
    if rows or cols:
        checks.warning(unread_message(hw, x, rows, cols), "stride")
    return out


UNREAD = " unread; torch drops them silently"


def unread_message(hw: tuple[Window, Window], x: Shape, rows: int, cols: int) -> str:
    """The warning that windows `hw` leave the last `rows` rows and `cols` columns of the map `x` unread (all of
    them when they leave every row, or every column)."""
    if rows >= x[1] or cols >= x[2]:  # no row (or no column) is read, so no element is
        rows, cols = x[1], x[2]
    cause = f"stride {show([w.stride for w in hw])} leaves"
    if any(w.dilation > 1 for w in hw):
        cause = f"stride {show([w.stride for w in hw])} and dilation {show([w.dilation for w in hw])} leave"
    return f"{cause} the last {plural(rows, 'row')} and {plural(cols, 'column')} of the input {show(x)}{UNREAD}"


def _fixes(sizes: tuple[int, int], hw: tuple[Window, Window]) -> str:
    """What gives the windows `hw` over `sizes` a non-empty output that `fits`: more padding, a smaller kernel or
    dilation on the axes left empty, or a bigger input; '; padding: 1 (giving 2x2) or ... would fit', or ''."""
    empty = [w.output(n) < 1 for w, n in zip(hw, sizes, strict=True)]
    found = []
    for change, describe in (
        (_padded, lambda new: f"padding: {_value([w.pad_lo for w in new])}"),
        (partial(_smaller, field="kernel"), lambda new: f"a {_hw([w.kernel for w in new])} kernel"),
        (partial(_smaller, field="dilation"), lambda new: f"dilation: {_value([w.dilation for w in new])}"),
    ):
        new = [change(w, n) if e else w for w, n, e in zip(hw, sizes, empty, strict=True)]
        if None not in new and all(w.fits(n) for w, n in zip(new, sizes, strict=True)):  # type: ignore[union-attr]
            found.append(f"{describe(new)} (giving {_hw([w.output(n) for w, n in zip(new, sizes, strict=True)])})")
    least = [_least(w.fits, 1, max(w.span, w.pad_lo + 1, w.pad_hi + 1)) for w in hw]
    if None not in least:
        giving = _hw([w.output(n) for w, n in zip(hw, least, strict=True)])  # type: ignore[arg-type]
        found.append(f"an input of at least {_hw(least)} (giving {giving})")  # type: ignore[arg-type]
    if not found:
        return ""
    return "; " + (" or ".join([", ".join(found[:-1]), found[-1]]) if len(found) > 1 else found[0]) + " would fit"


def _padded(w: Window, n: int) -> Window | None:
    """`w` with the least padding on each side, more than it has, that gives an output over `n` rows."""
    pad = _least(lambda p: replace(w, pad_lo=p, pad_hi=p).output(n) >= 1, max(w.pad_lo, w.pad_hi) + 1, w.span)
    return None if pad is None else replace(w, pad_lo=pad, pad_hi=pad)


def _smaller(w: Window, n: int, field: str) -> Window | None:
    """`w` with the largest dilation (or kernel), less than its own, that gives an output over `n` rows."""
    too_big = _least(lambda v: _with(w, field, v).output(n) < 1, 1, getattr(w, field))
    return None if too_big is None or too_big == 1 else _with(w, field, too_big - 1)


def _with(w: Window, field: str, value: int) -> Window:
    """`w` with `field` set to `value`; a stride that follows the kernel follows it."""
    if field == "kernel" and w.stride_is_kernel:
        return replace(w, kernel=value, stride=value)
    return replace(w, **{field: value})


def _value(pair: list[int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else show(pair)


def _hw(pair: list[int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _least(ok: Callable[[int], bool], low: int, high: int) -> int | None:
    """The smallest n in [low, high] with ok(n), for ok false and then true; None if there is none."""
    if low > high or not ok(high):
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if ok(middle) else (middle + 1, high)
    return low
