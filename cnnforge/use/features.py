"""`cnnforge features`: a layer's activation maps for an image, and the first conv layer's filters, as grids."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..files import Writer, write_new
from ..layers import show
from . import grid
from .command import UsageError, count_option, device_option, flag_option, read_image, split_args
from .maps import MapLayer, feature_layer, first_conv
from .model import load

USAGE = (
    "usage: cnnforge features ckpt=PATH [layer=PATH] [filters=true] [out=features] [size=256] "
    "[device=auto|cpu|cuda|mps] [IMAGE...]"
)
HELP = f"""{USAGE}

For each image, writes the activation maps of one layer, a tile per channel, each stretched to its own range, as
OUT/STEM.LAYER.png (a new name, STEM.LAYER-2.png and so on, when that exists).
  layer=        a layer or group giving a feature map [C, H, W], by its path (layer2.0.conv1, layer4; default:
                the last conv layer)
  filters=true  also write the first conv layer's filters as OUT/SPEC.LAYER.filters.png (--filters, too)
  out=          the output folder (default: features, in the current folder)
  size=         enlarge the tiles (nearest, by a whole factor) until the image is at least this many pixels on
                its shorter side (default 256); size=0: each tile at the layer's own resolution"""


def filter_tiles(weight: torch.Tensor) -> tuple[torch.Tensor, list[str], int | None]:
    """Conv weights [C_o, C_i, K_h, K_w] as tiles, their labels and the grid's columns (None: near-square): a
    colour tile per filter when C_i is 3, a grey one when it is 1, else a grey tile per output and input channel,
    a row per output channel."""
    c_out, c_in = weight.shape[:2]
    if c_in == 3:
        return weight.permute(0, 2, 3, 1), [str(o) for o in range(c_out)], None  # [C_o, K_h, K_w, 3]
    if c_in == 1:
        return weight[:, 0], [str(o) for o in range(c_out)], None
    labels = [f"{o}:{i}" for o in range(c_out) for i in range(c_in)]
    return weight.flatten(0, 1), labels, c_in  # [C_o * C_i, K_h, K_w]


def _drawn(
    tiles: torch.Tensor, labels: list[str], title: str, size: int, columns: int | None = None, cmap: str = "viridis"
) -> Writer:
    """Writes the tiles, each stretched to its own range, as a labelled grid (see grid.layout for `size`)."""
    array = grid.normalised(tiles.detach().cpu().float().numpy())
    return lambda file: grid.draw(file, array, labels, title, columns, cmap, size)


class _Reached(Exception):
    """Stops the forward pass once the layer's maps are in hand."""


def activations(model: torch.nn.Module, layer: MapLayer, x: torch.Tensor) -> torch.Tensor:
    """The maps [N, C, H, W] that `layer` gives for the batch x; the layers after it are not run."""
    found: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> None:
        found.append(tensor)
        raise _Reached

    module = model.get_submodule(layer.module)
    if layer.as_input:  # a merge no module computes alone: what the layer after it reads
        hook = module.register_forward_pre_hook(lambda _, args: keep(args[0]))
    else:
        hook = module.register_forward_hook(lambda _, args, output: keep(output))
    try:
        model(x)
    except _Reached:
        pass
    finally:
        hook.remove()
    return found[0]


def command(argv: list[str]) -> int:
    """cnnforge features ckpt=PATH [layer=PATH] [filters=true] [out=DIR] [device=auto] [IMAGE...]"""
    if "--help" in argv or "-h" in argv:
        print(HELP)
        return 0
    known = ("ckpt", "layer", "filters", "out", "size", "device")
    options, images = split_args(argv, known, USAGE, flags=("filters",))
    filters = flag_option(options, "filters", USAGE)
    size = count_option(options, "size", grid.SIZE, USAGE, least=0)
    if "ckpt" not in options or not (images or filters):
        raise UsageError(USAGE)
    device = device_option(options, USAGE)
    out = Path(options.get("out", "features"))
    trained = load(options["ckpt"], device)
    model, compiled = trained.model, trained.compiled
    layer = feature_layer(compiled, options.get("layer"))
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", trained.name)  # a file name, whatever the spec's name
    if filters:
        conv = first_conv(compiled)
        weight = model.get_submodule(conv.path).weight  # [C_o, C_i / groups, K_h, K_w]
        tiles, labels, columns = filter_tiles(weight)
        title = f"{name} {conv.path}: filters {show(weight.shape)}"
        drawn = _drawn(tiles, labels, title, size, columns, "gray")  # colour filters are drawn as RGB
        (path,) = write_new(out, f"{name}.{conv.path}.filters", {".png": drawn})
        print(f"filters of {conv.path} {show(weight.shape)} -> {path}")
    status = 0
    for image in images:
        x = read_image(image, trained.mode)
        if x is None:
            status = 1
            continue
        with torch.no_grad():
            maps = activations(model, layer, trained.inputs(x))[0]  # [C, H, W]
        title = f"{layer.path} {show(maps.shape)} of {Path(image).name}"
        labels = [str(c) for c in range(len(maps))]
        (path,) = write_new(out, f"{Path(image).stem}.{layer.path}", {".png": _drawn(maps, labels, title, size)})
        print(f"{image}: {layer.path} {show(maps.shape)} -> {path}")
    return status
