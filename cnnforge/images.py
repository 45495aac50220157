"""Image files as 8-bit grayscale or RGB, read one way by predict, explain, features and image-folder training:
every bit depth scaled to 0..255, transparency laid over white, and images over Pillow's pixel bound refused."""

from __future__ import annotations

import struct
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

LUMA = (0.299, 0.587, 0.114)  # RGB -> gray, as PIL's convert("L")

# What Pillow raises on a file it cannot decode, besides its own OSError (UnidentifiedImageError, truncated data).
UNDECODABLE = (OSError, ValueError, EOFError, SyntaxError, struct.error)


class ImageError(OSError):
    """An image file that cannot be read, or is refused: why, in one line."""


def _grey(levels: np.ndarray, top: float) -> Image.Image:
    """Grayscale levels 0..top as an 8-bit image, rounded to the nearest of 0..255."""
    return Image.fromarray(np.rint(levels.astype(np.float64) * (255 / top)).astype(np.uint8))


def _eight_bit(image: Image.Image) -> Image.Image:
    """`image` in a mode of 8 bits per channel, its values scaled from its own bit depth to 0..255."""
    if image.mode.startswith("I"):  # I;16, I;16B, ...: 16-bit grayscale; I: 32-bit integers, as from 16-bit files
        levels = np.asarray(image)
        if levels.size and (levels.min() < 0 or levels.max() > 65535):
            raise ImageError("32-bit integer pixels outside 0..65535: no known range to scale to 0..255")
        return _grey(levels, 65535)
    if image.mode == "F":  # 32-bit floating point, as from TIFF: read as 0..1
        levels = np.asarray(image)
        if levels.size and not (np.isfinite(levels).all() and levels.min() >= 0 and levels.max() <= 1):
            raise ImageError("floating-point pixels outside 0..1: no known range to scale to 0..255")
        return _grey(levels, 1.0)
    if image.has_transparency_data:  # LA, RGBA, P or L with a transparent colour, ...: as viewers show it
        return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image


def extensions() -> frozenset[str]:
    """The file name extensions (".png", ".jpg", ...) of the formats Pillow can open, in lower case."""
    return frozenset(ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN)


def converted(image: Image.Image, mode: str) -> Image.Image:
    """`image` in mode "L" or "RGB", 8 bits a channel, as `read` makes a file's image."""
    return _eight_bit(image).convert(mode)


def read(path: str | Path, mode: str) -> Image.Image:
    """The image file at `path` in mode "L" or "RGB", 8 bits a channel. Raises ImageError on a file that
    cannot be read, and on one of over Image.MAX_IMAGE_PIXELS pixels (89,478,485 by default), which Pillow
    counts as a possible decompression bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return converted(image, mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"refused: {error}") from None
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to read it") from None
    except UNDECODABLE as error:
        raise ImageError(f"cannot read image: {error}") from None


def _read_named(path: str, mode: str) -> Image.Image:
    try:
        return read(path, mode)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def loader(mode: str) -> Any:
    """A loader for torchvision's ImageFolder: `read` in `mode`, its errors naming the file."""
    return partial(_read_named, mode=mode)
