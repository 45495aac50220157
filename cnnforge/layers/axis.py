"""What a spatial layer does along one axis (the rows, or the columns): the output size, the receptive field,
and which input rows the output reads. Sliding windows (window.py) and the two kinds here implement it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from .receptive import Reach


class Axis(Protocol):
    stride: int
    """Input rows between neighbouring output positions; 0 where the output size is fixed (adaptive pools)."""

    def output(self, size: int) -> int:
        """Output rows for `size` input rows."""
        ...

    def fits(self, size: int) -> bool:
        """Whether the checker accepts `size` input rows."""
        ...

    def receptive(self, reach: Reach) -> Reach:
        """The receptive field of the output positions, given the input positions'."""
        ...

    def read(self, size: int, wanted: int) -> int:
        """The input rows (a bit per row) that the output positions set in `wanted` read."""
        ...


def bits(mask: int) -> Iterator[int]:
    """The positions of the bits set in `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def every(count: int) -> int:
    """The mask of all `count` positions."""
    return (1 << count) - 1


class Same:
    """Position i of the output is position i of the input: element-wise layers."""

    stride = 1

    def output(self, size: int) -> int:
        return size

    def fits(self, size: int) -> bool:
        return True

    def receptive(self, reach: Reach) -> Reach:
        return reach

    def read(self, size: int, wanted: int) -> int:
        return wanted


SAME = Same()


@dataclass(frozen=True)
class Adaptive:
    """torch's adaptive pooling to `count` positions: window i covers input rows floor(i*n/count) up to
    ceil((i+1)*n/count) - 1, so the windows cover every row whatever n is."""

    count: int
    stride = 0

    def output(self, size: int) -> int:
        return self.count

    def fits(self, size: int) -> bool:
        return True

    def receptive(self, reach: Reach) -> Reach:
        return reach.adaptive(self.count)

    def read(self, size: int, wanted: int) -> int:
        if wanted & every(self.count) == every(self.count):
            return every(size)
        rows = 0
        for i in bits(wanted & every(self.count)):
            first, end = i * size // self.count, -(-(i + 1) * size // self.count)
            rows |= every(end - first) << first
        return rows
