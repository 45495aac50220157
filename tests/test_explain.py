"""`cnnforge explain` (class-activation heatmaps) and `cnnforge features` (activation maps and filters) on a
LeNet-5 checkpoint of a short digits run."""

from __future__ import annotations

import errno
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from train_helpers import app_folder, train

from cnnforge.cli import main
from cnnforge.files import write_new
from cnnforge.train.data import load
from cnnforge.use import grid
from cnnforge.use.explain import METHODS

needs_grad_cam = pytest.mark.skipif(
    importlib.util.find_spec("pytorch_grad_cam") is None, reason="needs the explain extra (grad-cam)"
)
LENET_MAPS = "layers with feature maps: conv0, tanh1, avgpool2, conv3, tanh4, avgpool5"


@dataclass
class Output:
    code: int
    out: str
    err: str


def cnnforge(capsys: pytest.CaptureFixture, *args: str | Path) -> Output:
    """The CLI in this process."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Output(code, out, err)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The last checkpoint of three epochs of the shipped LeNet-5 on digits (8x8 samples resized to 32x32)."""
    folder = tmp_path_factory.mktemp("lenet")
    with app_folder(folder):
        run = train("arch=lenet", "trainer.epochs=3")
        assert run.code == 0, run.output
        yield run.folder / "last.pt"


def digit_pixels(n: int) -> list[torch.Tensor]:
    """The first `n` validation digits as 8-bit [8, 8] images (digits' 0..16 scaled to 0..255)."""
    data = load(OmegaConf.create({"name": "digits", "val_fraction": 0.2}), (1, 8, 8))
    x, _ = next(data.val.batches(n))
    return [(sample[0].float() * 255 / 16).round().to(torch.uint8) for sample in x]


def save_gray(pixels: torch.Tensor, path: Path) -> Path:
    Image.frombytes("L", (pixels.shape[1], pixels.shape[0]), bytes(pixels.flatten().tolist())).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five 8x8 digits as PNGs; the first also as a 40x24 stretched copy and as a 3-channel 16x16 copy."""
    folder = tmp_path_factory.mktemp("digits")
    paths = [save_gray(pixels, folder / f"digit{i}.png") for i, pixels in enumerate(digit_pixels(5))]
    with Image.open(paths[0]) as first:
        first.resize((24, 40), Image.NEAREST).save(folder / "tall.png")
        first.convert("RGB").resize((16, 16), Image.NEAREST).save(folder / "colour.png")
    return [*paths, folder / "tall.png", folder / "colour.png"]


LINE = re.compile(
    r"(?P<name>\S+): (?P<cls>\w+) \((?P<p>[\d.]+)\)(?:, heatmap for (?P<chosen>\w+) \([\d.]+\))? -> (?P<files>.+)"
)


def parse(out: str) -> list[re.Match]:
    lines = out.splitlines()
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return matches  # type: ignore[return-value]


def size_of(path: Path) -> tuple[int, int]:
    """An image file's (height, width)."""
    with Image.open(path) as image:
        return image.height, image.width


# -- explain ----------------------------------------------------------------------------------------------------


@needs_grad_cam
def test_explain_writes_a_heatmap_per_image_at_its_own_size(ckpt, images, tmp_path, capsys) -> None:
    args = (f"ckpt={ckpt}", f"out={tmp_path}", "npy=true", "size=0", "device=cpu")
    result = cnnforge(capsys, "explain", *args, *images)
    assert result.code == 0, result.err
    for line, image in zip(parse(result.out), images, strict=True):
        assert line["name"] == str(image)
        png, npy = (Path(f) for f in line["files"].split(", "))
        assert (png.parent, png.name, npy.name) == (
            tmp_path,
            f"{image.stem}.gradcam.conv3.png",
            f"{image.stem}.gradcam.conv3.npy",
        )
        with Image.open(png) as overlay:
            assert (overlay.format, overlay.mode, overlay.height, overlay.width) == ("PNG", "RGB", *size_of(image))
        heat = np.load(npy)
        assert (heat.shape, heat.dtype) == (size_of(image), np.float32)
        assert 0 <= heat.min() and heat.max() <= 1
        assert heat.max() - heat.min() > 0.2, heat  # not constant
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{image.stem}.gradcam.conv3{suffix}" for image in images for suffix in (".png", ".npy")
    )  # nothing else, no temporary files


