"""Side-by-side timing: windows of every contender interleaved in one process, after warm-up, summarised by
medians and spreads, so that drift in the machine's load hits every contender alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """The median of repeated measurements, their lowest and highest, and the measurements themselves."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        """The sample standard deviation (n - 1 in the denominator); 0 for a single value."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def scaled(self, factor: float) -> Stat:
        """The same measurements in another unit, e.g. seconds -> ms with `factor` 1000."""
        return Stat.of([v * factor for v in self.values])

    def inverse(self, numerator: float) -> Stat:
        """`numerator / value` for every measurement, e.g. seconds per window -> images per second."""
        return Stat.of([numerator / v for v in self.values])


def interleave(contenders: Mapping[str, Callable[[], float]], windows: int, warmup: int) -> dict[str, list[float]]:
    """Each contender's seconds per window. A round runs every contender's window once; `warmup` rounds are not
    kept, then `windows` rounds are, and every other round runs the contenders in reverse order so that none
    always goes first. A contender returns its own seconds, so it can leave its set-up out and wait for the GPU.

    >>> interleave({"a": lambda: 1.0, "b": lambda: 2.0}, windows=3, warmup=1)
    {'a': [1.0, 1.0, 1.0], 'b': [2.0, 2.0, 2.0]}
    """
    names = list(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + windows):
        for name in names if round_ % 2 == 0 else reversed(names):
            elapsed = contenders[name]()
            if round_ >= warmup:
                seconds[name].append(elapsed)
    return seconds


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Stat:
    """Window-by-window ratios of two contenders measured in the same rounds."""
    return Stat.of([a / b for a, b in zip(numerators, denominators, strict=True)])
