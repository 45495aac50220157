"""A spec's layers as a graph: blocks used with their arguments, repeats and `when` unrolled, every `${...}`
evaluated, into a tree of concrete entries that remember where in the file each came from.

    Leaf      one layer of a registered kind                     {type: conv, ...}
    Merge     branches from one input, summed, concatenated along the channels or multiplied
              {type: add | concat | multiply, branches: {label: [layers], ...}}   ([] is the identity)
    Group     a named sequence with its own names: a block used once {type: <block>, ...}, a `sequence`,
              or the repetitions of an entry with `repeat: N` (named 0 .. N-1)

A Merge's branches share the names of the group around it, so a residual block's layers read
`layer1.0.conv1`, as torchvision names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from ..diagnostics import Diagnostic
from ..layers.fields import LayerName, _found
from ..layers.merge import MERGES as MERGE_KINDS
from ..layers.registry import STRUCTURE, suggest
from .expr import ExprError, evaluate, is_expression
from .params import STRUCTURAL
from .source import Path, Source

MERGES = tuple(MERGE_KINDS)  # add, concat, multiply: layers/merge.py says how each brings branches together
ENTRY = frozenset({"type", "name", "repeat", "first", "when"})  # keys of every entry, whatever its kind
INDEX = "index"  # the repetition's number, 0 .. N-1, in the expressions of a repeated entry
MAX_NODES = 100_000  # layers, merges and groups once unrolled; the largest torchvision network has ~1,000
MAX_NESTING = 32  # groups and branches inside each other


@dataclass(frozen=True)
class Use:
    """Where a block was used: the use's place in the file, the instance's path, and the arguments it got."""

    block: str
    where: Path
    path: str
    args: tuple[tuple[str, Any], ...]


@dataclass
class Entry:
    name: str
    path: tuple[str, ...]  # the module path: ("layer1", "0", "conv1")
    where: Path  # the entry's mapping in the file
    uses: tuple[Use, ...]  # the block uses it was made through, outermost first
    index: int  # its number among the entries of its group: default names are <type><index>
    duplicate: int | None = None  # the index of an earlier entry of its group with the same name

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass
class Leaf(Entry):
    data: dict = field(default_factory=dict)  # the layer's keys, expressions evaluated
    keys: dict[str, Path] = field(default_factory=dict)  # keys written elsewhere than under `where` (`first:`)
    layer: Any = None  # the validated Layer

    @property
    def kind(self) -> str:
        return self.layer.kind if self.layer is not None else str(self.data.get("type"))


@dataclass
class Merge(Entry):
    op: Literal["add", "concat", "multiply"] = "add"
    branches: list[tuple[str, list[Entry]]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.op


@dataclass
class Group(Entry):
    kind: Literal["block", "repeat", "sequence"] = "sequence"
    block: str | None = None  # the block a "block" group instantiates
    entries: list[Entry] = field(default_factory=list)


def leaves(entries: list[Entry]) -> list[Leaf]:
    """Every leaf, in the order of the file."""
    found: list[Leaf] = []
    for entry in entries:
        if isinstance(entry, Leaf):
            found.append(entry)
        elif isinstance(entry, Group):
            found += leaves(entry.entries)
        elif isinstance(entry, Merge):
            for _, branch in entry.branches:
                found += leaves(branch)
    return found


def note(uses: tuple[Use, ...], source: Source) -> str:
    """'; in block 'b' used as layer2.0 at line 40 (in=64, stride=2)' for each use, innermost first."""
    parts = []
    for use in reversed(uses):
        line = source.where(use.where)
        at = f" at line {line[0]}" if line else ""
        args = ", ".join(f"{k}={_show(v)}" for k, v in use.args)
        parts.append(f"in block '{use.block}' used as {use.path}{at}{f' ({args})' if args else ''}")
    return "".join(f"; {part}" for part in parts)


def _show(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


_NAME: TypeAdapter = TypeAdapter(LayerName)


def _bad_name(name: Any) -> str | None:
    """What is wrong with a group's name, which is a submodule's name as a layer's is; None if nothing."""
    try:
        _NAME.validate_python(name)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        if problem["type"] == "reserved":
            return f"'name': {problem['msg']}"
        return f"'name': {problem['msg'][0].lower()}{problem['msg'][1:]}, found {_found(name)}"
    return None


