"""A compiled spec as the tree people read: groups holding their nodes, merges holding their labelled branches,
each with its compiled node or group. One walk over the spec's entries; pure Python, for the views (summary,
draw, the layers the use commands look at)."""

from __future__ import annotations

from dataclasses import dataclass

from .compiler import Compiled, CompiledGroup, CompiledLayer
from .spec.graph import Entry, Group, Leaf, Merge


@dataclass(frozen=True)
class Node:
    """A layer, or a merge with its branches (each from the merge's input, in the order of the file; an empty
    one is the input itself)."""

    layer: CompiledLayer
    branches: tuple[tuple[str, tuple[Item, ...]], ...] = ()

    @property
    def is_merge(self) -> bool:
        return bool(self.branches)


@dataclass(frozen=True)
class Block:
    """A group: a block used once, a `sequence`, or the repetitions of a repeated entry (each an item)."""

    group: CompiledGroup
    items: tuple[Item, ...]


Item = Node | Block


def outline(compiled: Compiled) -> tuple[Item, ...]:
    """The top-level items of a compiled spec, each holding what is inside it.

    >>> [type(item).__name__ for item in outline(compile_file("architectures/resnet18.yaml"))][3:6]  # doctest: +SKIP
    ['Node', 'Block', 'Block']
    """
    assert compiled.spec is not None
    nodes = {layer.path: layer for layer in compiled.layers}
    groups = {group.path: group for group in compiled.groups}

    def items(entries: list[Entry]) -> tuple[Item, ...]:
        found: list[Item] = []
        for entry in entries:
            if isinstance(entry, Group):
                found.append(Block(groups[entry.dotted], items(entry.entries)))
            elif isinstance(entry, Merge):
                branches = tuple((label, items(branch)) for label, branch in entry.branches)
                found.append(Node(nodes[entry.dotted], branches))
            else:
                assert isinstance(entry, Leaf)
                found.append(Node(nodes[entry.dotted]))
        return tuple(found)

    return items(compiled.spec.layers)


def walk(items: tuple[Item, ...]) -> list[Item]:
    """Every item, each before what is inside it."""
    found: list[Item] = []
    for item in items:
        found.append(item)
        if isinstance(item, Block):
            found += walk(item.items)
        else:
            for _, branch in item.branches:
                found += walk(branch)
    return found


def branch_labels(compiled: Compiled) -> dict[str, list[str]]:
    """The labels of each merge's branches, by the merge's path: {"layer1.0.add0": ["body", "shortcut"]}."""
    return {
        item.layer.path: [label for label, _ in item.branches]
        for item in walk(outline(compiled))
        if isinstance(item, Node) and item.is_merge
    }
