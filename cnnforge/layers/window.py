"""The sliding-window arithmetic that conv and pooling layers share, as torch computes it."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Checks, Shape, show


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding window: kernel, stride, padding on each side, dilation."""

    kernel: int
    stride: int
    pad_lo: int
    pad_hi: int
    dilation: int = 1
    ceil_mode: bool = False

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

    def unread(self, size: int, out: int) -> int:
        """Input rows past the last window: torch never reads them."""
        last = (out - 1) * self.stride - self.pad_lo + self.span - 1  # last input row read
        return max(0, size - 1 - last)


def _rows(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def slide(x: Shape, hw: tuple[Window, Window], checks: Checks) -> tuple[int, int] | None:
    """Output (H, W) of sliding `hw` over the feature map `x`; None (with an error) if it does not fit."""
    sizes = x[1], x[2]
    out = hw[0].output(sizes[0]), hw[1].output(sizes[1])
    padded = [s + w.pad_lo + w.pad_hi for s, w in zip(sizes, hw)]
    spans = [w.span for w in hw]
    dilated = "a dilated window" if any(w.dilation > 1 for w in hw) else "the kernel"
    if not checks.require(
        min(out) >= 1,
        lambda: f"{dilated} spans {show(spans)} but the input {show(x)} is only {show(padded)} "
        f"with padding, so the output would be empty (computed size {show(out)})",
    ):
        return None
    rows, cols = hw[0].unread(sizes[0], out[0]), hw[1].unread(sizes[1], out[1])
    if rows or cols:
        checks.warning(
            f"stride {show([w.stride for w in hw])} leaves the last {_rows(rows, 'row')} and "
            f"{_rows(cols, 'column')} of the input {show(x)} unread; torch drops them silently",
            "stride",
        )
    return out
