"""Weights from elsewhere: a state_dict in another implementation's layout (torchvision's), mapped onto a spec's
model by position, tensor by tensor.

Two implementations of one network hold the same tensors in the same order: torchvision's resnet18 and the
spec architectures/resnet18.yaml each have 122, the first conv's weight first and the classifier's bias last. Their
names may differ (`features.0.block.0.weight` against `features.0.conv1.weight`); their order and shapes may not.
The one ordering difference torch makes is a module's own tensors, which its state_dict lists before its
children's (torchvision's ConvNeXt block registers `layer_scale` before its layers): here they come after, where
the spec computes with them.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .train.checkpoint import CheckpointError, read_tensors


class WeightsError(Exception):
    """Weights that do not fit a spec, or a file that holds none."""


@dataclass
class Mapped:
    """A spec model's state_dict filled from a source: `state` in the spec's names; `skipped` the source's
    tensors left out by request; `fresh` the spec's tensors left as initialised (the last layer, for other
    classes)."""

    state: OrderedDict[str, torch.Tensor]
    skipped: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)


def children_first(keys: Iterable[str]) -> list[str]:
    """state_dict keys with each module's own tensors after its children's, else in their order.

    >>> children_first(["block.layer_scale", "block.conv.weight", "block.conv.bias", "fc.weight"])
    ['block.conv.weight', 'block.conv.bias', 'block.layer_scale', 'fc.weight']
    """
    tree: dict[str, Any] = {}
    for key in keys:
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part + ".", {})  # the dot keeps a child apart from an own tensor of one name
        node[last] = key

    def walk(node: dict[str, Any]) -> list[str]:
        children = [key for value in node.values() if isinstance(value, dict) for key in walk(value)]
        return children + [value for value in node.values() if isinstance(value, str)]

    return walk(tree)


def skipping(source: Mapping[str, torch.Tensor], patterns: Iterable[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`source` without the tensors whose key matches one of the shell-style `patterns` (case-insensitive, so
    `aux*` takes GoogLeNet's aux1.* and Inception v3's AuxLogits.*), and the keys left out."""
    patterns = [p.lower() for p in patterns]
    skipped = [key for key in source if any(fnmatch.fnmatchcase(key.lower(), p) for p in patterns)]
    return {k: v for k, v in source.items() if k not in set(skipped)}, skipped


def _layer(key: str) -> str:
    return key.rpartition(".")[0] or key


def _top(key: str) -> str:
    return key.split(".")[0]


def _more(count: int) -> str:
    return f" and {count} more after it" if count else ""


def _show(key: str, tensor: torch.Tensor) -> str:
    return f"'{key}' {list(tensor.shape)}"


def map_state(
    ours: Mapping[str, torch.Tensor],
    source: Mapping[str, torch.Tensor],
    skip: Iterable[str] = (),
    fresh_layer: str | None = None,
) -> Mapped:
    """The spec model's state `ours` (a state_dict) filled from `source` by position. Tensors of `source`
    matching `skip` are left out first. `fresh_layer` (a node path) may differ in shape, keeping our tensors:
    the classifier when the classes differ. Raises WeightsError naming the first tensor that differs."""
    source, skipped = skipping(source, skip)
    theirs = children_first(source)
    mapped = Mapped(OrderedDict(), skipped)
    for index, (key, mine) in enumerate(ours.items()):
        if index >= len(theirs):
            raise WeightsError(
                f"the weights hold {len(theirs)} tensors, the spec {len(ours)}: nothing in the file for the spec's "
                f"{_show(key, mine)} (layer {_layer(key)}){_more(len(ours) - len(theirs) - 1)}"
            )
        other = source[theirs[index]]
        if tuple(other.shape) == tuple(mine.shape) and other.dtype.is_floating_point == mine.dtype.is_floating_point:
            mapped.state[key] = other.to(mine.dtype)
        elif fresh_layer is not None and _layer(key) == fresh_layer:
            mapped.state[key] = mine
            mapped.fresh.append(key)
        else:
            kind = "" if other.dtype.is_floating_point == mine.dtype.is_floating_point else " (of another type)"
            counts = f"; the file holds {len(theirs)} tensors, the spec {len(ours)}" if len(theirs) != len(ours) else ""
            if len(theirs) > len(ours):
                counts += f": leave out what the spec has not with a skip pattern (--skip '{_top(theirs[index])}.*')"
            raise WeightsError(
                f"tensor {index + 1} differs: the file's {_show(theirs[index], other)}, the spec's "
                f"{_show(key, mine)} (layer {_layer(key)}){kind}{counts}"
            )
    if len(theirs) > len(ours):
        extra = theirs[len(ours)]
        more = len(theirs) - len(ours) - 1
        raise WeightsError(
            f"the weights hold {len(theirs)} tensors, the spec {len(ours)}: the file's {_show(extra, source[extra])}"
            f"{_more(more)} {'have' if more else 'has'} no place in the spec; leave out what the spec does not have "
            f"with a skip pattern (--skip '{_top(extra)}.*')"
        )
    return mapped


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in a weights file: torchvision's (a state_dict saved with torch.save), one cnnforge's
    `weights` wrote, or a cnnforge checkpoint's model. Only tensors and plain values are read (torch's weights-only
    unpickler): a file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file" if not path.exists() else f"{path}: not a regular file")
    try:
        state = read_tensors(path, "weights file")
    except CheckpointError as error:
        raise WeightsError(str(error)) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and "format" in state:
        state = state["model"]  # a cnnforge checkpoint
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # as many training scripts save them
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise WeightsError(f"{path}: not a state_dict (a mapping of names to tensors)")
    return state


def spec_state(compiled: Any) -> OrderedDict[str, torch.Tensor]:
    """The spec model's state_dict as shapes and types alone (built on the meta device: nothing allocated)."""
    from .builder import build

    with torch.device("meta"):
        return build(compiled).state_dict()


def convert(compiled: Any, path: str | Path, skip: Iterable[str] = ()) -> Mapped:
    """The weights file at `path` in the spec's layout: its state_dict's tensors under the spec's names."""
    source = read_state(path)
    try:
        return map_state(spec_state(compiled), source, skip)
    except WeightsError as error:
        raise WeightsError(f"{path} does not fit {compiled.file}: {error}") from None
