"""The sliding-window arithmetic that conv and pooling layers share, as torch computes it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .axis import bits, every
from .base import Checks, Shape, plural, show
from .receptive import Reach


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding window: kernel, stride, padding on each side, dilation, and how
    padding rows are filled (conv's padding_mode; pools pad with values that are no input row)."""

    kernel: int
    stride: int
    pad_lo: int
    pad_hi: int
    dilation: int = 1
    ceil_mode: bool = False
    padding_mode: str = "zeros"

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
            f"with padding, so the output would be empty (computed size {show(out)})"
        ),
    ):
        return None
    rows, cols = hw[0].unread(sizes[0], out[0]), hw[1].unread(sizes[1], out[1])
    if rows == sizes[0] or cols == sizes[1]:  # no row (or no column) is read, so no element is
        rows, cols = sizes
    if rows or cols:
        cause = f"stride {show([w.stride for w in hw])} leaves"
        if any(w.dilation > 1 for w in hw):
            cause = f"stride {show([w.stride for w in hw])} and dilation {show([w.dilation for w in hw])} leave"
        checks.warning(
            f"{cause} the last {plural(rows, 'row')} and "
            f"{plural(cols, 'column')} of the input {show(x)} unread; torch drops them silently",
            "stride",
        )
    return out
