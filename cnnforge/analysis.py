"""Static analysis of a compiled spec: each layer's receptive field, and the memory its output and its backward
pass take while training. Pure Python, like the compiler; each layer kind supplies its own rules."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .compiler import Compiled
from .layers.receptive import Field

FLOAT32, BFLOAT16 = 4, 2  # bytes per element


@dataclass(frozen=True)
class LayerAnalysis:
    """One layer: the receptive field of its output positions (None when unknown), its output's elements per
    sample, and the bytes of tensors its backward pass keeps that no earlier layer keeps (None when unknown)."""

    field: Field | None
    whole_input: bool
    output_elements: int
    saved_bytes: int | None


@dataclass(frozen=True)
class Analysis:
    """The per-layer analysis, with totals for a batch of `batch` samples."""

    batch: int
    layers: list[LayerAnalysis]
    param_bytes: int
    saved_bytes: int | None


def analyse(compiled: Compiled, batch: int = 1) -> Analysis:
    """Receptive fields and training memory of an error-free compiled spec, for a batch of `batch` samples.

    A tensor is kept once however many layers keep it (relu keeps its output, a max pool after it keeps the
    same tensor as its input): it is counted at the first layer that keeps it. A view (flatten's output, a chunk
    of the channels) keeps the whole tensor it views alive, so keeping it counts that tensor. A layer whose input
    needs no gradient and that has no parameters keeps nothing, as autograd records nothing for it.
    """
    assert compiled.spec is not None
    _, rows, columns = compiled.spec.input
    field: Field | None = Field.pixels(rows, columns)
    seen: set[object] = set()
    storage: object = "input"  # which tensor holds the current layer's input
    stored = prod(compiled.spec.input)  # its elements per sample: more than the input's when that is a view of it
    grad = False  # whether the current layer's input needs a gradient
    layers, complete = [], True
    for layer in compiled.layers:
        x, y = layer.input, layer.output
        assert x is not None and y is not None
        field = layer.layer.receptive_field(x, field) if field is not None else None
        output, held = (storage, stored) if layer.layer.view() else (layer.index, prod(y))
        kept = layer.layer.kept(x, y, grad) if grad or layer.params else ()
        saved = None
        if kept is not None:
            saved = 0
            for number, item in enumerate(kept):
                key = {"input": storage, "output": output}.get(item.tensor, (layer.index, number))
                elements = {"input": stored, "output": held}.get(item.tensor, item.elements)
                if key not in seen:
                    seen.add(key)
                    saved += elements * item.itemsize * (batch if item.per_sample else 1)
        complete = complete and saved is not None
        whole = field is not None and field.covers(rows, columns)
        layers.append(LayerAnalysis(field, whole, prod(y), saved))
        storage, stored, grad = output, held, grad or layer.params > 0
    total = sum(layer.saved_bytes or 0 for layer in layers) if complete else None
    return Analysis(batch, layers, compiled.total_params * FLOAT32, total)
