"""Graph specs for the analysis tests: torch runs of them built here, independently of cnnforge's builder, and a
strategy of small random graphs whose branches mostly agree.

A spec's `layers` hold layer dicts, `{type: add | concat | multiply, branches: {label: [layers]}}` and
`{type: sequence, name, layers}`. The torch run records every node's output in the compiler's order: a merge
after its branches, each branch in the order of the file.
"""

from __future__ import annotations

import contextlib
from math import prod

import hypothesis
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from reach import linearised
from torch import nn
from torch_oracle import step

MERGES = ("add", "concat", "multiply")
STRIDES = st.sampled_from([1, 1, 2])
REDUCTIONS = st.sampled_from([1, 1, 2, 3])  # a window's span less twice its padding


def event(text: str) -> None:
    """Hypothesis's event, in a test of its; nothing in a plain test."""
    with contextlib.suppress(InvalidArgument):
        hypothesis.event(text)


def _combine(op: str, outputs: list[torch.Tensor]) -> torch.Tensor:
    if op == "concat":
        return torch.cat(outputs, dim=1)
    result = outputs[0]
    for other in outputs[1:]:
        result = result + other if op == "add" else result * other
    return result


class Oracle(nn.Module):
    """A graph spec in torch, leaves built by tests/torch_oracle.py (made linear, as tests/reach.py does, with
    `linear`); forward gives every node's output, in the compiler's order."""

    def __init__(self, spec: dict, linear: bool = False) -> None:
        super().__init__()
        self.linear = linear
        self.leaves = nn.ModuleList()
        self.program = self._build(spec["layers"], torch.rand(1, *spec["input"]))[1]

    def _build(self, entries: list[dict], x: torch.Tensor) -> tuple[torch.Tensor, list]:
        program: list = []
        for entry in entries:
            if entry["type"] in MERGES:
                built = [self._build(branch, x) for branch in entry["branches"].values()]
                x = _combine(entry["type"], [y for y, _ in built])
                program.append((entry["type"], [p for _, p in built]))
            elif entry["type"] == "sequence":
                x, inner = self._build(entry["layers"], x)
                program += inner
            else:
                module, y = step(entry, x)
                self.leaves.append(linearised(entry, module, x) if self.linear else module)
                x = y
                program.append(len(self.leaves) - 1)
        return x, program

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        self._run(self.program, x, outputs)
        return outputs

    def _run(self, program: list, x: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
        for item in program:
            if isinstance(item, int):
                x = self.leaves[item](x)
            else:
                op, branches = item
                x = _combine(op, [self._run(branch, x, outputs) for branch in branches])
            outputs.append(x)
        return x


def reached(oracle: Oracle, shape: list[int], node: int, positions: list[tuple[int, ...]]) -> torch.Tensor:
    """For each position (h, w) of node `node`'s map, or feature (f,), the input pixels that reach it through
    any of its channels: [P, H, W]."""
    x = torch.rand(len(positions), *shape, dtype=torch.float64).add_(0.5).requires_grad_()
    y = oracle(x)[node]
    picked = [
        y[sample, :, at[0], at[1]].sum() if len(at) == 2 else y[sample, at[0]] for sample, at in enumerate(positions)
    ]
    torch.stack(picked).sum().backward()
    return x.grad.abs().amax(dim=1) > 0  # [P, H, W]


def _span(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


@st.composite
def window(draw: st.DrawFn, c_i: int, c_o: int, stride: int, reduce: int) -> list[dict] | None:
    """A conv (or a pool, where c_i == c_o) with `stride` whose span less twice its padding is `reduce`, so that
    every such window gives the same output size; None if the draw finds none."""
    kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool"] if c_i == c_o else ["conv"]))
    kernel, dilation = draw(st.integers(1, 5)), draw(st.sampled_from([1, 1, 2]) if kind != "avgpool" else st.just(1))
    pad, odd = divmod(_span(kernel, dilation) - reduce, 2)
    if pad < 0 or odd or (kind != "conv" and pad > kernel // 2):
        return None
    layer: dict = {"type": kind, "stride": stride, "padding": pad}
    if kind == "conv":
        layer["shape"] = [c_i, c_o, kernel, kernel]
        if c_i == c_o and draw(st.integers(0, 3)) == 0:
            layer["groups"] = c_i
    else:
        layer["kernel"] = kernel
    if dilation > 1:
        layer["dilation"] = dilation
    return [layer]


@st.composite
def branch(draw: st.DrawFn, c_i: int, c_o: int | None, stride: int, reduce: int, gate: bool) -> tuple[list[dict], int]:
    """One branch from c_i channels: the identity, a window of the given geometry, or (with `gate`) a
    squeeze-and-excitation gate, [c, 1, 1]; then perhaps a pointwise layer. Its layers and channels."""
    kinds = ["window", "window"] + (["identity"] if (stride, reduce) == (1, 1) and c_o in (None, c_i) else [])
    kind = draw(st.sampled_from(kinds + (["gate"] if gate else [])))
    c = c_o if c_o is not None else draw(st.integers(1, 3))
    if kind == "identity":
        return [], c_i
    if kind == "gate":
        squeeze = draw(st.integers(1, 2))
        layers = [
            {"type": "adaptive_avgpool", "output": 1},
            {"type": "conv", "shape": [c_i, squeeze, 1, 1]},
            {"type": "relu"},
            {"type": "conv", "shape": [squeeze, c, 1, 1]},
            {"type": "sigmoid"},
        ]
        return layers, c
    for _ in range(8):
        found = draw(window(c_i, c, stride, reduce))
        if found is not None:
            break
    else:
        found = [{"type": "conv", "shape": [c_i, c, reduce, reduce], "stride": stride}]
    tail = draw(st.sampled_from([[], [], [{"type": "relu"}], [{"type": "batchnorm"}]]))
    return found + tail, c


@st.composite
def merge(draw: st.DrawFn, c_i: int, agree: bool) -> tuple[dict, int]:
    """Branches from c_i channels, merged; with `agree` their windows share one stride and span less padding,
    so that they agree at every size; without, each draws its own, so that they agree at some sizes only.
    A sum or product's later branches may give one channel, broadcast."""
    op = draw(st.sampled_from(MERGES))
    c_o = None if op == "concat" else draw(st.sampled_from([c_i, c_i, draw(st.integers(1, 3))]))
    geometry = draw(STRIDES), draw(REDUCTIONS)
    branches, channels = {}, []
    for number in range(draw(st.integers(2, 3))):
        own = agree or draw(st.booleans())
        stride, reduce = geometry if own else (draw(STRIDES), draw(REDUCTIONS))
        c = 1 if c_o is not None and number > 0 and draw(st.integers(0, 3)) == 0 else c_o
        layers, c = draw(branch(c_i, c, stride, reduce, gate=op != "concat" and number > 0))
        branches[f"b{number}"] = layers
        channels.append(c)
    return {"type": op, "branches": branches}, sum(channels) if op == "concat" else max(channels)


@st.composite
def graph_specs(draw: st.DrawFn, max_size: int = 10, agree: bool = True, head: bool = True) -> dict:
    """A small graph: convs and one to three merges, with `head` perhaps a global pool or flatten after."""
    c = draw(st.integers(1, 3))
    shape = [c, draw(st.integers(4, max_size)), draw(st.integers(4, max_size))]
    layers: list[dict] = []
    for number in range(draw(st.integers(1, 3))):
        if number == 0 and draw(st.integers(0, 2)) == 0:
            kernel = draw(st.integers(1, 3))
            layers.append({"type": "conv", "shape": [c, c + 1, kernel, kernel], "stride": draw(st.integers(1, 2))})
            c += 1
        entry, c = draw(merge(c, agree))
        layers.append(entry)
    if head:
        layers += draw(st.sampled_from([[], [{"type": "flatten"}], [{"type": "adaptive_avgpool", "output": 1}]]))
    return {"name": "graph", "input": shape, "layers": layers}


def runs(spec: dict) -> bool:
    """Whether torch runs the spec (on the meta device)."""
    return output_shape(spec) is not None


def output_shape(spec: dict) -> tuple[int, ...] | None:
    """The per-sample shape torch gives for the spec (on the meta device); None if torch refuses it."""
    try:
        with torch.device("meta"):
            oracle = Oracle(spec)
            return tuple(oracle(torch.empty(1, *spec["input"]))[-1].shape[1:])
    except (RuntimeError, ValueError, IndexError, TypeError):
        return None


def reached_by_all(spec: dict) -> torch.Tensor:
    """The input pixels that reach some output of the spec's last node, through its linear form: [H, W]."""
    x = torch.rand(1, *spec["input"], dtype=torch.float64).add_(0.5).requires_grad_()
    Oracle(spec, linear=True)(x)[-1].sum().backward()
    return x.grad.abs().amax(dim=1)[0] > 0


@st.composite
def graph_classifiers(draw: st.DrawFn) -> dict:
    """A random graph whose branches agree at some sizes only, perhaps with flatten and a linear layer that fits
    it at its drawn size (so that the linear layer pins the sizes)."""
    spec = draw(graph_specs(max_size=12, agree=draw(st.booleans()), head=False))
    shape = output_shape(spec)
    if shape is not None and draw(st.booleans()):
        spec["layers"] += [{"type": "flatten"}, {"type": "linear", "shape": [prod(shape), 2]}]
    return spec
