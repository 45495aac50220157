"""The layers of a trained spec that give feature maps [C, H, W], chosen by path on the command line
(`conv3`, `layer2.0.conv2`, or a group such as `layer4`), and the module a hook reads each from."""

from __future__ import annotations

from dataclasses import dataclass

from ..compiler import Compiled, CompiledGroup, CompiledLayer
from ..layers import Shape, show
from ..layers.registry import suggest
from ..outline import branch_labels
from .command import UsageError

SHOWN = 12  # paths listed when a name is not found; the rest are counted


@dataclass(frozen=True)
class MapLayer:
    """A node or group giving a feature map, and where a hook sees it: the output of the module at `module`, or
    (`as_input`) the input of that module, for a merge that no module computes alone."""

    path: str
    kind: str  # "conv", "add", a block's name, "sequence", "repeat"
    output: Shape | None
    module: str | None  # None: no module computes it, nor reads it alone (a merge straight into another)
    as_input: bool = False

    @property
    def is_map(self) -> bool:
        return self.output is not None and len(self.output) == 3


def map_layers(compiled: Compiled) -> list[MapLayer]:
    """The layers and groups that give a feature map [C, H, W], in order (a group before what it holds)."""
    return [layer for layer in _targets(compiled).values() if layer.is_map]


def feature_layer(compiled: Compiled, path: str | None, inputs: bool = True) -> MapLayer:
    """The layer or group at `path`, which must give a feature map; by default the last conv layer (or the last
    layer giving a feature map, in a spec without conv layers). A merge that ends no group is read as the input
    of the layer after it, when `inputs`; else the UsageError says what to take instead, as it names the valid
    layers when `path` is not one."""
    spec = compiled.spec.name  # type: ignore[union-attr]
    targets = _targets(compiled)
    choices = [layer for layer in targets.values() if layer.is_map]
    if not choices:
        raise UsageError(f"no layer of {spec} gives a feature map [C, H, W]")
    if path is None:
        return ([layer for layer in choices if layer.kind == "conv"] or choices)[-1]
    found = targets.get(path)
    if found is None:
        problem = f"no such layer {path!r} in {spec}{suggest(path, [c.path for c in choices])}"
    elif not found.is_map:
        problem = f"{path} ({found.kind}) gives {show(found.output)}, not a feature map [C, H, W]"  # type: ignore[arg-type]
    elif found.module is None or (found.as_input and not inputs):
        node = compiled.node(path)
        assert node is not None
        instead = [f"{found.module}, the layer after it"] if found.module else []
        if node.parent:
            instead.append(f"{node.parent}, the group it is in")
        else:
            instead.append(f"the layers it joins ({', '.join(compiled.layers[i].path for i in node.inputs)})")
        raise UsageError(
            f"layer={path}: the {found.kind} of {' and '.join(branch_labels(compiled)[path])} is computed by no "
            f"module of its own, so nothing can be hooked on it; take {', or '.join(instead)}"
        )
    else:
        return found
    raise UsageError(f"layer={path}: {problem}; {_listed(compiled, choices)}")


def _listed(compiled: Compiled, choices: list[MapLayer]) -> str:
    """'layers with feature maps: ...': all of a plain spec's; a graph's top-level ones, then a count."""
    if not compiled.is_graph:
        return f"layers with feature maps: {', '.join(c.path for c in choices)}"
    top = [c.path for c in choices if "." not in c.path]
    shown = ", ".join(top[:SHOWN]) + (f", ... ({len(top)} in all)" if len(top) > SHOWN else "")
    return (
        f"layers and groups with feature maps: {shown}, and the layers inside the groups (cnnforge summary lists them)"
    )


def _targets(compiled: Compiled) -> dict[str, MapLayer]:
    """Every node and group by path, in order, each with the module whose output it is."""
    consumers: dict[int, list[CompiledLayer]] = {}
    for node in compiled.layers:
        for source in node.inputs:
            consumers.setdefault(source, []).append(node)
    groups = [group for group in compiled.groups if group.last >= group.first]
    ends = {group.last: group for group in groups}  # the innermost group a node ends (written after the outer)
    starts: dict[int, list[CompiledGroup]] = {}
    for group in groups:
        starts.setdefault(group.first, []).append(group)
    targets: dict[str, MapLayer] = {}
    for node in compiled.layers:
        for group in starts.get(node.index, []):
            kind = group.block or group.kind
            targets[group.path] = MapLayer(group.path, kind, compiled.layers[group.last].output, group.path)
        if len(node.inputs) == 1:
            targets[node.path] = MapLayer(node.path, node.type, node.output, node.path)
        elif node.index in ends or node.index == len(compiled.layers) - 1:  # the output of its group, or the model
            module = ends[node.index].path if node.index in ends else ""
            targets[node.path] = MapLayer(node.path, node.type, node.output, module)
        else:  # read as the input of the layer after it
            after = next((c for c in consumers.get(node.index, []) if len(c.inputs) == 1), None)
            targets[node.path] = MapLayer(node.path, node.type, node.output, after and after.path, True)
    return targets


def first_conv(compiled: Compiled) -> CompiledLayer:
    """The first conv layer, whose filters look at the image itself."""
    for layer in compiled.layers:
        if layer.type == "conv":
            return layer
    raise UsageError(f"{compiled.spec.name} has no conv layer, so no filters to show")  # type: ignore[union-attr]
