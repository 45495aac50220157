"""The builder: a compiled spec becomes a torch module tree whose submodules carry the spec's names and paths
(`layer1.0.conv1`), with parameters in the order of the file."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from .compiler import Compiled
from .modules import Graph, Step
from .spec.graph import Entry, Group, Leaf, Merge


def build(compiled: Compiled, state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """A torch module computing the spec; raises SpecError if the spec has errors. A plain sequence of layers
    (groups included) is an nn.Sequential; a group with branches is a Graph. With `state_dict` (another
    implementation's, torchvision's, in its own names), the module holds its tensors, mapped by position and
    checked tensor by tensor (cnnforge.weights); WeightsError names the first that differs.

    >>> build(compile_file("architectures/lenet.yaml")).conv0  # doctest: +SKIP
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> build(compile_file("architectures/resnet18.yaml"), state_dict=resnet18().state_dict())  # doctest: +SKIP
    """
    compiled.raise_for_errors()
    inputs = {layer.path: layer.input for layer in compiled.layers}
    model = _group(compiled.spec.layers, inputs)  # type: ignore[union-attr]
    if state_dict is not None:
        from .weights import map_state

        model.load_state_dict(map_state(model.state_dict(), state_dict).state)
    return model


def _group(entries: list[Entry], inputs: dict) -> nn.Module:
    children: OrderedDict[str, nn.Module] = OrderedDict()

    def step(entry: Entry) -> Step:
        if isinstance(entry, Leaf):
            children[entry.name] = entry.layer.module(inputs[entry.dotted])
            return entry.name
        if isinstance(entry, Group):
            children[entry.name] = _group(entry.entries, inputs)
            return entry.name
        assert isinstance(entry, Merge)
        return entry.op, tuple(tuple(step(e) for e in branch) for _, branch in entry.branches)

    program = tuple(step(entry) for entry in entries)
    if all(isinstance(s, str) for s in program):
        return nn.Sequential(children)
    return Graph(children, program)
