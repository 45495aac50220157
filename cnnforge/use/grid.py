"""Equal-sized images laid out as a labelled grid, drawn by matplotlib at an exact size in pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

PAD = 6  # pixels around and between tiles
LABEL = 14  # pixels above each tile for its label
TITLE = 22  # pixels above the grid for its title
TILE = 64  # tiles are scaled up by a whole factor to at least this many pixels
SIZE = 256  # by default, images written for people are enlarged to at least this many pixels on the shorter side
DPI = 100


@dataclass(frozen=True)
class Grid:
    """Where `count` tiles of `tile` = (height, width) pixels go, `columns` to a row."""

    count: int
    columns: int
    tile: tuple[int, int]

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """The whole image's (width, height) in pixels."""
        h, w = self.tile
        return PAD + self.columns * (w + PAD), TITLE + self.rows * (LABEL + h + PAD)

    def box(self, i: int) -> tuple[int, int, int, int]:
        """Tile i's (left, top, width, height) in pixels, counted from the top left."""
        h, w = self.tile
        row, column = divmod(i, self.columns)
        return PAD + column * (w + PAD), TITLE + row * (LABEL + h + PAD) + LABEL, w, h


def layout(count: int, shape: tuple[int, int], columns: int | None = None, size: int = SIZE) -> Grid:
    """A near-square grid (or one of `columns` columns) for `count` images of `shape` = (height, width), each
    scaled up by the least whole factor that makes it TILE pixels on its longer side and the whole grid `size`
    pixels on its shorter side; with `size` 0, each image at its own size."""
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    scale = 1
    if size:
        wide = math.ceil((size - PAD - columns * PAD) / (columns * shape[1]))  # Grid.size's width >= size
        tall = math.ceil((size - TITLE - rows * (LABEL + PAD)) / (rows * shape[0]))  # and its height
        scale = max(1, math.ceil(TILE / max(shape)), wide, tall)
    return Grid(count, columns, (shape[0] * scale, shape[1] * scale))


def normalised(tiles: np.ndarray) -> np.ndarray:
    """Each tile (the first axis) stretched to [0, 1] on its own; a constant tile becomes 0."""
    axes = tuple(range(1, tiles.ndim))
    low, high = tiles.min(axis=axes, keepdims=True), tiles.max(axis=axes, keepdims=True)
    return (tiles - low) / np.where(high > low, high - low, 1)


def draw(
    file: BinaryIO,
    tiles: np.ndarray,
    labels: list[str],
    title: str,
    columns: int | None = None,
    cmap: str = "viridis",
    size: int = SIZE,
) -> Grid:
    """Write `tiles` [N, h, w] (drawn with `cmap`) or [N, h, w, 3] (RGB), values in [0, 1], to `file` as a PNG
    grid with each tile's label above it and `title` on top, laid out as `layout` says."""
    from matplotlib.figure import Figure

    grid = layout(len(tiles), tiles.shape[1:3], columns, size)
    width, height = grid.size
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    figure.text(0.5, 1 - 4 / height, title, ha="center", va="top", fontsize=9)
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        left, top, w, h = grid.box(i)
        axes = figure.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))
        axes.imshow(tile, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        axes.set_axis_off()
        figure.text((left + w / 2) / width, 1 - (top - 2) / height, label, ha="center", va="bottom", fontsize=7)
    figure.savefig(file, format="png", dpi=DPI, facecolor="white")
    return grid
