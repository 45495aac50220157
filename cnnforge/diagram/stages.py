"""A compiled spec as stages: each layer that computes a new map or features, with the pointwise layers after it;
in a graph, also forks (branches side by side, joined where they meet) and frames (a group, or a run of
repetitions that are alike, drawn once as ×N)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compiler import Compiled, CompiledGroup, CompiledLayer
from ..layers import Shape, show
from ..outline import Block, Item, Node, outline, walk

POINTWISE_SHAPES = ("flatten",)  # kinds that reshape without computing anything: they join the stage before them


@dataclass
class Stage:
    """One drawn map or bar: the layer that makes it (`head`, None for the input), the layers after it that keep
    its values' shape (relu, batchnorm, dropout, ... and flatten), and the map or features it draws."""

    head: CompiledLayer | None
    shape: Shape
    followers: list[CompiledLayer] = field(default_factory=list)
    name: str | None = None  # what its label calls it, when not its head's name: its path inside a frame

    @property
    def label(self) -> str:
        return self.name or (self.head.name if self.head else "input")

    @property
    def layers(self) -> list[CompiledLayer]:
        return ([self.head] if self.head else []) + self.followers

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def is_map(self) -> bool:
        return len(self.shape) == 3

    @property
    def role(self) -> str:
        """How the stage is coloured: "input", "conv" (a map computed with weights), "pool" (a map computed without)
        or "linear" (features)."""
        if self.head is None:
            return "input"
        if not self.is_map:
            return "linear"
        return "conv" if self.head.params else "pool"

    @property
    def operation(self) -> str:
        """What the head computes, e.g. "conv 11x11 /4" or "maxpool 3x3 /2"; "input" for the input."""
        return operation(self.head) if self.head else "input"

    @property
    def after(self) -> str:
        """The followers' kinds, e.g. "relu · lrn"; "" when there are none."""
        return " · ".join(layer.type for layer in self.followers)

    @property
    def kernel(self) -> tuple[int, int] | None:
        """The head's window (K_h, K_w) on the map before it, if it slides one."""
        return window(self.head) if self.head else None


def starts_stage(layer: CompiledLayer) -> bool:
    """A layer with weights of its own (conv, linear) or one that changes the shape (pooling) starts a stage."""
    if layer.type in POINTWISE_SHAPES:
        return False
    return window(layer) is not None or layer.output != layer.input or _weight_shape(layer) is not None


def stages(compiled: Compiled) -> list[Stage]:
    """The stages drawn for a spec without errors, the input first: for a plain spec, one per layer that starts
    one; in a graph, those of its plan, each folded run of repetitions once."""
    return [part for part in flat(plan(compiled)) if isinstance(part, Stage)]


@dataclass
class Fork:
    """Branches from one input, side by side, and the merge that joins them (with the pointwise layers after
    it); an empty branch is the input itself."""

    merge: CompiledLayer
    branches: list[tuple[str, list[Part]]]
    followers: list[CompiledLayer] = field(default_factory=list)

    @property
    def after(self) -> str:
        return " · ".join(layer.type for layer in self.followers)


@dataclass
class Frame:
    """A group drawn in a frame: a block used once, a sequence, or a run of alike repetitions drawn once (the
    first of them), its title saying how many and what they give."""

    group: CompiledGroup | None  # the repetition drawn, or the group; None for a repeated layer
    title: list[str]
    parts: list[Part]
    times: int = 1


Part = Stage | Fork | Frame


def plan(compiled: Compiled) -> list[Part]:
    """What a spec's diagram draws, left to right: its stages, and in a graph its forks and frames.

    A frame holds a group at the top level or in another frame; groups in a branch are drawn as their layers.
    Repetitions that are alike (the same layers with the same kernels and strides, channels aside) are drawn
    once, as ×N: torchvision's ResNet-50 draws as 8 blocks of its 16."""
    assert compiled.ok and compiled.spec is not None
    return _lane(outline(compiled), "", True, Stage(None, tuple(compiled.spec.input)))


def flat(parts: list[Part]) -> list[Part]:
    """Every part, each before what it holds."""
    found: list[Part] = []
    for part in parts:
        found.append(part)
        if isinstance(part, Fork):
            for _, branch in part.branches:
                found += flat(branch)
        elif isinstance(part, Frame):
            found += flat(part.parts)
    return found


def _lane(items: tuple[Item, ...], base: str, frames: bool, start: Stage | None = None) -> list[Part]:
    """The parts of a sequence of items, names relative to the group at `base`; groups framed when `frames`,
    else drawn as their layers. A pointwise layer joins the stage (or merge) before it, or starts a stage where
    there is none (a branch that begins with batchnorm)."""
    parts: list[Part] = [start] if start else []
    for item in _unfolded(items, frames):
        last = parts[-1] if parts else None
        if isinstance(item, Block):
            parts += _frames(item, base)
        elif item.is_merge:
            branches = [(label, _lane(branch, base, False)) for label, branch in item.branches]
            parts.append(Fork(item.layer, branches))
        elif not starts_stage(item.layer) and isinstance(last, (Stage, Fork)):
            last.followers.append(item.layer)
        else:
            layer = item.layer
            assert layer.output is not None
            parts.append(Stage(layer, layer.output, name=_relative(layer.path, base)))
    return parts


