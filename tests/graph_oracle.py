"""Torch as the oracle for spec graphs: a spec dict with blocks, branches, sequences, repeats and `when` is
interpreted here, on its own terms, into plain torch modules run on a batch, never through cnnforge's expander,
compiler or builder.

The oracle never parses cnnforge's `${...}` syntax: each expression string in the spec was written by the
strategy that drew it (tests/graph_strategies.py), which also recorded what the expression means as a Python
function of the names in scope. The oracle keeps its own scopes (the spec's params; a block's params, its
defaults read in order; `index` in a repeated entry's own keys) and calls that function.

What the oracle takes from the format, written down once here:
  * an entry's default name is <type><index>, its index counting the entries of its group in file order,
    branches included and entries dropped by `when` too;
  * a group (a block used, a `sequence`, a repeated entry, each repetition of a repeated block or sequence)
    has its own names; a merge's branches share the names of the group around it;
  * a repeated entry is a group named by the entry, its repetitions named 0 .. N-1, `first:` applying to
    repetition 0; a repeated merge is, each time, a group of its own holding the merge (named <op>0, its
    branch layers counted from 1), as a block holding only that merge would be;
  * the nodes are the layers and the merges, in order of computation: each branch in file order, then the
    merge.

Where torch runs what cnnforge refuses by design, the oracle says so with `Stricter` and the reason: a linear
layer on a feature map (torch_oracle.py), features added to or multiplied with a feature map (`combine`). An add
or multiply of a single branch, which torch would pass through, cnnforge reads as a mistake before any shape is
known; the strategies never draw one, and tests/test_graph_differential.py shows its message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch_oracle import MODULES, Shape, Stricter, macs, params

Scope = dict[str, Any]
Exprs = Mapping[str, Callable[[Scope], Any]]  # "${...}" text -> its value in a scope

ENTRY = ("type", "name", "repeat", "first", "when")  # keys of every entry, whatever its kind
MERGES = ("add", "concat", "multiply")


@dataclass
class Node:
    """One node: a layer with its module, or a merge (module None); `inputs` index the nodes it reads (-1: the
    network's input)."""

    path: str
    kind: str
    module: nn.Module | None
    inputs: tuple[int, ...]
    shape: Shape  # one sample's output
    params: int = 0
    macs: int = 0


@dataclass
class GroupSpan:
    """A named group and the nodes it holds, first to last (none when last < first)."""

    path: str
    kind: str  # "block", "repeat" or "sequence"
    first: int
    last: int


@dataclass
class GraphRun:
    """What torch did with a spec graph, up to the first node it (or cnnforge's stricter rule) refuses."""

    nodes: list[Node] = field(default_factory=list)
    groups: list[GroupSpan] = field(default_factory=list)
    failed: str | None = None  # the path of the node refused
    error: str = ""
    stricter: bool = False
    input: torch.Tensor | None = None
    output: torch.Tensor | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def modules(self) -> list[nn.Module]:
        """The layers' modules, in the order of the spec."""
        return [node.module for node in self.nodes if node.module is not None]


class _Refused(Exception):
    def __init__(self, path: str, error: str, stricter: bool) -> None:
        super().__init__(error)
        self.path, self.error, self.stricter = path, error, stricter


@dataclass
class _Names:
    """A group's names: its path, and how many entries it has numbered so far."""

    path: tuple[str, ...]
    count: int = 0


class Interpreter:
    """Runs a spec dict's entries on a tensor, one node at a time, recording each node."""

    def __init__(self, spec: Mapping, exprs: Exprs, perturb: bool = False) -> None:
        self.blocks: dict = spec.get("blocks") or {}
        self.exprs = exprs
        self.top: Scope = dict(spec.get("params") or {})
        self.perturb = perturb  # random running statistics, so that a wrong buffer shows in the outputs
        self.run = GraphRun()

    def value(self, value: Any, scope: Scope) -> Any:
        """`value` with every expression the strategy wrote replaced by what it means in `scope`."""
        if isinstance(value, dict):
            return {k: self.value(v, scope) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, scope) for v in value]
        if isinstance(value, str) and value.startswith("${"):
            return self.exprs[value](scope)
        return value

    def sequence(self, items: list, x: torch.Tensor, at: int, scope: Scope, names: _Names) -> tuple[torch.Tensor, int]:
        """The items applied in turn to `x`, the output of node `at`; the last output and its node."""
        for item in items:
            x, at = self.item(item, x, at, scope, names)
        return x, at

    def item(self, item: dict, x: torch.Tensor, at: int, scope: Scope, names: _Names) -> tuple[torch.Tensor, int]:
        index = names.count
        names.count += 1
        name = item.get("name", f"{item['type']}{index}")
        if "when" in item and not self.value(item["when"], scope):
            return x, at
        path = (*names.path, name)
        plain = {k: v for k, v in item.items() if k not in ("repeat", "first", "when")}
        if "repeat" not in item:
            return self.one(plain, x, at, scope, names, path)
        group = self.open(path, "repeat")
        for number in range(self.value(item["repeat"], scope)):
            written = {**plain, **item.get("first", {})} if number == 0 else plain
            within = {**scope, "index": number}
            repetition = (*path, str(number))
            if written["type"] in MERGES:  # a group of its own, holding the merge
                inner = self.open(repetition, "sequence")
                merge = (*repetition, f"{written['type']}0")
                x, at = self.merge(written, x, at, within, _Names(repetition, 1), merge)
                self.close(inner)
            else:
                x, at = self.one(written, x, at, within, _Names(path), repetition)
        self.close(group)
        return x, at

    def one(
        self, item: dict, x: torch.Tensor, at: int, scope: Scope, names: _Names, path: tuple[str, ...]
    ) -> tuple[torch.Tensor, int]:
        kind = item["type"]
        if kind == "sequence":
            group = self.open(path, "sequence")
            x, at = self.sequence(item["layers"], x, at, scope, _Names(path))
            self.close(group)
            return x, at
        if kind in MERGES:
            return self.merge(item, x, at, scope, names, path)
        if kind in self.blocks:
            return self.use(item, x, at, scope, path)
        return self.leaf(item, x, at, scope, path)

    def use(
        self, item: dict, x: torch.Tensor, at: int, scope: Scope, path: tuple[str, ...]
    ) -> tuple[torch.Tensor, int]:
        """A block used: its arguments read in the caller's scope; its layers see the spec's params and its own."""
        block = self.blocks[item["type"]]
        args = {k: self.value(v, scope) for k, v in item.items() if k not in ("type", "name")}
        inside = dict(self.top)
        for key, default in (block.get("params") or {}).items():
            inside[key] = args[key] if key in args else self.value(default, inside)
        group = self.open(path, "block")
        x, at = self.sequence(block["layers"], x, at, inside, _Names(path))
        self.close(group)
        return x, at

    def merge(
        self, item: dict, x: torch.Tensor, at: int, scope: Scope, names: _Names, path: tuple[str, ...]
    ) -> tuple[torch.Tensor, int]:
        ends = [self.sequence(branch, x, at, scope, names) for branch in item["branches"].values()]
        op, dotted = item["type"], ".".join(path)
        try:
            y = combine(op, [y for y, _ in ends])
        except Stricter as error:
            raise _Refused(dotted, str(error), True) from None
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            raise _Refused(dotted, f"{type(error).__name__}: {error}", False) from None
        return y, self.add(Node(dotted, op, None, tuple(end for _, end in ends), tuple(y.shape[1:])))

    def leaf(
        self, item: dict, x: torch.Tensor, at: int, scope: Scope, path: tuple[str, ...]
    ) -> tuple[torch.Tensor, int]:
        layer = self.value({k: v for k, v in item.items() if k not in ENTRY or k == "type"}, scope)
        dotted = ".".join(path)
        try:
            with torch.device(x.device):
                module = MODULES[layer["type"]](layer, x).eval()
            if self.perturb:
                _perturb(module)
            with torch.no_grad():
                y = module(x)
        except Stricter as error:
            raise _Refused(dotted, str(error), True) from None
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            raise _Refused(dotted, f"{type(error).__name__}: {error}", False) from None
        shape = tuple(y.shape[1:])
        return y, self.add(Node(dotted, layer["type"], module, (at,), shape, params(module), macs(module, shape)))

    def add(self, node: Node) -> int:
        self.run.nodes.append(node)
        return len(self.run.nodes) - 1

    def open(self, path: tuple[str, ...], kind: str) -> int:
        self.run.groups.append(GroupSpan(".".join(path), kind, len(self.run.nodes), -1))
        return len(self.run.groups) - 1

    def close(self, group: int) -> None:
        self.run.groups[group].last = len(self.run.nodes) - 1