@needs_grad_cam
@pytest.mark.parametrize(
    ("size", "digit", "tall"),
    [((), (256, 256), (427, 256)), (("size=100",), (100, 100), (167, 100)), (("size=24",), (24, 24), (40, 24))],
    ids=["default", "size=100", "size=24"],
)
def test_explain_enlarges_small_images(size, digit, tall, ckpt, images, tmp_path, capsys) -> None:
    """An 8x8 digit and a 40x24 one are enlarged bilinearly to `size` pixels (default 256) on their shorter side;
    an image as large already keeps its size; the .npy stays at the image's own size."""
    result = cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path}", "--npy", *size, images[0], images[5])
    assert result.code == 0, result.err
    for line, expected, own in zip(parse(result.out), (digit, tall), ((8, 8), (40, 24)), strict=True):
        png, npy = (Path(f) for f in line["files"].split(", "))
        assert size_of(png) == expected
        assert np.load(npy).shape == own
    with Image.open(tmp_path / "digit0.gradcam.conv3.png") as overlay:
        colours = len(np.unique(np.asarray(overlay).reshape(-1, 3), axis=0))
    assert colours > 64  # not 8x8 blocks of one colour each: bilinear, not nearest


@needs_grad_cam
def test_explain_predicts_what_predict_predicts(ckpt, images, tmp_path, capsys) -> None:
    explained = parse(cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path}", *images).out)
    predicted = cnnforge(capsys, "predict", f"ckpt={ckpt}", "top_k=1", *images).out.splitlines()
    assert [f"{m['name']}: {m['cls']} ({m['p']})" for m in explained] == predicted


@needs_grad_cam
def test_explain_never_overwrites(ckpt, images, tmp_path, capsys) -> None:
    image = images[0]
    (tmp_path / f"{image.stem}.gradcam.conv3.npy").write_bytes(b"mine")  # a name is taken only when free for both files
    for _ in range(2):
        assert cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path}", "--npy", image).code == 0
    assert (tmp_path / f"{image.stem}.gradcam.conv3.npy").read_bytes() == b"mine"
    stem = f"{image.stem}.gradcam.conv3"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{stem}.npy", f"{stem}-2.png", f"{stem}-2.npy", f"{stem}-3.png", f"{stem}-3.npy"]
    )


@needs_grad_cam
@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_heatmap(method: str, ckpt, images, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "explain", f"ckpt={ckpt}", f"method={method}", f"out={tmp_path}", "npy=true", images[5])
    assert result.code == 0, result.err
    (line,) = parse(result.out)
    heat = np.load(line["files"].split(", ")[1])
    assert heat.shape == size_of(images[5]) and 0 <= heat.min() and heat.max() <= 1


@needs_grad_cam
def test_explain_a_chosen_class_and_layer(ckpt, images, tmp_path, capsys) -> None:
    args = (f"ckpt={ckpt}", f"out={tmp_path}", "--npy", images[0])
    (predicted,) = parse(cnnforge(capsys, "explain", *args).out)
    other = str((int(predicted["cls"]) + 1) % 10)
    (chosen,) = parse(cnnforge(capsys, "explain", *args, f"class={other}", "layer=conv0", "method=GradCAMPlusPlus").out)
    assert (chosen["cls"], chosen["chosen"]) == (predicted["cls"], other)
    assert Path(chosen["files"].split(", ")[0]).name == f"digit0.gradcam++.conv0.class{other}.png"
    assert not np.allclose(np.load(predicted["files"].split(", ")[1]), np.load(chosen["files"].split(", ")[1]))


def canvas(pixels: torch.Tensor, corner: int, side: int = 16) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """An 8x8 digit in one corner of a black side x side image, and where it is."""
    image = torch.zeros(side, side, dtype=torch.uint8)
    top, left = divmod(corner, 2)
    rows, columns = slice(top * (side - 8), top * (side - 8) + 8), slice(left * (side - 8), left * (side - 8) + 8)
    image[rows, columns] = pixels
    return image, (rows, columns)


