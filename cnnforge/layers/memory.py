"""The tensors that torch's autograd keeps from a layer's forward pass for its backward pass, while training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Kept:
    """One tensor kept for the backward pass: the layer's own `input` or `output` tensor, or a `new` one of
    `elements` elements of `itemsize` bytes per sample (per batch when not `per_sample`)."""

    tensor: Literal["input", "output", "new"]
    elements: int = 0
    itemsize: int = 4  # float32; int64 indices take 8
    per_sample: bool = True

    @classmethod
    def new(cls, elements: int, itemsize: int = 4, per_sample: bool = True) -> Kept:
        return cls("new", elements, itemsize, per_sample)


INPUT = Kept("input")
OUTPUT = Kept("output")
