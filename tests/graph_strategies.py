"""Hypothesis strategies for random spec graphs, as plain dicts: blocks with parameters and `${...}` arithmetic
in their layers' fields, add/concat/multiply with one to three branches ([] the identity), sequences, repeats
with `${index}` and `first:`, and `when:`, nested a few levels, around the layers of tests/strategies.py.

Every expression is drawn together with what it means, as a Python function of the names in scope (`E`); the
case carries both, so tests/graph_oracle.py evaluates expressions without parsing them. Entries are drawn
knowing the shape torch computed for their input (the oracle runs each as it is drawn), so most merges fit:
the other branches are aimed at the first one's shape (an identity, a projection, a gate), now and then at
one torch broadcasts to it, now and then at nothing in particular.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from math import ceil, prod
from typing import Any

import torch
from graph_oracle import MERGES, Exprs, Scope, apply, combine
from hypothesis import strategies as st
from strategies import ACTIVATIONS, layer, mostly, sometimes, usually
from torch_oracle import Stricter

Shape = tuple[int, ...]
MAX_DEPTH = 3  # groups and branches inside each other
LABELS = ("body", "shortcut", "gate", "left", "right", "new", "input", "path")
BLOCK_PARAMS = ("cout", "s", "mid", "width")  # after `cin`, the channels (or features) a block takes
rarely = st.integers(0, 7).map(lambda n: n == 7)  # True one time in eight; shrinks towards False
third = st.integers(0, 2).map(lambda n: n == 2)  # True one time in three; shrinks towards False
fifth = st.integers(0, 4).map(lambda n: n == 4)  # True one time in five; shrinks towards False


@dataclass(frozen=True)
class E:
    """An expression: its text between `${` and `}`, and its value in a scope, computed here in Python."""

    text: str
    fn: Callable[[Scope], Any]
    atom: bool = True  # needs no parentheses as an operand

    @staticmethod
    def name(key: str) -> E:
        return E(key, lambda s: s[key])

    @staticmethod
    def lit(n: int) -> E:
        return E(str(n), lambda s: n)

    def _op(self, op: str, other: E, fn: Callable[[Any, Any], Any]) -> E:
        return E(f"{self._wrap()} {op} {other._wrap()}", lambda s: fn(self.fn(s), other.fn(s)), False)

    def _wrap(self) -> str:
        return self.text if self.atom else f"({self.text})"

    def __add__(self, other: E) -> E:
        return self._op("+", other, operator.add)

    def __sub__(self, other: E) -> E:
        return self._op("-", other, operator.sub)

    def __mul__(self, other: E) -> E:
        return self._op("*", other, operator.mul)

    def __floordiv__(self, other: E) -> E:
        return self._op("//", other, operator.floordiv)

    def compare(self, op: str, other: E) -> E:
        tests = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le}
        return self._op(op, other, tests[op])

    def either(self, other: E) -> E:
        return self._op("or", other, lambda a, b: a or b)

    def both(self, other: E) -> E:
        return self._op("and", other, lambda a, b: a and b)

    def negated(self) -> E:
        return E(f"not {self._wrap()}", lambda s: not self.fn(s), False)

    @staticmethod
    def call(function: str, *args: E) -> E:
        fn = {"min": min, "max": max}[function]
        return E(f"{function}({', '.join(a.text for a in args)})", lambda s: fn(*(a.fn(s) for a in args)))


@dataclass
class Case:
    """A spec graph as a dict, with the meaning of each expression written in it."""

    spec: dict
    exprs: Exprs


@dataclass
class Draft:
    """A spec being drawn: its params, the blocks defined so far and what each expression written means."""

    params: dict
    budget: int  # layers left to draw
    blocks: dict = field(default_factory=dict)
    exprs: dict[str, Callable[[Scope], Any]] = field(default_factory=dict)
    names: itertools.count = field(default_factory=itertools.count)
    letters: itertools.count = field(default_factory=itertools.count)

    def write(self, e: E) -> str:
        text = "${" + e.text + "}"
        self.exprs[text] = e.fn
        return text

    def present(self, item: dict, scope: Scope) -> bool:
        """Whether an entry's `when`, if it has one, holds in `scope`."""
        when = item.get("when", True)
        return bool(self.exprs[when](scope) if isinstance(when, str) else when)

    def after(self, items: list, x: torch.Tensor | None, scope: Scope) -> torch.Tensor | None:
        """What torch gives for `items` on `x`, None where it refuses them."""
        context = {"blocks": self.blocks, "params": self.params}
        return None if x is None else apply(context, self.exprs, items, x, scope)


