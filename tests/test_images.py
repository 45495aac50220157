"""Image files of every bit depth and mode read as 8-bit grayscale or RGB, and images over Pillow's pixel bound
refused: the one reading function predict, explain, features and image-folder training share."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnforge.images import ImageError, read

# 8-bit levels spanning 0..255, and the same picture at 16 bits: 0..65535 (v * 257 is v at 16 bits exactly).
LEVELS = np.arange(256, dtype=np.uint8).reshape(16, 16)


def pixels(path: Path, mode: str) -> np.ndarray:
    return np.asarray(read(path, mode)).astype(int)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path, mode: str) -> None:
    Image.fromarray(LEVELS.astype(np.uint16) * 257).save(tmp_path / "16.png")
    Image.fromarray(LEVELS).save(tmp_path / "8.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    assert np.array_equal(pixels(tmp_path / "16.png", mode), pixels(tmp_path / "8.png", mode))


def test_16_bit_levels_between_8_bit_ones_round_to_the_nearest(tmp_path: Path) -> None:
    levels = np.array([[0, 128, 129, 385, 65407, 65535]], dtype=np.uint16)  # 128/257 rounds down, 129/257 up
    Image.fromarray(levels).save(tmp_path / "16.png")
    assert pixels(tmp_path / "16.png", "L").tolist() == [[0, 0, 1, 1, 255, 255]]


def test_32_bit_integer_and_float_images(tmp_path: Path) -> None:
    Image.fromarray(LEVELS.astype(np.int32) * 257).save(tmp_path / "i.tif")
    Image.fromarray(LEVELS.astype(np.float32) / 255).save(tmp_path / "f.tif")
    assert [Image.open(tmp_path / name).mode for name in ("i.tif", "f.tif")] == ["I", "F"]
    for name in ("i.tif", "f.tif"):
        assert np.array_equal(pixels(tmp_path / name, "L"), LEVELS)


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.full((2, 2), 70000, np.int32), "32-bit integer pixels outside 0..65535"),
        (np.full((2, 2), -1, np.int32), "32-bit integer pixels outside 0..65535"),
        (np.full((2, 2), 2.5, np.float32), "floating-point pixels outside 0..1"),
        (np.full((2, 2), np.nan, np.float32), "floating-point pixels outside 0..1"),
    ],
    ids=["over", "negative", "float-over", "nan"],
)
def test_pixels_of_no_known_range_are_refused(tmp_path: Path, array: np.ndarray, problem: str) -> None:
    Image.fromarray(array).save(tmp_path / "x.tif")
    with pytest.raises(ImageError, match=f"^{problem}"):
        read(tmp_path / "x.tif", "L")


def test_1_bit_and_palette(tmp_path: Path) -> None:
    Image.fromarray(LEVELS > 127).save(tmp_path / "1.png")
    assert Image.open(tmp_path / "1.png").mode == "1"
    assert np.array_equal(pixels(tmp_path / "1.png", "L"), np.where(LEVELS > 127, 255, 0))
    Image.fromarray(LEVELS).convert("P").save(tmp_path / "p.png")
    assert np.array_equal(pixels(tmp_path / "p.png", "RGB")[..., 0], LEVELS)


def test_transparency_is_laid_over_white(tmp_path: Path) -> None:
    """A black digit on a transparent ground reads as a black digit on white, as a viewer shows it, not as
    black on the black that the transparent pixels hold."""
    ink = np.zeros((16, 16), np.uint8)
    alpha = np.where(LEVELS > 127, 255, 0).astype(np.uint8)  # opaque ink below, transparent above
    expected = np.where(LEVELS > 127, 0, 255)
    Image.fromarray(np.stack([ink, alpha], axis=-1), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.stack([ink, ink, ink, alpha], axis=-1), "RGBA").save(tmp_path / "rgba.png")
    palette = Image.fromarray(np.where(LEVELS > 127, 0, 1).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 0, 0, 0])  # both entries black; entry 1 transparent
    palette.save(tmp_path / "p.png", transparency=1)
    half = Image.fromarray(np.stack([ink, np.full_like(ink, 128)], axis=-1), "LA")
    half.save(tmp_path / "half.png")
    for name in ("la.png", "rgba.png", "p.png"):
        assert np.array_equal(pixels(tmp_path / name, "L"), expected), name
        assert np.array_equal(pixels(tmp_path / name, "RGB"), np.repeat(expected[..., None], 3, axis=-1)), name
    assert np.abs(pixels(tmp_path / "half.png", "L") - 127).max() <= 1  # half black over white


def test_cmyk(tmp_path: Path) -> None:
    cmyk = np.zeros((2, 2, 4), np.uint8)
    cmyk[0, 0] = [0, 255, 255, 0]  # no cyan, full magenta and yellow: red
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100)
    red, white = pixels(tmp_path / "c.jpg", "RGB")[0]
    assert red[0] > 200 and red[1:].max() < 60 and white.min() > 200


def test_a_mode_pillow_cannot_convert_is_refused(tmp_path: Path) -> None:
    Image.new("LAB", (2, 2)).save(tmp_path / "lab.tif")
    with pytest.raises(ImageError, match=r"^cannot read image: conversion from LAB to RGB not supported"):
        read(tmp_path / "lab.tif", "L")


@pytest.mark.parametrize("side", [9, 13], ids=["over-the-bound", "over-twice-the-bound"])
def test_images_over_the_pixel_bound_are_refused(tmp_path: Path, side: int, monkeypatch) -> None:
    """Pillow warns over Image.MAX_IMAGE_PIXELS and raises over twice that: both are refused."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)
    Image.new("L", (side, side)).save(tmp_path / "big.png")
    Image.new("L", (8, 8)).save(tmp_path / "ok.png")
    with pytest.raises(ImageError, match=rf"^refused: Image size \({side * side} pixels\) exceeds limit"):
        read(tmp_path / "big.png", "L")
    assert read(tmp_path / "ok.png", "L").size == (8, 8)


def blank_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit black PNG of width x height pixels, written without holding its pixels: a few kilobytes a
    thousand rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_a_huge_blank_png_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """12000 x 12000 pixels (144 M, over Pillow's 89 M, under twice that: a warning only in Pillow itself) in
    a file of some 20 kB; decoded, explain's float copies of it once took 5.7 GB."""
    path = blank_png(tmp_path / "huge.png", 12000, 12000)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageError, match=r"^refused: Image size \(144000000 pixels\) exceeds limit of 89478485"):
        read(path, "RGB")
