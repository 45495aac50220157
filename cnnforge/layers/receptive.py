"""Receptive fields: which rows and columns of the network's input each position of a layer's output spans."""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd


@dataclass(frozen=True)
class Reach:
    """The receptive field along one axis: output position i (of `count`) spans the input rows
    start + i*jump to start + i*jump + size - 1, padding included, so the span may start before row 0.

    After an adaptive pool whose input is not a multiple of its output, or where branches meet whose positions
    step differently, windows differ in size and step: then `start` is None and `size` and `jump` are upper bounds
    (the largest window, the largest step).
    """

    size: int
    jump: int
    start: int | None
    count: int

    @classmethod
    def pixels(cls, count: int) -> Reach:
        """The network's input: each of `count` rows spans itself."""
        return cls(1, 1, 0, count)

    @property
    def even(self) -> bool:
        return self.start is not None

    def slide(self, span: int, stride: int, pad: int, count: int) -> Reach:
        """Through windows spanning `span` positions, `stride` apart, the first starting `pad` positions before
        position 0: r_out = r_in + (span - 1) * j_in, j_out = j_in * stride, start_out = start_in - pad * j_in."""
        start = None if self.start is None else self.start - pad * self.jump
        return Reach(self.size + (span - 1) * self.jump, self.jump * stride, start, count)

    def adaptive(self, count: int) -> Reach:
        """Through an adaptive pool to `count` positions: window i covers positions floor(i*n/count) up to
        ceil((i+1)*n/count) - 1 of the n before it, a plain sliding window when count divides n."""
        n = self.count
        if n % count == 0:
            return self.slide(n // count, n // count, 0, count)
        longest = -(-(n + count - gcd(n, count)) // count)  # the largest ceil((i+1)n/count) - floor(in/count)
        return Reach(self.size + (longest - 1) * self.jump, -(-n // count) * self.jump, None, count)

    def whole(self) -> Reach:
        """All positions together, as each output of a linear layer sees the map before it."""
        return self.slide(self.count, self.count, 0, 1)

    def covers(self, rows: int) -> bool:
        """Whether every position's span holds all `rows` input rows."""
        return (
            self.start is not None and self.start + (self.count - 1) * self.jump <= 0 <= self.start + self.size - rows
        )


@dataclass(frozen=True)
class Field:
    """The receptive field of a layer's output positions, along the rows and the columns."""

    h: Reach
    w: Reach

    @classmethod
    def pixels(cls, rows: int, columns: int) -> Field:
        return cls(Reach.pixels(rows), Reach.pixels(columns))

    def covers(self, rows: int, columns: int) -> bool:
        """Whether every position spans the whole input."""
        return self.h.covers(rows) and self.w.covers(columns)