class _Failed(Exception):
    """An entry that cannot be expanded; its diagnostic is recorded already."""


@dataclass
class _Scope:
    """The names an expression may read, and how to say which there are."""

    values: dict[str, Any]
    what: str  # "declared: a, b" or "block 'b' declares: ...; the spec declares: ..."
    uses: tuple[Use, ...] = ()

    def child(self, values: Mapping[str, Any]) -> _Scope:
        return _Scope({**self.values, **values}, self.what, self.uses)


@dataclass
class _Names:
    """One group's names: entries are numbered in file order, branches included."""

    path: tuple[str, ...]
    count: int = 0
    used: dict[str, int] = field(default_factory=dict)


class Expander:
    """Unrolls the `layers` of a spec's data (parameters already bound) into entries, recording diagnostics."""

    def __init__(self, source: Source, file: str, params: Mapping[str, Any]) -> None:
        self.source, self.file = source, file
        self.blocks: dict[str, Any] = {}
        self.broken: set[str] = set()  # blocks refused: their uses say nothing more
        self.diagnostics: list[Diagnostic] = []
        self.said: set[tuple[Path, str]] = set()
        self.nodes = 0
        self.top = _Scope(dict(params), f"declared: {', '.join(params) or 'none; declare it under params'}")
        self.spec_params = ", ".join(params) or "none"

    # -- entry points ---------------------------------------------------------------------------------------

    def expand(self, data: dict, kinds: frozenset[str]) -> list[Entry]:
        self.kinds = kinds
        self._blocks(data.get("blocks"))
        layers = data.get("layers")
        if not isinstance(layers, list):
            return []
        try:
            return self._sequence(layers, ("layers",), self.top, _Names(()), 0)
        except _Failed:
            return []

    def _blocks(self, blocks: Any) -> None:
        if blocks is None:
            return
        if not isinstance(blocks, dict):
            self._error(("blocks",), "'blocks': expected a mapping of block names to definitions")
            return
        for name, definition in blocks.items():
            where = ("blocks", name)
            if isinstance(name, str) and name not in self.kinds and name not in STRUCTURE:
                self.broken.add(name)  # until it is found sound: its uses are then no second error
            if not isinstance(name, str) or not name.isidentifier():
                self._error(where, f"block name {name!r}: a letter or '_', then letters, digits or '_'")
            elif name in self.kinds or name in STRUCTURE:
                self._error(where, f"block '{name}' has the name of a layer type; call it something else")
            elif not isinstance(definition, dict):
                self._error(where, f"block '{name}': expected a mapping with `layers` (and `params`)")
            elif unknown := sorted(set(definition) - {"params", "layers", "description"}):
                self._error((*where, unknown[0]), f"block '{name}': unknown key '{unknown[0]}' (keys: params, layers)")
            elif not isinstance(definition.get("layers"), list) or not definition["layers"]:
                self._error((*where, "layers"), f"block '{name}': `layers` must be a list of one or more layers")
            elif not isinstance(definition.get("params", {}), dict):
                self._error((*where, "params"), f"block '{name}': `params` must map names to default values")
            else:
                for param in definition.get("params", {}):
                    if not (isinstance(param, str) and param.isidentifier()) or param in ENTRY:
                        self._error((*where, "params", param), f"block '{name}': {param!r} cannot be a parameter name")
                        break
                else:
                    self.blocks[name] = definition
                    self.broken.discard(name)

    # -- the walk -------------------------------------------------------------------------------------------

    def _sequence(self, items: list, where: Path, scope: _Scope, names: _Names, depth: int) -> list[Entry]:
        if depth > MAX_NESTING:
            self._error(where, f"blocks and branches nested deeper than {MAX_NESTING} levels", scope)
            raise _Failed
        entries: list[Entry] = []
        for i, item in enumerate(items):
            try:
                entry = self._item(item, (*where, i), scope, names, depth)
            except _Failed:
                if self.nodes > MAX_NODES:
                    raise
                continue
            if isinstance(entry, list):  # a merge left with one branch: that branch's layers
                entries += entry
            elif entry is not None:
                entries.append(entry)
        return entries

    def _item(self, item: Any, where: Path, scope: _Scope, names: _Names, depth: int) -> Entry | list[Entry] | None:
        index = names.count
        names.count += 1
        if not isinstance(item, dict):
            return self._leaf(item, where, scope, names, index, None, {})
        kind = item.get("type")
        default = f"{kind}{index}" if isinstance(kind, str) and len(kind) <= 40 else f"layer{index}"
        name = item.get("name", default)
        grouping = "repeat" in item or (isinstance(kind, str) and (kind in STRUCTURE or kind in self.blocks))
        if grouping and "name" in item and (problem := _bad_name(name)):  # a layer's is its validation's
            self._error((*where, "name"), problem, scope)
            raise _Failed
        if not isinstance(name, str):
            return self._leaf(item, where, scope, names, index, None, {})  # the layer's validation says why
        if "when" in item and not self._truth(item["when"], (*where, "when"), scope):
            return None
        if "first" in item and "repeat" not in item:
            self._error((*where, "first"), "'first' changes the first repetition: it needs 'repeat'", scope)
        if "repeat" in item:
            return self._repeat(item, where, scope, names, depth, index, name)
        item = {key: value for key, value in item.items() if key not in ("when", "first")}
        return self._one(item, where, scope, names, depth, index, name, {})

    def _repeat(
        self, item: dict, where: Path, scope: _Scope, names: _Names, depth: int, index: int, name: str
    ) -> Group:
        times = self._value(item["repeat"], (*where, "repeat"), scope)
        if type(times) is not int or times < 1:
            self._error((*where, "repeat"), f"'repeat': expected an integer >= 1, found {times!r}", scope)
            raise _Failed
        if self.nodes + times > MAX_NODES:
            self._too_many(where, scope)
        first = item.get("first", {})
        if not isinstance(first, dict):
            self._error((*where, "first"), "'first': expected a mapping of the keys the first repetition changes")
            first = {}
        if bad := sorted(set(first) & ENTRY):
            self._error((*where, "first", bad[0]), f"'first' cannot change '{bad[0]}'", scope)
            first = {}
        group = Group(name, (*names.path, name), where, scope.uses, index, self._claim(names, name, index), "repeat")
        inner = _Names(group.path)
        plain = {k: v for k, v in item.items() if k not in ("repeat", "first", "when")}
        for number in range(times):
            written = {**plain, **first} if number == 0 else plain
            moved = {key: (*where, "first", key) for key in first} if number == 0 else {}
            inner.count = number
            within = scope.child({INDEX: number})
            if written.get("type") in MERGES:
                entry = self._merged(written, where, within, (*group.path, str(number)), depth, number, moved)
            else:
                entry = self._one(written, where, within, inner, depth + 1, number, str(number), moved)
            group.entries.append(entry)
            if number == 0 and self.nodes + self._size(entry) * (times - 1) > MAX_NODES:
                self._too_many(where, scope)
        self._count(where, scope)
        return group

    def _merged(
        self, item: dict, where: Path, scope: _Scope, path: tuple[str, ...], depth: int, index: int, moved: dict
    ) -> Group:
        """One repetition of a repeated merge: a group of its own holding the merge (`<op>0`, its branches' layers
        numbered from 1), as a block holding only the merge would be, so each repetition has its own names."""
        group = Group(path[-1], path, where, scope.uses, index, None, "sequence")
        names = _Names(path, count=1)
        entry = self._one(item, where, scope, names, depth + 2, 0, f"{item['type']}0", moved)
        group.entries = entry if isinstance(entry, list) else [entry]
        self._count(where, scope)
        return group

    def _one(
        self,
        item: dict,
        where: Path,
        scope: _Scope,
        names: _Names,
        depth: int,
        index: int,
        name: str,
        moved: dict[str, Path],
    ) -> Entry | list[Entry]:
        kind = item.get("type")
        duplicate = self._claim(names, name, index)
        path = (*names.path, name)
        if kind == "sequence":
            self._keys(item, where, {"layers"}, "sequence", scope)
            layers = item.get("layers")
            if not isinstance(layers, list) or not layers:
                self._error((*where, "layers"), "'layers': a sequence needs a list of one or more layers", scope)
                raise _Failed
            group = Group(name, path, where, scope.uses, index, duplicate, "sequence")
            group.entries = self._sequence(layers, (*where, "layers"), scope, _Names(path), depth + 1)
            self._count(where, scope)
            return group
        if kind in MERGES:
            return self._merge(item, where, scope, names, depth, index, name, duplicate)
        if isinstance(kind, str) and kind in self.broken:
            raise _Failed
        if isinstance(kind, str) and kind in self.blocks:
            return self._use(item, where, scope, path, depth, index, duplicate, moved)
        return self._leaf(item, where, scope, names, index, duplicate, moved, name)

    def _merge(
        self,
        item: dict,
        where: Path,
        scope: _Scope,
        names: _Names,
        depth: int,
        index: int,
        name: str,
        duplicate: int | None,
    ) -> Merge | list[Entry]:
        """A merge of its branches; a branch `{when: ..., layers: [...]}` whose condition is false is left out,
        and a merge left with one branch is that branch's layers (a residual connection only where the shape
        stays: `shortcut: {when: '${stride == 1 and in == out}', layers: []}`)."""
        op = item["type"]
        self._keys(item, where, {"branches"}, op, scope)
        branches = item.get("branches")
        if not isinstance(branches, dict) or len(branches) < (1 if op == "concat" else 2):
            least = "one or more" if op == "concat" else "two or more"
            self._error(
                (*where, "branches"),
                f"'branches': {op} takes a mapping of {least} branches, each a list of layers ([] for the input "
                "itself), e.g. {body: [...], shortcut: []}",
                scope,
            )
            raise _Failed
        merge = Merge(name, (*names.path, name), where, scope.uses, index, duplicate, op)
        dropped = False
        for label, branch in branches.items():
            at = (*where, "branches", label)
            if isinstance(branch, dict) and set(branch) <= {"when", "layers"} and "layers" in branch:
                if "when" in branch and not self._truth(branch["when"], (*at, "when"), scope):
                    dropped = True
                    continue
                branch, at = branch["layers"], (*at, "layers")
            if not isinstance(branch, list):
                self._error(
                    at,
                    f"branch '{label}': expected a list of layers ([] for the input itself), or "
                    "{when: '${...}', layers: [...]} for a branch that is there only when the condition holds",
                    scope,
                )
                raise _Failed
            merge.branches.append((str(label), self._sequence(branch, at, scope, names, depth + 1)))
        if dropped and len(merge.branches) == 1:
            return merge.branches[0][1]
        if not merge.branches:
            self._error((*where, "branches"), f"every branch of this {op} has 'when' false: none is left", scope)
            raise _Failed
        self._count(where, scope)
        return merge

    def _use(
        self,
        item: dict,
        where: Path,
        scope: _Scope,
        path: tuple[str, ...],
        depth: int,
        index: int,
        duplicate: int | None,
        moved: dict[str, Path],
    ) -> Group:
        block = item["type"]
        if any(use.block == block for use in scope.uses):
            chain = " -> ".join([*(use.block for use in scope.uses), block])
            self._error((*where, "type"), f"block '{block}' uses itself ({chain})", scope)
            raise _Failed
        definition = self.blocks[block]
        declared = dict(definition.get("params") or {})
        args: dict[str, Any] = {}
        for key, value in item.items():
            if key in ("type", "name"):
                continue
            at = moved.get(key, (*where, key))
            if key not in declared:
                known = ", ".join(declared) or "none"
                close = suggest(str(key), declared)
                self._error(at, f"block '{block}' has no parameter '{key}'{close} (its parameters: {known})", scope)
                raise _Failed
            args[key] = self._value(value, at, scope)
        use = Use(block, where, ".".join(path), tuple(args.items()))
        what = f"block '{block}' declares: {', '.join(declared) or 'none'}; the spec: {self.spec_params}"
        inside = _Scope(dict(self.top.values), what, (*scope.uses, use))
        for key, default in declared.items():  # a default may use the parameters before it
            if key in args:
                inside.values[key] = args[key]
            else:
                inside.values[key] = self._value(default, ("blocks", block, "params", key), inside)
        group = Group(path[-1], path, where, scope.uses, index, duplicate, "block", block)
        layers = definition["layers"]
        group.entries = self._sequence(layers, ("blocks", block, "layers"), inside, _Names(path), depth + 1)
        self._count(where, scope)
        return group

    def _leaf(
        self,
        item: Any,
        where: Path,
        scope: _Scope,
        names: _Names,
        index: int,
        duplicate: int | None,
        moved: dict[str, Path],
        name: str | None = None,
    ) -> Leaf:
        data = item
        if isinstance(item, dict):
            data = {}
            for key, value in item.items():
                at = moved.get(key, (*where, key))
                if key in STRUCTURAL and is_expression(value):
                    self._error(
                        at,
                        f"'{key}' cannot be a parameter ('{value}'): parameters stand for numbers, true/false "
                        "and words such as padding_mode's, not for a layer's type, a name or the description",
                        scope,
                    )
                    raise _Failed
                data[key] = self._value(value, at, scope)
        leaf = Leaf(name or "", (*names.path, name or ""), where, scope.uses, index, duplicate, data, moved)
        self._count(where, scope)
        return leaf

    # -- helpers --------------------------------------------------------------------------------------------

    def _claim(self, names: _Names, name: str, index: int) -> int | None:
        first = names.used.setdefault(name, index)
        return None if first == index else first

    def _keys(self, item: dict, where: Path, allowed: set[str], kind: str, scope: _Scope) -> None:
        for key in item:
            if key not in ENTRY and key not in allowed:
                self._error((*where, key), f"unknown key '{key}' ({kind} takes: {', '.join(sorted(allowed))})", scope)
                raise _Failed

    def _value(self, value: Any, where: Path, scope: _Scope) -> Any:
        if isinstance(value, dict):
            return {k: self._value(v, (*where, k), scope) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, (*where, i), scope) for i, v in enumerate(value)]
        if not is_expression(value):
            return value
        try:
            return evaluate(value, scope.values, lambda name: scope.what)
        except ExprError as error:
            at = "" if error.offset is None or len(value) < 12 else f" (at character {error.offset + 3} of {value!r})"
            self._error(where, f"{error.message}{at}", scope)
            raise _Failed from None

    def _truth(self, value: Any, where: Path, scope: _Scope) -> bool:
        found = self._value(value, where, scope)
        if isinstance(found, bool) or type(found) is int:
            return bool(found)
        self._error(where, f"'when': expected true/false or an integer, found {found!r}", scope)
        raise _Failed

    def _size(self, entry: Entry) -> int:
        if isinstance(entry, Group):
            return 1 + sum(self._size(e) for e in entry.entries)
        if isinstance(entry, Merge):
            return 1 + sum(self._size(e) for _, b in entry.branches for e in b)
        return 1

    def _count(self, where: Path, scope: _Scope) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._too_many(where, scope)

    def _too_many(self, where: Path, scope: _Scope) -> None:
        message = f"the network unrolls to more than {MAX_NODES:,} layers and groups; no network is this large"
        self._error(where, message, scope)
        self.nodes = MAX_NODES + 1
        raise _Failed

    def _error(self, where: Path, message: str, scope: _Scope | None = None) -> None:
        if (where, message) in self.said:  # once for a block used many times
            return
        self.said.add((where, message))
        line, column = self.source.where(where) or (None, None)
        text = message + self.source.note(where) + (note(scope.uses, self.source) if scope else "")
        self.diagnostics.append(Diagnostic(self.file, text, line=line, column=column))
