"""`cnnforge draw`: stages, sizes, a layout without overlaps, the command, and the committed images."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnforge.cli import main
from cnnforge.compiler import Compiled, compile_file
from cnnforge.diagram import layout as geometry
from cnnforge.diagram.stages import compact, stages

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["lenet", "alexnet", "alexnet2012"]
IMAGES = ROOT / "docs" / "images"


def vgg30() -> str:
    """VGG-11 with batchnorm, 30 layers."""
    layers, c = [], 3
    for stage in ([64], [128], [256, 256], [512, 512], [512, 512]):
        for o in stage:
            layers += [f"{{type: conv, shape: [{c}, {o}, 3, 3], padding: 1}}", "{type: batchnorm}", "{type: relu}"]
            c = o
        layers.append("{type: maxpool, kernel: 2}")
    layers += ["{type: flatten}", "{type: linear, shape: [25088, 10]}"]
    return "name: vgg11_bn\ninput: [3, 224, 224]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers[:30])


def plain30() -> str:
    """30 layers that are all stages: 28 convs, a global pool and a linear layer."""
    layers, c = [], 3
    for i in range(28):
        o = 16 * 2 ** (i // 10)
        layers.append(f"{{type: conv, shape: [{c}, {o}, 3, 3], padding: 1, stride: {2 if i in (10, 20) else 1}}}")
        c = o
    layers += ["{type: adaptive_avgpool, output: 1}", f"{{type: linear, shape: [{c}, 10]}}"]
    layers.insert(29, "{type: flatten}")
    return "name: plain30\ninput: [3, 32, 32]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("specs")
    found = {name: ROOT / "architectures" / f"{name}.yaml" for name in SHIPPED}
    for name, text in (("vgg30", vgg30()), ("plain30", plain30())):
        found[name] = folder / f"{name}.yaml"
        found[name].write_text(text)
    return found


def test_lenet_stages() -> None:
    found = stages(compile_file(ROOT / "architectures" / "lenet.yaml"))
    assert [s.operation for s in found] == [
        "input",
        "conv 5x5",
        "avgpool 2x2 /2",
        "conv 5x5",
        "avgpool 2x2 /2",
        "linear",
        "linear",
        "linear",
    ]
    assert [s.after for s in found] == ["", "tanh", "", "tanh", "flatten", "tanh", "tanh", ""]
    assert [list(s.shape) for s in found] == [[1, 32, 32], [6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5],
                                              [120], [84], [10]]  # fmt: skip
    assert [s.role for s in found] == ["input", "conv", "pool", "conv", "pool", "linear", "linear", "linear"]
    assert [s.params for s in found] == [0, 156, 0, 2416, 0, 48120, 10164, 850]


def test_pointwise_layers_join_the_stage_before_them() -> None:
    found = stages(compile_file(ROOT / "architectures" / "alexnet.yaml"))
    pool = next(s for s in found if s.head and s.head.name == "maxpool12")
    assert pool.after == "adaptive_avgpool · flatten · dropout"  # 6x6 -> 6x6 changes nothing
    assert [s.after for s in found if s.head and s.head.name.startswith("linear")] == ["relu · dropout", "relu", ""]
    paper = stages(compile_file(ROOT / "architectures" / "alexnet2012.yaml"))
    assert [(s.operation, s.after) for s in paper[1:3]] == [("conv 11x11 /4", "relu · lrn"), ("maxpool 3x3 /2", "")]
    assert paper[3].operation == "conv 5x5, 2 groups"


@pytest.mark.parametrize("name", [*SHIPPED, "vgg30", "plain30"])
def test_stages_add_up_to_the_totals(specs: dict[str, Path], name: str) -> None:
    compiled = compile_file(specs[name])
    found = stages(compiled)
    assert sum(len(s.layers) for s in found) == len(compiled.layers)
    assert sum(s.params for s in found) == compiled.total_params
    assert sum(s.macs for s in found) == compiled.total_macs()


def test_operations_of_odd_windows(tmp_path: Path) -> None:
    spec = tmp_path / "odd.yaml"
    spec.write_text(
        "name: odd\ninput: [3, 64, 256]\nlayers:\n"
        "  - {type: conv, shape: [3, 8, 7, 1], stride: [2, 4], padding: [3, 0]}\n"
        "  - {type: maxpool, kernel: [2, 4], dilation: 2}\n"
        "  - {type: adaptive_maxpool, output: [1, 2]}\n"
        "  - {type: conv, shape: [8, 4, 1, 1], dilation: 2}\n"
    )
    assert [s.operation for s in stages(compile_file(spec))] == [
        "input",
        "conv 7x1 /2x4",
        "maxpool 2x4 /2x4, dilation 2",
        "adaptive_maxpool → 1x2",
        "conv 1x1, dilation 2",
    ]


def test_compact_counts() -> None:
    numbers = [0, 156, 999, 1000, 2420, 999_999, 70_276_800, 1_850_000_000]
    assert [compact(n) for n in numbers] == ["0", "156", "999", "1k", "2.42k", "1M", "70.3M", "1.85G"]


def test_sizes_grow_with_the_shape_but_compressed() -> None:
    compiled = compile_file(ROOT / "architectures" / "alexnet.yaml")
    found = stages(compiled)
    side = geometry.unit(found)
    boxes = {s.head.name if s.head else "input": geometry.cuboid(s, side) for s in found}
    assert boxes["input"].height == pytest.approx(geometry.TALLEST)  # 224 rows
    assert boxes["input"].height / boxes["conv6"].height == pytest.approx((224 / 13) ** 0.5)  # 13 rows
    assert boxes["conv6"].width > boxes["conv8"].width > boxes["input"].width  # 384, 256 and 3 channels
    assert boxes["linear16"].height > boxes["linear21"].height  # 4096 and 1000 features


def test_huge_maps_are_drawn_on_a_page(tmp_path: Path) -> None:
    """Sides grow with roots only up to LONGEST: a [1, 2^31 - 1, 2^31 - 1] input (185,000 points high uncapped)
    and 2^93 features (10^10 points) give a drawing of a page, and a PNG of it comes quickly."""
    big = 2**31 - 1
    path = tmp_path / "huge.yaml"
    path.write_text(
        f"name: huge\ninput: [1, {big}, {big}]\nlayers:\n  - {{type: conv, shape: [1, {big}, 1, 1]}}\n"
        "  - {type: relu}\n  - {type: flatten}\n"
    )
    placed = geometry.layout(stages(compile_file(path)), "huge", lambda text, size, bold: 0.6 * size * len(text))
    longest = max(max(c.box.width, c.box.height, c.box.dx / geometry.OBLIQUE * 2**0.5) for c in placed.columns)
    assert longest == pytest.approx(geometry.LONGEST)
    assert placed.width < 2000 and placed.height < 1000
    start = time.perf_counter()
    assert main(["draw", str(path), "-o", str(tmp_path / "huge.png")]) == 0
    assert time.perf_counter() - start < 30
    assert (tmp_path / "huge.png").stat().st_size < 1_000_000


def test_a_kernel_larger_than_its_map_covers_the_map_and_no_more(tmp_path: Path) -> None:
    """A padded 3x3 or 5x5 kernel on a 2x2 map is drawn as the whole map's face, not past it into the labels."""
    import matplotlib
    from matplotlib.colors import to_hex
    from matplotlib.patches import Polygon

    from cnnforge.diagram import draw

    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\ninput: [4, 2, 2]\nlayers:\n  - {type: conv, shape: [4, 4, 3, 3], padding: 1}\n"
        "  - {type: conv, shape: [4, 4, 5, 5], padding: 2}\n"
    )
    compiled = compile_file(path)
    with matplotlib.rc_context(draw.RC):
        (axes,) = draw.figure(compiled).axes
    kernels = [p.get_xy() for p in axes.patches if isinstance(p, Polygon) and to_hex(p.get_edgecolor()) == draw.KERNEL]
    faces = [c.box for c in geometry.layout(stages(compiled), "small", draw.measure).columns]
    assert len(kernels) == 2
    for corners in kernels:  # on the right face (H x W) of the map it reads
        (x0, y0), (x1, y1) = corners.min(axis=0) + 1e-6, corners.max(axis=0) - 1e-6
        assert any(box.x + box.width <= x0 and x1 <= box.right and box.y <= y0 and y1 <= box.top for box in faces)


