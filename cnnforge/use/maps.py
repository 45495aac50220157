"""The layers of a trained spec that give feature maps [C, H, W], chosen by name on the command line."""

from __future__ import annotations

from ..compiler import Compiled, CompiledLayer
from ..layers import show
from ..layers.registry import suggest
from .command import UsageError


def map_layers(compiled: Compiled) -> list[CompiledLayer]:
    """The layers whose output is a feature map [C, H, W], in order."""
    return [layer for layer in compiled.layers if layer.output is not None and len(layer.output) == 3]


def feature_layer(compiled: Compiled, name: str | None) -> CompiledLayer:
    """The layer called `name`, which must give a feature map; by default the last conv layer (or the last layer
    giving a feature map, in a spec without conv layers). A UsageError names the valid layers."""
    spec = compiled.spec.name  # type: ignore[union-attr]
    choices = map_layers(compiled)
    if not choices:
        raise UsageError(f"no layer of {spec} gives a feature map [C, H, W]")
    if name is None:
        return ([layer for layer in choices if layer.type == "conv"] or choices)[-1]
    found = {layer.name: layer for layer in compiled.layers}.get(name)
    if found in choices:
        return found  # type: ignore[return-value]
    if found is not None:
        problem = f"{name} ({found.type}) gives {show(found.output)}, not a feature map [C, H, W]"
    else:
        problem = f"no such layer {name!r} in {spec}{suggest(name, [layer.name for layer in choices])}"
    raise UsageError(f"layer={name}: {problem}; layers with feature maps: {', '.join(c.name for c in choices)}")


def first_conv(compiled: Compiled) -> CompiledLayer:
    """The first conv layer, whose filters look at the image itself."""
    for layer in compiled.layers:
        if layer.type == "conv":
            return layer
    raise UsageError(f"{compiled.spec.name} has no conv layer, so no filters to show")  # type: ignore[union-attr]