def _unfolded(items: tuple[Item, ...], frames: bool) -> list[Item]:
    """The items, each group's own items in its place unless groups are framed."""
    if frames:
        return list(items)
    found: list[Item] = []
    for item in items:
        found += _unfolded(item.items, frames) if isinstance(item, Block) else [item]
    return found


def _relative(path: str, base: str) -> str:
    return path[len(base) + 1 :] if base and path.startswith(base + ".") else path


def _frames(block: Block, base: str) -> list[Part]:
    """A group's frame; a repeated entry's, a frame per run of alike repetitions; none for a group left empty
    by `when`."""
    group = block.group
    if group.last < group.first:
        return []
    name = _relative(group.path, base)
    if group.kind != "repeat":
        what = f": {group.block}" if group.block else ""
        return [Frame(group, [name + what], _lane(block.items, group.path, True))]
    runs: list[list[Item]] = []
    for item in block.items:
        if runs and _signature(runs[-1][0]) == _signature(item):
            runs[-1].append(item)
        else:
            runs.append([item])
    frames: list[Part] = []
    for run in runs:
        first, last = run[0], run[-1]
        drawn = first.group if isinstance(first, Block) else None
        what = (drawn.block or "sequence") if drawn else first.layer.type  # type: ignore[union-attr]
        numbers = _number(first) if len(run) == 1 else f"{_number(first)}–{_number(last)}"
        title = f"{name}: {what}" if len(run) == len(block.items) else f"{name}.{numbers}: {what}"
        lines = [title + (f" ×{len(run)}" if len(run) > 1 else "")]
        if len(run) > 1:
            nodes = [item for item in walk(tuple(run)) if isinstance(item, Node)]
            into = _first_input(first)
            params, macs = sum(n.layer.params for n in nodes), sum(n.layer.macs for n in nodes)
            lines.append(f"{show(into)} → {show(_output(last))} · {compact(params)} params · {compact(macs)} MACs")
        inside = first.items if isinstance(first, Block) else (first,)
        frames.append(Frame(drawn, lines, _lane(inside, drawn.path if drawn else group.path, True), len(run)))
    return frames


def _number(item: Item) -> str:
    return (item.group.path if isinstance(item, Block) else item.layer.path).rsplit(".", 1)[-1]


def _nodes(item: Item) -> list[CompiledLayer]:
    return [found.layer for found in walk((item,)) if isinstance(found, Node)]


def _first_input(item: Item) -> Shape:
    first = min(_nodes(item), key=lambda layer: layer.index)
    assert first.input is not None
    return first.input


def _output(item: Item) -> Shape:
    last = max(_nodes(item), key=lambda layer: layer.index)
    assert last.output is not None
    return last.output


def _signature(item: Item) -> tuple:
    """What makes two repetitions draw alike: their layers' places, kinds, kernels and strides, and whether
    each gives a map or features; not their channels."""
    base = item.group.path if isinstance(item, Block) else item.layer.path
    return tuple(
        (
            "" if layer.path == base else _relative(layer.path, base),
            operation(layer),
            len(layer.output or ()),
            tuple(layer.index - i for i in layer.inputs),
        )
        for layer in sorted(_nodes(item), key=lambda layer: layer.index)
    )


def _weight_shape(layer: CompiledLayer) -> tuple[int, ...] | None:
    shape = getattr(layer.layer, "shape", None)
    return tuple(shape) if shape is not None else None


def window(layer: CompiledLayer) -> tuple[int, int] | None:
    """(K_h, K_w) of a conv's kernel or a pool's window; None for layers that slide none."""
    shape = _weight_shape(layer)
    if shape is not None and len(shape) == 4:
        return shape[2], shape[3]
    kernel = getattr(layer.layer, "kernel", None)
    return tuple(kernel) if kernel is not None else None


def pair(values: tuple[int, int] | list[int], sep: str = "x") -> str:
    """(3, 3) -> "3x3"; (3, 1) -> "3x1"."""
    return f"{values[0]}{sep}{values[1]}"


def operation(layer: CompiledLayer) -> str:
    """A short label for what a layer computes: "conv 11x11 /4", "maxpool 3x3 /2", "linear", ..."""
    fields = layer.layer
    kernel = window(layer)
    if kernel is None:
        output = getattr(fields, "output", None)  # adaptive pooling's output size
        return f"{layer.type} → {pair(output)}" if output is not None else layer.type
    label = f"{layer.type} {pair(kernel)}"
    stride = tuple(getattr(fields, "strides", lambda: fields.stride)())
    if stride != (1, 1):
        label += f" /{stride[0]}" if stride[0] == stride[1] else f" /{pair(stride)}"
    extras = []
    dilation = tuple(getattr(fields, "dilation", (1, 1)))
    if dilation != (1, 1):
        extras.append(f"dilation {dilation[0] if dilation[0] == dilation[1] else pair(dilation)}")
    groups = getattr(fields, "groups", 1)
    if groups != 1:
        extras.append(f"{groups} groups")
    return ", ".join([label, *extras])


def compact(n: int) -> str:
    """A count in three significant digits: 156, 2.42k, 70.3M, 1.85G."""
    units = ["", "k", "M", "G", "T"]
    value, unit = float(n), 0
    while unit < len(units) - 1 and float(f"{value:.3g}") >= 1000:
        value, unit = value / 1000, unit + 1
    return f"{value:.3g}{units[unit]}" if unit else str(n)