def _shape(x: torch.Tensor | None) -> Shape | None:
    return None if x is None else tuple(x.shape[1:])


def _ints(scope: Scope) -> dict[str, int]:
    return {k: u for k, u in scope.items() if type(u) is int}


@st.composite
def int_expr(draw: st.DrawFn, scope: Scope, v: int) -> E:
    """An expression over the integers in `scope` whose value there is `v`."""
    ints = _ints(scope)
    if "index" in ints and draw(sometimes):  # the same in the first repetition only: what that does, torch says
        return E.lit(v - ints["index"]) + E.name("index")
    same = [E.name(k) for k, u in ints.items() if u == v and k != "index"]
    if same and draw(st.booleans()):
        return draw(st.sampled_from(same))
    options = [E.lit(v), *same]
    for k, u in ints.items():
        ref = E.name(k)
        if u < 1 or k == "index":
            continue
        if v > u:
            options += [ref + E.lit(v - u), E.call("max", ref, E.lit(v))]
        if v > u and v % u == 0:
            options.append(ref * E.lit(v // u))
        if v >= 1 and u > v:
            options.append(E.call("min", ref, E.lit(v)))
            if u % v == 0:
                options.append(E.call("max", E.lit(1), ref // E.lit(u // v)))  # 1 at least, for any u
        for k2, u2 in ints.items():
            if k2 != k and k2 != "index" and u2 >= 1 and u + u2 == v:
                options.append(ref + E.name(k2))
    return draw(st.sampled_from(options))


@st.composite
def condition(draw: st.DrawFn, scope: Scope) -> E:
    """A `when:` expression over the integers (and true/false) in `scope`."""
    ints = {k: u for k, u in _ints(scope).items()}
    flags = [k for k, u in scope.items() if isinstance(u, bool)]
    if flags and draw(sometimes):
        return E.name(draw(st.sampled_from(flags)))
    if not ints:
        return E("true", lambda s: True) if draw(st.booleans()) else E("false", lambda s: False)
    a = E.name(draw(st.sampled_from(sorted(ints))))
    b = E.name(draw(st.sampled_from(sorted(ints)))) if draw(st.booleans()) else E.lit(draw(st.integers(0, 3)))
    found = a.compare(draw(st.sampled_from(["==", "!=", "<", ">", "<="])), b)
    if draw(sometimes):
        found = found.negated()
    if draw(sometimes):
        other = E.name(draw(st.sampled_from(sorted(ints)))).compare(">", E.lit(draw(st.integers(0, 3))))
        found = found.either(other) if draw(st.booleans()) else found.both(other)
    return found


@st.composite
def written(draw: st.DrawFn, d: Draft, value: Any, scope: Scope) -> Any:
    """`value` as the spec may write it in `scope`: as it is, or as an expression with that value."""
    if isinstance(value, list):
        return [draw(written(d, v, scope)) for v in value]
    if type(value) is int and draw(third):
        return d.write(draw(int_expr(scope, value)))
    same = [k for k, u in scope.items() if type(u) is type(value) and u == value and type(value) is not int]
    if same and draw(st.booleans()):
        return d.write(E.name(draw(st.sampled_from(same))))
    return value


@st.composite
def leaf(draw: st.DrawFn, d: Draft, x: Shape | None, scope: Scope) -> dict:
    """A layer of tests/strategies.py, a conv's output channels now and then a parameter's value, with some of
    its fields written as expressions."""
    d.budget -= 1
    drawn = draw(layer(x))
    ints = sorted({u for u in _ints(scope).values() if 1 <= u <= 8})
    if drawn["type"] == "conv" and drawn.get("groups", 1) == 1 and ints and draw(st.booleans()):
        drawn["shape"][1] = draw(st.sampled_from(ints))
    return {k: v if k == "type" else draw(written(d, v, scope)) for k, v in drawn.items()}


def _toward(x: Shape, y: Shape) -> list[dict] | None:
    """Layers that take `x` to `y`: a strided conv, an adaptive pool and a 1x1 conv, a linear."""
    if x == y:
        return []
    if len(x) == 3 and len(y) == 3:
        for stride in (1, 2, 3):
            if ceil(x[1] / stride) == y[1] and ceil(x[2] / stride) == y[2]:
                return [{"type": "conv", "shape": [x[0], y[0], 1, 1], "stride": stride, "bias": False}]
        pool = {"type": "adaptive_avgpool", "output": [y[1], y[2]]}
        return [pool] if x[0] == y[0] else [pool, {"type": "conv", "shape": [x[0], y[0], 1, 1]}]
    if len(x) == 3 and len(y) == 1:
        return [{"type": "flatten"}, {"type": "linear", "shape": [prod(x), y[0]]}]
    if len(x) == 1 and len(y) == 1:
        return [{"type": "linear", "shape": [x[0], y[0]]}]
    return None


@st.composite
def target(draw: st.DrawFn, op: str, y: Shape) -> Shape:
    """A shape for another branch to give, when the first gives `y`: usually one that merges."""
    if op == "concat":
        return (draw(st.integers(1, 4)), *y[1:])
    if len(y) == 3 and draw(st.booleans() if op == "multiply" else sometimes):
        c, h, w = y
        return draw(st.sampled_from([(c, 1, 1), (1, h, w), (1, 1, 1), (c, h, 1)]))
    if len(y) == 3 and draw(rarely):  # features, which torch broadcasts along the map's last axis (cnnforge: no)
        return draw(st.sampled_from([(y[2],), (1,)]))
    return y


Drawn = tuple[Any, "torch.Tensor | None"]  # what was drawn, and torch's output for it (None: refused)


@st.composite
def branch(
    draw: st.DrawFn, d: Draft, op: str, x: torch.Tensor, y: torch.Tensor | None, scope: Scope, depth: int
) -> Drawn:
    """A branch other than the first: the identity, layers aimed at a shape that merges with `y`, or any."""
    how = draw(st.sampled_from(["identity", "aimed", "aimed", "aimed", "any"]))
    if how == "identity":
        return [], x
    if how == "aimed" and y is not None:
        layers = _toward(_shape(x), draw(target(op, _shape(y))))  # type: ignore[arg-type]
        if layers is not None:
            d.budget -= len(layers)
            if op == "multiply" and draw(mostly):
                layers.append({"type": draw(st.sampled_from(["sigmoid", *ACTIVATIONS]))})
            items = [{k: draw(written(d, v, scope)) for k, v in item.items()} for item in layers]
            return items, d.after(items, x, scope)
    return draw(entries(d, x, scope, depth + 1, 0, 2))


@st.composite
def merge(draw: st.DrawFn, d: Draft, x: torch.Tensor, scope: Scope, depth: int) -> Drawn:
    op = draw(st.sampled_from(MERGES))
    labels = draw(st.permutations(LABELS))[: draw(st.integers(1 if op == "concat" else 2, 3))]
    first, y = draw(entries(d, x, scope, depth + 1, 0, 2))
    branches, ends = {labels[0]: first}, [y]
    for label in labels[1:]:
        branches[label], end = draw(branch(d, op, x, y, scope, depth))
        ends.append(end)
    try:
        out = None if any(end is None for end in ends) else combine(op, ends)
    except (Stricter, RuntimeError):
        out = None
    return {"type": op, "branches": branches}, out


@st.composite
def sequence(draw: st.DrawFn, d: Draft, x: torch.Tensor, scope: Scope, depth: int) -> Drawn:
    layers, y = draw(entries(d, x, scope, depth + 1, 1, 3))
    return {"type": "sequence", "layers": layers}, y


@st.composite
def block(draw: st.DrawFn, d: Draft, x: torch.Tensor, scope: Scope, depth: int) -> Drawn:
    """A block used: one defined before, or a new one, its layers drawn for this use's arguments."""
    channels = x.shape[1]
    if d.blocks and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(d.blocks)))
        args: dict[str, Any] = {}
        for key in d.blocks[name].get("params", {}):
            if key == "cin" and draw(usually):
                args[key] = channels
            elif draw(sometimes):
                args[key] = draw(st.integers(1, 2 if key == "s" else 6))
        item = {"type": name, **{k: draw(written(d, v, scope)) for k, v in args.items()}}
        return item, d.after([item], x, scope)
    name = f"block{'abcdefghijklmnopqrstuvwxyz'[next(d.letters) % 26]}"
    while name in d.blocks:  # more than 26 blocks: one name per block all the same
        name += "x"
    declared: dict[str, Any] = {}
    args = {}
    inside = dict(d.params)  # the scope of the block's layers, for this use
    for key in ["cin", *draw(st.lists(st.sampled_from(BLOCK_PARAMS), unique=True, max_size=2))]:
        if key != "cin" and draw(sometimes):  # a default from the parameters before it
            earlier = E.name(draw(st.sampled_from(sorted(declared))))
            default = draw(st.sampled_from([earlier * E.lit(2), earlier + E.lit(1), E.call("max", earlier, E.lit(2))]))
            declared[key] = d.write(default)
        else:
            declared[key] = draw(st.integers(1, 2 if key == "s" else 6))
        if key == "cin" and draw(usually):
            args[key] = channels
        elif draw(sometimes):
            args[key] = draw(st.integers(1, 2 if key == "s" else 6))
        default = declared[key]
        inside[key] = args[key] if key in args else (d.exprs[default](inside) if isinstance(default, str) else default)
    layers, y = draw(entries(d, x, inside, depth + 1, 1, 3))
    d.blocks[name] = {"params": declared, "layers": layers}
    return {"type": name, **{k: draw(written(d, v, scope)) for k, v in args.items()}}, y


def _input_key(d: Draft, item: dict) -> tuple[str, int | None] | None:
    """The key (and list position) holding the channels an entry takes, when it has one."""
    kind = item["type"]
    if kind in ("conv", "linear"):
        return "shape", 0
    if kind == "batchnorm" and "channels" in item:
        return "channels", None
    if kind in d.blocks and "cin" in item:
        return "cin", None
    return None


@st.composite
def repeated(
    draw: st.DrawFn, d: Draft, item: dict, x: torch.Tensor | None, y: torch.Tensor | None, scope: Scope
) -> dict:
    """`item` repeated 2 or 3 times; where its output's channels differ from its input's, the repetitions after
    the first take the output's channels, through `first:` or an expression of `index`."""
    times = draw(st.integers(2, 3))
    out = {**item, "repeat": times}
    if draw(sometimes):
        out["repeat"] = d.write(draw(int_expr({k: u for k, u in scope.items() if k != "index"}, times)))
    key = _input_key(d, item)
    if x is None or y is None or x.dim() != y.dim() or key is None or x.shape[1] == y.shape[1]:
        keys = [k for k in item if k not in ("type", "name", "branches", "layers")]
        if keys and draw(st.booleans()):  # the first repetition as drawn, the others now and then changed
            key = draw(st.sampled_from(keys))
            out["first"] = {key: item[key]}
            if type(item[key]) is int and draw(st.booleans()):
                out[key] = draw(st.integers(1, 2))
        return out
    c0, c1 = x.shape[1], y.shape[1]
    name, position = key
    if draw(st.booleans()):
        out["first"] = {name: item[name]}
        new: Any = c1
    elif c1 > c0 and draw(st.booleans()):  # grows by as much each time, as a dense block's layers do
        new = d.write(E.lit(c0) + E.name("index") * E.lit(c1 - c0))
    elif c1 > c0:
        new = d.write(E.lit(c0) + E.call("min", E.name("index"), E.lit(1)) * E.lit(c1 - c0))
    else:
        new = d.write(E.lit(c1) + E.call("max", E.lit(0), E.lit(1) - E.name("index")) * E.lit(c0 - c1))
    if position is None:
        out[name] = new
    else:
        out[name] = [new if i == position else v for i, v in enumerate(item[name])]
    return out


@st.composite
def entry(draw: st.DrawFn, d: Draft, x: torch.Tensor | None, scope: Scope, depth: int) -> Drawn:
    """One entry for an input `x` (None: unknown)."""
    shape = _shape(x)
    kinds = ["layer"] * 3
    if depth < MAX_DEPTH and shape is not None and d.budget > 2:
        kinds += ["merge"] * 3 + ["sequence", "block", "block"] if len(shape) == 3 else ["merge", "sequence", "block"]
    kind = draw(st.sampled_from(kinds))
    repeat = draw(rarely if depth else sometimes)
    own = {**scope, "index": 0} if repeat else scope  # the scope of the entry's own keys
    if kind == "merge":
        item, y = draw(merge(d, x, own, depth))
    elif kind == "sequence":
        item, y = draw(sequence(d, x, own, depth))
    elif kind == "block":
        item, y = draw(block(d, x, own, depth))
    else:
        item = draw(leaf(d, shape, own))
        y = d.after([item], x, own)
        if y is None and x is not None and draw(mostly):  # drawn again: more graphs run to their end
            item = draw(leaf(d, shape, own))
            y = d.after([item], x, own)
    if repeat:
        item = draw(repeated(d, item, x, y, scope))
        y = d.after([item], x, scope)
    if draw(fifth):
        item["name"] = f"n{next(d.names)}"  # never a default name such as conv3, so never a duplicate
    if draw(rarely):
        e = draw(condition(scope))
        item = {**item, "when": d.write(e) if draw(mostly) else e.fn(scope)}
        if not e.fn(scope):
            return item, x
    return item, y


@st.composite
def entries(draw: st.DrawFn, d: Draft, x: torch.Tensor | None, scope: Scope, depth: int, low: int, high: int) -> Drawn:
    """`low` to `high` entries (fewer once the layers budgeted are drawn), and torch's output after them."""
    items = []
    for _ in range(draw(st.integers(low, high))):
        if d.budget <= 0 and len(items) >= low:
            break
        item, x = draw(entry(d, x, scope, depth))
        items.append(item)
    return items, x


@st.composite
def graphs(draw: st.DrawFn, max_entries: int = 4, max_channels: int = 6, max_size: int = 12, budget: int = 14) -> Case:
    """A spec graph on a small random input, of about `budget` layers before unrolling."""
    params: dict[str, Any] = {}
    for key, values in (("width", st.integers(1, 6)), ("k", st.integers(1, 3)), ("flag", st.booleans())):
        if draw(st.booleans()):
            params[key] = draw(values)
    if draw(sometimes):
        params["pad"] = "same"
    d = Draft(params, budget)
    shape = [draw(st.integers(1, max_channels)), draw(st.integers(1, max_size)), draw(st.integers(1, max_size))]
    layers, _ = draw(entries(d, torch.empty(2, *shape, device="meta"), dict(params), 0, 1, max_entries))
    if not any(d.present(item, params) for item in layers):
        layers.append({"type": "relu"})  # one entry at least that is there
    spec: dict[str, Any] = {"name": "graph"}
    if params:
        spec["params"] = params
    spec["input"] = shape
    if d.blocks:
        spec["blocks"] = d.blocks
    spec["layers"] = layers
    return Case(spec, d.exprs)