# --- the drawing: nothing overlaps, rows wrap ------------------------------------------------------------------


def drawn(compiled: Compiled, max_width: float = geometry.MAX_WIDTH) -> tuple[list, list, object]:
    """(text, extent) of every label, the extents of boxes and lines, and the figure's extent, in pixels."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnforge.diagram import draw

    with matplotlib.rc_context(draw.RC):
        figure = draw.figure(compiled, max_width)
        renderer = FigureCanvasAgg(figure).get_renderer()
        (axes,) = figure.axes
        texts = [(t.get_text(), t.get_window_extent(renderer)) for t in axes.texts]
        shapes = [p.get_window_extent(renderer) for p in axes.patches]
        shapes += [line.get_window_extent(renderer) for line in axes.lines]
        return texts, shapes, figure.bbox


def apart(a, b, tolerance: float = 0.5) -> bool:
    return a.x1 <= b.x0 + tolerance or b.x1 <= a.x0 + tolerance or a.y1 <= b.y0 + tolerance or b.y1 <= a.y0 + tolerance


@pytest.mark.parametrize("name", [*SHIPPED, "vgg30", "plain30"])
def test_no_label_overlaps_anything(specs: dict[str, Path], name: str) -> None:
    texts, shapes, figure = drawn(compile_file(specs[name]))
    for i, (text, extent) in enumerate(texts):
        assert figure.x0 <= extent.x0 and extent.x1 <= figure.x1 + 0.5, f"{text!r} leaves the drawing"
        assert figure.y0 <= extent.y0 and extent.y1 <= figure.y1 + 0.5, f"{text!r} leaves the drawing"
        for other, other_extent in texts[i + 1 :]:
            assert apart(extent, other_extent), f"{text!r} overlaps {other!r}"
        for shape in shapes:
            assert apart(extent, shape), f"{text!r} overlaps a box or line at {shape}"


@pytest.mark.parametrize("name", ["vgg30", "plain30"])
def test_long_specs_wrap_into_rows(specs: dict[str, Path], name: str) -> None:
    placed = geometry.layout(stages(compile_file(specs[name])), name, lambda text, size, bold: 0.6 * size * len(text))
    rows = sum(column.entry for column in placed.columns) + 1
    assert rows >= 2
    assert placed.width <= geometry.MAX_WIDTH + 2 * geometry.MARGIN + geometry.ARROW
    assert [column.exit for column in placed.columns].count(True) == rows - 1
    starts = [column for column in placed.columns if column.entry or column is placed.columns[0]]
    ends = [column for column in placed.columns if column.exit] + [placed.columns[-1]]
    lengths = [end.x + end.span / 2 - (start.x - start.span / 2) for start, end in zip(starts, ends, strict=True)]
    assert min(lengths) > 0.7 * max(lengths), lengths  # evenly long: VGG-11's once 622, 550 and 59 points


# --- the command -----------------------------------------------------------------------------------------------


def test_draw_svg_and_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = ROOT / "architectures" / "alexnet.yaml"
    assert main(["draw", str(spec), "-o", str(tmp_path / "net.svg"), "--set", "classes=10"]) == 0
    assert main(["draw", str(spec), "-o", str(tmp_path / "net.png")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{tmp_path / name}: alexnet, drawn from {spec}" for name in ("net.svg", "net.png")]
    assert err == ""
    svg = (tmp_path / "net.svg").read_text()
    assert "alexnet: [3, 224, 224] → [10], 57,044,810 params" in labels(svg)[0]
    assert (tmp_path / "net.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.png", "net.svg"]  # no temporary files left


def test_draw_is_the_same_every_time(tmp_path: Path) -> None:
    spec = str(ROOT / "architectures" / "lenet.yaml")
    assert main(["draw", spec, "-o", str(tmp_path / "a.svg")]) == 0
    assert main(["draw", spec, "-o", str(tmp_path / "b.svg")]) == 0
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_draw_names_the_output_after_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["draw", str(ROOT / "architectures" / "lenet.yaml")]) == 0
    assert (tmp_path / "lenet.svg").is_file()


def test_draw_never_replaces_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    spec = ROOT / "architectures" / "lenet.yaml"
    Path("lenet.svg").write_text("my own drawing")
    Path("photo.png").write_bytes(b"my photo")
    assert main(["draw", str(spec)]) == 0
    assert main(["draw", str(spec)]) == 0
    assert main(["draw", str(spec), "-o", "photo.png"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{name}: lenet5, drawn from {spec}" for name in ("lenet-2.svg", "lenet-3.svg", "photo-2.png")
    ]
    assert Path("lenet.svg").read_text() == "my own drawing" and Path("photo.png").read_bytes() == b"my photo"
    assert Path("lenet-2.svg").read_bytes() == Path("lenet-3.svg").read_bytes()
    assert Path("photo-2.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(os.listdir()) == ["lenet-2.svg", "lenet-3.svg", "lenet.svg", "photo-2.png", "photo.png"]


def test_draw_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\ninput: [3, 32, 32]\nlayers:\n  - {type: conv, shape: [4, 8, 3, 3]}\n")
    assert main(["draw", str(broken), "-o", str(tmp_path / "x.svg")]) == 1
    _, err = capsys.readouterr()
    assert err.startswith(f"{broken}:4:5: error: layer 0 'conv0' (conv): shape says C_i=4")
    assert main(["draw", str(ROOT / "architectures" / "lenet.yaml"), "-o", str(tmp_path / "x.pdf")]) == 2
    _, err = capsys.readouterr()
    assert err == f"cnnforge draw: {tmp_path / 'x.pdf'}: the file name must end in .svg or .png\n"
    missing = tmp_path / "no" / "such" / "x.svg"
    assert main(["draw", str(ROOT / "architectures" / "lenet.yaml"), "-o", str(missing)]) == 1
    _, err = capsys.readouterr()
    assert err == f"cnnforge draw: error: {missing}: cannot write: No such file or directory\n"
    assert not list(tmp_path.glob("*.svg")) and not list(tmp_path.glob(".*"))


def test_draw_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delitem(sys.modules, "cnnforge.diagram.draw", raising=False)
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    assert main(["draw", str(ROOT / "architectures" / "lenet.yaml"), "-o", str(tmp_path / "x.svg")]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("cnnforge draw: needs matplotlib (pip install 'cnnforge[train]'): ")


NO_TORCH = """
import sys
import time
from cnnforge.cli import main
code = main(["draw", "architectures/alexnet2012.yaml", "-o", sys.argv[1]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchinfo", "hydra", "omegaconf"})
print(code, heavy, file=sys.stderr)
"""


def test_draw_does_not_import_torch(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path / "x.svg")], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "0 []"


# --- the images in docs/ are what `cnnforge draw` draws now ----------------------------------------------------


def labels(svg: str) -> list[str]:
    """The text of an SVG that matplotlib wrote with text as paths: it names each text in a comment."""
    return re.findall(r"<!-- (.*?) -->", svg)


def size(svg: str) -> tuple[float, float]:
    match = re.search(r'<svg [^>]*width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    assert match
    return round(float(match[1])), round(float(match[2]))


@pytest.mark.parametrize("name", SHIPPED)
def test_committed_images_are_up_to_date(tmp_path: Path, name: str) -> None:
    committed = (IMAGES / f"{name}.svg").read_text()
    assert main(["draw", str(ROOT / "architectures" / f"{name}.yaml"), "-o", str(tmp_path / "now.svg")]) == 0
    now = (tmp_path / "now.svg").read_text()
    hint = f"redraw it: cnnforge draw architectures/{name}.yaml -o docs/images/{name}.svg"
    assert labels(committed) == labels(now), hint
    assert size(committed) == size(now), hint
    assert len(re.findall("<path", committed)) == len(re.findall("<path", now)), hint
