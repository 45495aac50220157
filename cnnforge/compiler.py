"""The static compiler: walks a spec's layers from its input shape, computing each layer's output
shape, parameters and MACs, and reporting every problem with its place in the file. Never imports torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .diagnostics import Diagnostic, SpecError, has_errors
from .layers import Checks, Layer, Shape, show
from .layers.axis import SAME
from .layers.base import plural
from .layers.merge import MERGES
from .layers.window import UNREAD, unread_message
from .spec.graph import Entry, Group, Leaf, Merge, note
from .spec.model import SpecBase
from .spec.params import Value
from .spec.read import Loaded, read
from .spec.source import Source

MacConvention = Literal["cnnforge", "torchinfo"]


@dataclass(frozen=True)
class CompiledLayer:
    """One node of the network with its shapes and counts: a layer, or the merge of branches. Shapes are None
    past a node whose output is unknown. `inputs` are the nodes it reads (-1: the network's input)."""

    index: int
    name: str
    layer: Layer
    input: Shape | None
    output: Shape | None
    params: int = 0
    macs: int = 0
    torchinfo_macs: int = 0
    path: str = ""  # the module path, e.g. "layer1.0.conv1"; the name, at the top level
    inputs: tuple[int, ...] = ()
    shapes: tuple[Shape | None, ...] = ()  # the shape of each input
    parent: str = ""  # the path of the group it is in; "" at the top level

    @property
    def type(self) -> str:
        return self.layer.kind

    @property
    def depth(self) -> int:
        return self.path.count(".")


@dataclass(frozen=True)
class CompiledGroup:
    """A named group of nodes: a block used once, a `sequence`, or the repetitions of a repeated entry; its
    nodes are `first` to `last` of the compiled list (none when last < first)."""

    path: str
    name: str
    kind: str  # "block", "repeat" or "sequence"
    block: str | None
    parent: str
    first: int
    last: int
    repetitions: int | None = None

    @property
    def depth(self) -> int:
        return self.path.count(".")


@dataclass
class Compiled:
    """A compiled spec: its nodes in order of computation, its groups, and everything found wrong."""

    file: str
    spec: SpecBase | None
    layers: list[CompiledLayer] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    groups: list[CompiledGroup] = field(default_factory=list)
    standalone: tuple[str, dict] | None = None
    """(text, bindings) that give this spec again without its file (read_text): what checkpoints store."""

    @property
    def ok(self) -> bool:
        return self.spec is not None and not has_errors(self.diagnostics)

    @property
    def output(self) -> Shape | None:
        return self.layers[-1].output if self.layers else None

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def total_macs(self, convention: MacConvention = "cnnforge") -> int:
        return sum(layer.torchinfo_macs if convention == "torchinfo" else layer.macs for layer in self.layers)

    def node(self, path: str) -> CompiledLayer | None:
        """The node at a module path such as "layer1.0.conv1"."""
        return next((layer for layer in self.layers if layer.path == path), None)

    @property
    def is_graph(self) -> bool:
        """Whether the spec has branches or groups, rather than one plain sequence of layers."""
        return bool(self.groups) or any(layer.parent or len(layer.inputs) > 1 for layer in self.layers)

    def raise_for_errors(self) -> Compiled:
        if not self.ok:
            raise SpecError(self.diagnostics)
        return self


def compile_spec(spec: SpecBase, file: str = "<spec>", source: Source | None = None, *, guess: bool = True) -> Compiled:
    """Compile a validated spec; `source` supplies line and column numbers for diagnostics. With `guess`, an
    input written channels last is reported as such, and the layers are checked with the channels first."""
    compiled = Compiled(file, spec)
    walk = _Walk(compiled, source or Source(None))
    x: Shape = tuple(spec.input)
    if guess and (transposed := _channels_last(spec)):
        x, (leaf, channels) = transposed
        line, column = walk.source.where(("input",)) or (None, None)
        message = (
            f"input is [C, H, W]: did you mean {show(x)}? Layer {leaf.index} '{leaf.dotted}' takes "
            f"{plural(channels, 'channel')}, the last number of {show(spec.input)}; the layers are checked as if "
            f"the input were {show(x)}"
        )
        compiled.diagnostics.append(Diagnostic(file, message, line=line, column=column))
    walk.sequence(spec.layers, -1, x, "")
    walk.unread_warnings()
    walk.count_repeats()
    return compiled


def _channels_last(spec: SpecBase) -> tuple[Shape, tuple[Leaf, int]] | None:
    """[C, H, W] for an input written [H, W, C], and the first layer that takes C channels (and C):
    when the last number is the smallest, as an image's channels are, that layer takes that many channels, and
    the layers checked with [C, H, W] have fewer errors, none of them at that layer."""
    c, h, w = spec.input
    guess = (w, c, h)
    found = _first_taking_channels(spec.layers, guess)
    if found is None or not w < min(c, h) or found.layer.first_axis() != w:
        return None
    written, guessed = (compile_spec(s, guess=False) for s in (spec, spec.model_copy(update={"input": guess})))
    if any(d.layer_path == found.dotted for d in guessed.diagnostics if d.severity == "error"):
        return None
    if _errors(guessed) >= _errors(written):
        return None
    return guess, (found, w)


def _first_taking_channels(entries: list[Entry], x: Shape) -> Leaf | None:
    """The first layer that takes a number of channels, if the layers before it keep the channels of `x` and
    no branches come before it."""
    for entry in _leading(entries):
        if entry is None:
            return None
        if entry.layer.first_axis() is not None:
            return entry
        y = entry.layer.output_shape(x, Checks())
        if y is None or len(y) != 3 or y[0] != x[0]:
            return None
        x = y
    return None


def _leading(entries: list[Entry]) -> Iterator[Leaf | None]:
    """The layers from the input on, through groups, until branches (None there)."""
    for entry in entries:
        if isinstance(entry, Leaf):
            yield entry
        elif isinstance(entry, Group):
            yield from _leading(entry.entries)
        else:
            yield None


def _errors(compiled: Compiled) -> int:
    return sum(d.severity == "error" for d in compiled.diagnostics)


class _Walk:
    """Walks the entries from an input shape, one node at a time, recording diagnostics against their place in
    the file (inside a block: the definition's line, and the use that made it)."""

    def __init__(self, compiled: Compiled, source: Source) -> None:
        self.compiled = compiled
        self.source = source
        self.said: dict[tuple, list[int]] = {}  # (place, severity, message): [its diagnostic, other uses]
        self.held: list[tuple[int, int, Entry, str, str | tuple | None]] = []  # unread-rows warnings: (place
        # among the diagnostics, node, entry, message, key)

    def sequence(self, entries: list[Entry], x: int, shape: Shape | None, parent: str) -> tuple[int, Shape | None]:
        """Each entry applied in turn to the output of node `x` (-1: the input), of shape `shape`; the last
        node's number and shape."""
        for entry in entries:
            x, shape = self.entry(entry, x, shape, parent)
        return x, shape

    def entry(self, entry: Entry, x: int, shape: Shape | None, parent: str) -> tuple[int, Shape | None]:
        if entry.duplicate is not None:
            self.report(entry, "error", f"name '{entry.name}' is already used by layer {entry.duplicate}", "name")
        if isinstance(entry, Group):
            first = len(self.compiled.layers)
            position = len(self.compiled.groups)
            self.compiled.groups.append(None)  # type: ignore[arg-type]  # its place, before the groups inside
            x, shape = self.sequence(entry.entries, x, shape, entry.dotted)
            repetitions = len(entry.entries) if entry.kind == "repeat" else None
            self.compiled.groups[position] = CompiledGroup(
                entry.dotted,
                entry.name,
                entry.kind,
                entry.block,
                parent,
                first,
                len(self.compiled.layers) - 1,
                repetitions,
            )
            return x, shape
        if isinstance(entry, Merge):
            ends = [(label, *self.sequence(branch, x, shape, parent)) for label, branch in entry.branches]
            layer = MERGES[entry.op]()
            shapes = [(label, s) for label, _, s in ends]
            y = None
            if all(s is not None for _, s in shapes):
                checks = Checks()
                y = layer.merge(shapes, checks)  # type: ignore[arg-type]
                self.found(entry, checks)
            inputs = tuple(end for _, end, _ in ends)
            return self.add(entry, layer, shapes[0][1], y, (0, 0, 0), inputs, tuple(s for _, s in shapes), parent)
        assert isinstance(entry, Leaf)
        layer = entry.layer
        if shape is None:  # an earlier error left the shape unknown
            return self.add(entry, layer, None, None, (0, 0, 0), (x,), (None,), parent)
        checks = Checks()
        y = layer.output_shape(shape, checks)
        self.found(entry, checks)
        counts = (layer.params(shape), layer.macs(shape, y), layer.torchinfo_macs(shape, y)) if y else (0, 0, 0)
        return self.add(entry, layer, shape, y, counts, (x,), (shape,), parent)

    def add(
        self,
        entry: Entry,
        layer: Layer,
        x: Shape | None,
        y: Shape | None,
        counts: tuple[int, int, int],
        inputs: tuple[int, ...],
        shapes: tuple[Shape | None, ...],
        parent: str,
    ) -> tuple[int, Shape | None]:
        index = len(self.compiled.layers)
        node = CompiledLayer(index, entry.name, layer, x, y, *counts, entry.dotted, inputs, shapes, parent)
        self.compiled.layers.append(node)
        return index, y

    def found(self, entry: Entry, checks: Checks) -> None:
        for severity, message, key in checks.found:
            if message.endswith(UNREAD):  # said once the graph is known: another branch may read those rows
                self.held.append((len(self.compiled.diagnostics), len(self.compiled.layers), entry, message, key))
            else:
                self.report(entry, severity, message, key)

    def count_repeats(self) -> None:
        """Add to a problem said once for a block's line how many other uses met it."""
        diagnostics = self.compiled.diagnostics
        for index, others in self.said.values():
            if others:
                d = diagnostics[index]
                more = f" (and {others} more use{'s' if others > 1 else ''} of the block)"
                diagnostics[index] = dataclasses.replace(d, message=d.message + more)

    def unread_warnings(self) -> None:
        """Say that a layer leaves rows or columns unread unless another branch from the same tensor reads them
        (a ResNet's 1x1 shortcut with stride 2 skips rows its body's 3x3 conv reads): once for each tensor, at
        the first layer that leaves them, with the rows and columns that no branch reads."""
        nodes = self.compiled.layers
        consumers: dict[int, list[int]] = {}
        for node in nodes:
            for source in node.inputs:
                consumers.setdefault(source, []).append(node.index)

        def pointwise(node: CompiledLayer) -> bool:
            return (
                len(node.inputs) == 1
                and node.input is not None
                and len(node.input) == 3
                and (node.layer.axes(node.input) == (SAME, SAME))
            )

        def needs(index: int) -> tuple[int, int] | None:
            """The last row and column of its input that node `index`, or what follows it, reads; None for
            all of them."""
            node = nodes[index]
            if node.input is None or len(node.input) != 3 or len(node.inputs) != 1 or node.output is None:
                return None
            axes = node.layer.axes(node.input)
            if axes is None:
                return None
            if axes == (SAME, SAME):
                return read_by(consumers.get(index, []))
            _, h, w = node.input
            unread = [getattr(axis, "unread", None) for axis in axes]
            if unread[0] is None or unread[1] is None:
                return None
            return h - 1 - unread[0](h, node.output[1]), w - 1 - unread[1](w, node.output[2])

        def read_by(indices: list[int]) -> tuple[int, int] | None:
            found = [needs(index) for index in indices]
            if not found or any(f is None for f in found):
                return None
            return max(f[0] for f in found), max(f[1] for f in found)  # type: ignore[index]

        first: dict[int, tuple[int, int, Entry, str, str | tuple | None]] = {}  # per tensor, its first held
        for held in self.held:
            tensor = nodes[held[1]].inputs[0]
            while tensor >= 0 and len(consumers[tensor]) == 1 and pointwise(nodes[tensor]):
                tensor = nodes[tensor].inputs[0]
            first.setdefault(tensor, held)
        diagnostics = self.compiled.diagnostics
        for tensor, (place, index, entry, _, key) in sorted(first.items(), key=lambda item: -item[1][0]):
            shape = nodes[tensor].output if tensor >= 0 else self.compiled.spec.input  # type: ignore[union-attr]
            read = read_by(consumers.get(tensor, []))
            node = nodes[index]
            if read is not None and shape is not None and read != (shape[1] - 1, shape[2] - 1):
                assert node.input is not None
                windows = node.layer.axes(node.input)
                message = unread_message(windows, node.input, shape[1] - 1 - read[0], shape[2] - 1 - read[1])  # type: ignore[arg-type]
                self.compiled.diagnostics = diagnostics[:place]
                self.report(entry, "warning", message, key)
                diagnostics = self.compiled.diagnostics + diagnostics[place:]
        self.compiled.diagnostics = diagnostics

    def report(self, entry: Entry, severity: str, message: str, key: str | tuple | None) -> None:
        keys = () if key is None else (key,) if isinstance(key, str) else tuple(key)
        moved = entry.keys if isinstance(entry, Leaf) else {}
        where = (*moved[keys[0]], *keys[1:]) if keys and keys[0] in moved else (*entry.where, *keys)
        if entry.uses:  # a block's line, once for all the uses that meet the same problem there
            key_said = (where, severity, message)
            if key_said in self.said:
                self.said[key_said][1] += 1
                return
            self.said[key_said] = [len(self.compiled.diagnostics), 0]
        line, column = self.source.where(where) or (None, None)
        message += self.source.note(where) + note(entry.uses, self.source)
        self.compiled.diagnostics.append(
            Diagnostic(
                self.compiled.file,
                message,
                severity,
                line,
                column,
                entry.index,
                entry.name,
                entry.kind,  # type: ignore[arg-type]
                entry.dotted,
            )
        )


def check_file(path: str | Path, bindings: Mapping[str, Value] | None = None) -> Compiled:
    """Read, validate and compile a spec file; problems are in `.diagnostics`, never raised.
    `bindings` set the spec's declared parameters, e.g. {"classes": 10}."""
    loaded: Loaded = read(path, bindings)
    if loaded.spec is None:
        return Compiled(loaded.file, None, diagnostics=loaded.diagnostics)
    compiled = compile_spec(loaded.spec, loaded.file, loaded.source)
    compiled.file = str(path)  # a spec that extends another: its problems are in the other's file, it is this one
    compiled.standalone = (loaded.text or "", loaded.bindings)
    return compiled


def compile_file(path: str | Path, bindings: Mapping[str, Value] | None = None) -> Compiled:
    """Like check_file, but raise SpecError when the spec has errors."""
    return check_file(path, bindings).raise_for_errors()