@needs_grad_cam
def test_the_heat_lies_on_the_digit(ckpt, tmp_path, capsys) -> None:
    """A digit in a corner of a blank canvas four times its area: the quarter holding it holds well over a
    quarter of the heat, on average over 20 digits (0.5 to 0.8 for the models tried; over 0.4 asserted)."""
    placed = [canvas(pixels, i % 4) for i, pixels in enumerate(digit_pixels(20))]
    paths = [save_gray(image, tmp_path / f"placed{i}.png") for i, (image, _) in enumerate(placed)]
    result = cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path / 'out'}", "npy=true", *paths)
    assert result.code == 0, result.err
    shares = []
    for line, (_, where) in zip(parse(result.out), placed, strict=True):
        heat = np.load(line["files"].split(", ")[1])
        shares.append(heat[where].sum() / heat.sum())
    assert np.mean(shares) > 0.4, shares


@needs_grad_cam
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ("method=gradcamm",),
            f"method=gradcamm: no such method (did you mean 'gradcam'?); methods: {', '.join(METHODS)}",
        ),
        (
            ("layer=conv9",),
            f"layer=conv9: no such layer 'conv9' in lenet5 (did you mean 'conv3'?); {LENET_MAPS}",
        ),
        (
            ("layer=linear7",),
            f"layer=linear7: linear7 (linear) gives [120], not a feature map [C, H, W]; {LENET_MAPS}",
        ),
        (("class=ten",), "class=ten: not a class name, nor an index below 10; classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),
        (("class=10",), "class=10: not a class name, nor an index below 10 (did you mean '1'?); classes: 0, 1,"),
        (("npy=yes",), "npy=yes: needs true or false"),
        (("methd=gradcam",), "unknown option 'methd' (options: ckpt, method, layer, class, out, npy, size, device)"),
        (("size=-1",), "size=-1: needs a whole number, 0 or more"),
    ],
    ids=str,
)
def test_explain_usage_errors(args, problem: str, ckpt, images, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path}", *args, images[0])
    assert result.code == 2
    assert result.err.startswith(f"cnnforge explain: {problem}")
    assert "Traceback" not in result.err and result.out == ""
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args", [(), ("ckpt=x.pt",), ("digit.png",)], ids=str)
def test_explain_needs_a_checkpoint_and_images(args, capsys) -> None:
    result = cnnforge(capsys, "explain", *args)
    assert result.code == 2
    assert result.err.startswith("cnnforge explain: usage: cnnforge explain ckpt=PATH")


@needs_grad_cam
def test_explain_missing_checkpoint(tmp_path, capsys) -> None:
    result = cnnforge(capsys, "explain", f"ckpt={tmp_path / 'none.pt'}", "digit.png")
    assert (result.code, result.err) == (
        1,
        f"cnnforge explain: error: {tmp_path / 'none.pt'}: no such checkpoint file\n",
    )


