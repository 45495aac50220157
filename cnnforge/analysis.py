"""Static analysis of a compiled spec: each layer's receptive field, and the memory its output and its backward
pass take while training. Pure Python, like the compiler; each layer kind supplies its own rules."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .compiler import Compiled, CompiledLayer
from .layers.memory import Kept
from .layers.merge import Merge
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
    """Receptive fields and training memory of an error-free compiled spec, for a batch of `batch` samples; one
    LayerAnalysis per node, in order. Nodes are walked by the tensors they read, so branches are followed.

    A tensor is kept once however many nodes keep it (relu keeps its output, a max pool after it keeps the
    same tensor as its input; two branches read one tensor): it is counted at the first node that keeps it. A view
    (flatten's output, a chunk of the channels) keeps the whole tensor it views alive, so keeping it counts that
    tensor. A node whose inputs need no gradient and that has no parameters keeps nothing, as autograd records
    nothing for it. Where branches meet, a sum and a concat keep nothing, a product its factors (layers/merge.py).
    """
    assert compiled.spec is not None
    _, rows, columns = compiled.spec.input
    fields: dict[int, Field | None] = {-1: Field.pixels(rows, columns)}  # per node: its output's field
    storages: dict[int, object] = {-1: "input"}  # per node: the tensor that holds its output
    held: dict[int, int] = {-1: prod(compiled.spec.input)}  # per node: that tensor's elements per sample (a view's
    # output keeps all of the tensor it views alive)
    grads: dict[int, bool] = {-1: False}  # per node: whether its output needs a gradient
    mixed: dict[int, bool] = {-1: False}  # per node: whether its channels (or features) have different fields
    seen: set[object] = set()
    layers, complete = [], True
    for node in compiled.layers:
        y = node.output
        assert y is not None
        grad = any(grads[i] for i in node.inputs)
        if isinstance(node.layer, Merge):
            field = node.layer.merge_field([fields[i] for i in node.inputs], y, (rows, columns))
            storage: object = node.index
            held[node.index] = prod(y)
            differ = node.layer.kind == "concat" and any(fields[i] != field for i in node.inputs)
            mixed[node.index] = differ or any(mixed[i] for i in node.inputs)
        else:
            assert node.input is not None
            before = fields[node.inputs[0]]
            field = node.layer.receptive_field(node.input, before) if before is not None else None
            storage = storages[node.inputs[0]] if node.layer.view() else node.index
            held[node.index] = held[node.inputs[0]] if node.layer.view() else prod(y)
            mixed[node.index] = mixed[node.inputs[0]] and not node.layer.mixes_channels()
        storages[node.index] = storage
        kept = _kept(node, grad, storages, grads, held)
        saved = None
        if kept is not None:
            saved = 0
            for key, elements, item in kept:
                if key not in seen:
                    seen.add(key)
                    saved += elements * item.itemsize * (batch if item.per_sample else 1)
        complete = complete and saved is not None
        # a map's field spans every channel's; a feature has one channel's, which differ after a concat
        shown = None if mixed[node.index] and len(y) == 1 else field
        whole = shown is not None and shown.covers(rows, columns)
        layers.append(LayerAnalysis(shown, whole, prod(y), saved))
        fields[node.index], grads[node.index] = field, grad or node.params > 0
    total = sum(layer.saved_bytes or 0 for layer in layers) if complete else None
    return Analysis(batch, layers, compiled.total_params * FLOAT32, total)


def _kept(
    node: CompiledLayer, grad: bool, storages: dict[int, object], grads: dict[int, bool], held: dict[int, int]
) -> list[tuple[object, int, Kept]] | None:
    """What `node` keeps for the backward pass, as (the tensor, its elements per sample, how it is kept); None
    when unknown. `grad`: whether an input needs a gradient; `storages` and `held`: per node, the tensor holding
    its output (this node's included) and that tensor's elements per sample."""
    y = node.output
    assert y is not None
    if isinstance(node.layer, Merge):
        shapes = [s for s in node.shapes if s is not None]
        found = node.layer.merge_kept(shapes, y, [grads[i] for i in node.inputs])
        tensors = [(storages[i], held[i]) for i in node.inputs]
        return [
            (*(tensors[k] if k is not None else ((node.index, n), item.elements)), item)
            for n, (k, item) in enumerate(found)
        ]
    x = node.input
    assert x is not None
    own = node.layer.kept(x, y, grad) if grad or node.params else ()
    if own is None:
        return None
    source = node.inputs[0]
    tensors = {"input": (storages[source], held[source]), "output": (storages[node.index], held[node.index])}
    return [(*tensors.get(item.tensor, ((node.index, n), item.elements)), item) for n, item in enumerate(own)]
