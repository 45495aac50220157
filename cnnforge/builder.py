"""The builder: a compiled spec becomes a torch.nn.Sequential whose submodules carry the layer names."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .compiler import Compiled


def build(compiled: Compiled) -> nn.Sequential:
    """A torch module computing the spec; raises SpecError if the spec has errors.

    >>> build(compile_file("architectures/lenet.yaml")).conv0  # doctest: +SKIP
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    """
    compiled.raise_for_errors()
    return nn.Sequential(
        OrderedDict((layer.name, layer.layer.module(layer.input)) for layer in compiled.layers)  # type: ignore[arg-type]
    )