@needs_grad_cam
def test_explain_bad_image(ckpt, images, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = cnnforge(capsys, "explain", f"ckpt={ckpt}", f"out={tmp_path / 'out'}", bad, images[0])
    assert result.code == 1
    assert [m["name"] for m in parse(result.out)] == [str(images[0])]
    assert result.err.startswith(f"{bad}: error: cannot read image")


@needs_grad_cam
@pytest.mark.parametrize("command", ["explain", "features"])
def test_huge_images_are_refused_and_the_others_done(command, ckpt, images, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as a 12000 x 12000 image is to the default bound
    huge = tmp_path / "huge.png"
    Image.new("L", (40, 40)).save(huge)
    result = cnnforge(capsys, command, f"ckpt={ckpt}", f"out={tmp_path / 'out'}", huge, images[0])
    assert result.code == 1
    assert result.err == (
        f"{huge}: error: refused: Image size (1600 pixels) exceeds limit of 1000 pixels, could be decompression "
        "bomb DOS attack.\n"
    )
    assert [line.partition(":")[0] for line in result.out.splitlines()] == [str(images[0])]
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_features_on_a_full_disk_is_one_line(ckpt, images, tmp_path, capsys, monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path / 'out'}", images[0])
    assert (result.code, result.out) == (1, "")
    expected = f"{tmp_path / 'out' / 'digit0.conv3.png'}: cannot write: No space left on device"
    assert result.err == f"cnnforge features: error: {expected}\n"
    assert list((tmp_path / "out").iterdir()) == []


@needs_grad_cam
def test_an_output_folder_that_cannot_be_made(ckpt, images, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("")
    for command in ("explain", "features"):
        result = cnnforge(capsys, command, f"ckpt={ckpt}", f"out={tmp_path / 'file'}", images[0])
        assert result.code == 1
        assert result.err.startswith(f"cnnforge {command}: error: [Errno 17] File exists")


def test_explain_without_grad_cam(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # as if not installed
    result = cnnforge(capsys, "explain", f"ckpt={tmp_path / 'none.pt'}", "digit.png")
    assert result.code == 2
    version = importlib.metadata.version("torch")
    assert result.err.startswith(
        f"cnnforge explain: needs the explain extra: pip install 'torch=={version}' torchvision (the torchvision "
        "built for that torch; on a CPU-only machine add --index-url https://download.pytorch.org/whl/cpu), then "
        "pip install 'cnnforge[explain]'"
    )


def test_explain_help_lists_the_methods(capsys) -> None:
    result = cnnforge(capsys, "explain", "--help")
    assert result.code == 0
    assert all(method in result.out for method in METHODS)
    assert "explain" in cnnforge_help(capsys) and "features" in cnnforge_help(capsys)


def cnnforge_help(capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main(["--help"])
    return capsys.readouterr().out


# -- features ---------------------------------------------------------------------------------------------------


def tiles_drawn(path: Path, expected: grid.Grid) -> None:
    """The PNG is `expected`'s size, with something drawn in each tile's box and only white between boxes."""
    with Image.open(path) as image:
        assert image.format == "PNG" and (image.width, image.height) == expected.size
        pixels = np.asarray(image.convert("RGB"))
    white = (pixels == 255).all(axis=2)
    covered = np.zeros_like(white)
    for i in range(expected.count):
        left, top, w, h = expected.box(i)
        assert not white[top : top + h, left : left + w].all(), f"tile {i} is empty"
        covered[top - grid.LABEL : top + h, left : left + w] = True  # the tile and its label
    covered[: grid.TITLE] = True
    assert white[~covered].all()  # nothing outside the tiles, their labels and the title


def test_features_a_tile_per_channel(ckpt, images, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", images[0], images[5])
    assert result.code == 0, result.err
    first, tall = (Path(line.rpartition(" -> ")[2]) for line in result.out.splitlines())
    assert result.out.splitlines()[0] == f"{images[0]}: conv3 [16, 10, 10] -> {first}"
    assert (first.name, tall.name) == ("digit0.conv3.png", "tall.conv3.png")
    assert grid.layout(16, (10, 10)).columns == 4
    tiles_drawn(first, grid.layout(16, (10, 10)))  # the maps are the spec's size, whatever the image's


def test_features_of_a_layer_and_the_filters(ckpt, images, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", "layer=conv0", "--filters", images[0])
    assert result.code == 0, result.err
    filters, maps = result.out.splitlines()
    assert filters == f"filters of conv0 [6, 1, 5, 5] -> {tmp_path / 'lenet5.conv0.filters.png'}"
    assert maps == f"{images[0]}: conv0 [6, 28, 28] -> {tmp_path / 'digit0.conv0.png'}"
    tiles_drawn(tmp_path / "lenet5.conv0.filters.png", grid.layout(6, (5, 5)))
    tiles_drawn(tmp_path / "digit0.conv0.png", grid.layout(6, (28, 28)))
    with Image.open(tmp_path / "digit0.conv0.png") as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for end in (0, 1):  # each map stretched to its own range: the colour map's both ends appear
        colour = np.round(np.array(grid_colour(end)) * 255)
        assert (np.abs(pixels - colour).max(axis=1) <= 2).any()


def grid_colour(value: float) -> tuple[float, float, float]:
    from matplotlib import colormaps

    return colormaps["viridis"](value)[:3]


@pytest.mark.parametrize(
    ("size", "expected", "scale"), [((), (360, 286), 4), (("size=0",), (108, 118), 1)], ids=["default", "size=0"]
)
def test_features_of_an_8x8_digit_are_enlarged(size, expected, scale, ckpt, images, tmp_path, capsys) -> None:
    """conv0's six 28x28 maps, 3 columns by 2 rows: by default each map scaled 4 times, the least whole factor
    that makes the image 256 pixels or more on its shorter side (3 gives 276 x 230), each map pixel a block of
    4 x 4; with size=0 each map at its own size."""
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", "layer=conv0", *size, images[0])
    assert result.code == 0, result.err
    path = tmp_path / "digit0.conv0.png"
    assert size_of(path)[::-1] == expected  # (width, height): 6 + 3 * (28s + 6) by 22 + 2 * (14 + 28s + 6)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    left, top = 6, 22 + 14  # the first tile's corner
    tile = pixels[top : top + 28 * scale, left : left + 28 * scale]
    assert np.array_equal(tile, np.repeat(np.repeat(tile[::scale, ::scale], scale, axis=0), scale, axis=1))
    assert len({tuple(p) for p in tile[::scale, ::scale].reshape(-1, 3)}) > 20  # a map, not a flat colour


def test_features_filters_alone(ckpt, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", "filters=true")
    assert result.code == 0, result.err
    assert [p.name for p in tmp_path.iterdir()] == ["lenet5.conv0.filters.png"]


def test_filter_tiles_of_colour_and_many_channels(tmp_path: Path) -> None:
    from cnnforge.use.features import filter_tiles

    tiles, labels, columns = filter_tiles(torch.randn(4, 3, 5, 5))
    assert (tuple(tiles.shape), labels, columns) == ((4, 5, 5, 3), ["0", "1", "2", "3"], None)
    png = tmp_path / "colour.png"
    with open(png, "wb") as file:
        grid.draw(file, grid.normalised(tiles.numpy()), labels, "colour filters")
    tiles_drawn(png, grid.layout(4, (5, 5)))
    tiles, labels, columns = filter_tiles(torch.randn(4, 2, 3, 3))
    assert (tuple(tiles.shape), labels[:3], columns) == ((8, 3, 3), ["0:0", "0:1", "1:0"], 2)
    assert (grid.layout(8, (3, 3), columns).rows, grid.layout(8, (3, 3), columns).columns) == (4, 2)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("layer=flatten6", "digit.png"), "layer=flatten6: flatten6 (flatten) gives [400], not a feature map"),
        (("layer=con3", "digit.png"), "layer=con3: no such layer 'con3' in lenet5 (did you mean 'conv3'?)"),
        (("filters=maybe",), "filters=maybe: needs true or false"),
        (("size=big", "digit.png"), "size=big: needs a whole number, 0 or more"),
        ((), "usage: cnnforge features ckpt=PATH"),
    ],
    ids=str,
)
def test_features_usage_errors(args, problem: str, ckpt, tmp_path, capsys) -> None:
    result = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", *args)
    assert result.code == 2
    assert result.err.startswith(f"cnnforge features: {problem}")
    assert "Traceback" not in result.err and result.out == ""


# -- new files --------------------------------------------------------------------------------------------------


def test_write_new_takes_the_first_free_name_for_all_suffixes(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"old")
    (tmp_path / "a-2.png").write_bytes(b"old")

    def writer(data: bytes):
        return lambda file: file.write(data)

    paths = write_new(tmp_path, "a", {".png": writer(b"png"), ".npy": writer(b"npy")})
    assert paths == [tmp_path / "a-3.png", tmp_path / "a-3.npy"]
    assert [p.read_bytes() for p in paths] == [b"png", b"npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.png", "a-3.npy", "a-3.png", "a.npy"]