def combine(op: str, outputs: list[torch.Tensor]) -> torch.Tensor:
    """The branches' outputs summed, joined along dim 1 or multiplied, in order; raises what torch raises."""
    if op == "concat":
        return torch.cat(outputs, 1)
    y = outputs[0]
    for other in outputs[1:]:
        y = y + other if op == "add" else y * other
    if len({t.dim() for t in outputs}) > 1:
        raise Stricter(
            f"cnnforge does not {op} features and feature maps: torch would broadcast the features "
            "along a map's last axis, and a map's rows against the samples"
        )
    return y


def _perturb(module: nn.Module) -> None:
    """Running statistics away from 0 and 1, where a batchnorm in eval mode would hide them."""
    for name, buffer in module.named_buffers():
        if name in ("running_mean", "running_var"):
            buffer.uniform_(0.5, 1.5)


def interpret(spec: Mapping, exprs: Exprs, device: str = "meta", batch: int = 2, seed: int = 0) -> GraphRun:
    """Build and run the spec graph's layers on a random batch on `device`, node by node."""
    torch.manual_seed(seed)
    interpreter = Interpreter(spec, exprs, perturb=device != "meta")
    x = torch.rand(batch, *spec["input"], device=device)
    run = interpreter.run
    run.input = x
    try:
        y, _ = interpreter.sequence(spec["layers"], x, -1, interpreter.top, _Names(()))
    except _Refused as refused:
        run.failed, run.error, run.stricter = refused.path, refused.error, refused.stricter
        return run
    run.output = y
    return run


def apply(spec: Mapping, exprs: Exprs, items: list, x: torch.Tensor, scope: Scope) -> torch.Tensor | None:
    """The output of `items` on `x` in `scope`, or None where torch refuses them (for drawing what comes next)."""
    interpreter = Interpreter(spec, exprs)
    try:
        return interpreter.sequence(items, x, -1, scope, _Names(("probe",)))[0]
    except _Refused:
        return None
