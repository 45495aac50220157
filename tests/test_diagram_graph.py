"""`cnnforge draw` of graphs: a skip connection as an arc past its block, branches side by side, groups framed and
alike repetitions folded as ×N, a frame wider than the page wrapped into rows; ResNet-50 and MobileNetV2 on a page,
and nothing drawn over anything else."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from cnnforge.cli import main
from cnnforge.compiler import Compiled, compile_file
from cnnforge.diagram import layout as geometry
from cnnforge.diagram.stages import Fork, Frame, Stage, flat, plan
from cnnforge.outline import Block, Node, outline, walk

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SPECS = {
    "resnet18": ROOT / "architectures" / "resnet18.yaml",
    "resnet50": ROOT / "architectures" / "resnet50.yaml",
    "mobilenet_v2": ROOT / "architectures" / "mobilenet_v2.yaml",  # all but the classifier in one frame
    "vgg16": ROOT / "architectures" / "vgg16.yaml",  # the same, with the input alone before it
    "dense": DATA / "dense-block.yaml",
    "inception": DATA / "inception.yaml",
    "nested": DATA / "nested.yaml",
    "features": DATA / "features.yaml",  # VGG-16's layers in one frame
}


def svg_of(name: str, tmp_path: Path) -> str:
    out = tmp_path / f"{name}.svg"
    assert main(["draw", str(SPECS[name]), "-o", str(out)]) == 0
    return out.read_text()


def labels(svg: str) -> list[str]:
    """The text of an SVG that matplotlib wrote with text as paths: it names each text in a comment."""
    return re.findall(r"<!-- (.*?) -->", svg)


def ids(svg: str, prefix: str) -> list[str]:
    return re.findall(rf'<g id="({prefix}\d+)">', svg)


def size(svg: str) -> tuple[float, float]:
    match = re.search(r'<svg [^>]*width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    assert match
    return float(match[1]), float(match[2])


def test_resnet18_draws_each_residual_with_its_shortcut(tmp_path: Path, capsys) -> None:
    svg = svg_of("resnet18", tmp_path)
    text = labels(svg)
    # layer1's two blocks are alike and drawn once; layer2-4 each have a block with a downsample, then one without
    assert [t for t in text[1:] if t.startswith("layer") or "] → [" in t] == [  # the title aside
        "layer1: basic ×2",
        "[64, 56, 56] → [64, 56, 56] · 148k params · 462M MACs",  # both blocks: 2 x 73,984 params
        "layer2.0: basic",
        "layer2.1: basic",
        "layer3.0: basic",
        "layer3.1: basic",
        "layer4.0: basic",
        "layer4.1: basic",
    ]
    assert len(ids(svg, "skip")) == 4 == text.count("shortcut") - 3  # an arc per identity shortcut drawn
    assert text.count("body") == 7 and text.count("downsample.conv0") == 3  # a lane per branch with layers
    assert len(ids(svg, "frame")) == 7
    assert text.count("add0") == 7 and text.count("relu") >= 7  # where the branches meet, and the relu after it


def test_resnet50_folds_its_stages_onto_a_page(tmp_path: Path) -> None:
    svg = svg_of("resnet50", tmp_path)
    text = labels(svg)
    titles = [t for t in text if re.match(r"layer\d\.", t)]
    assert titles == [
        "layer1.0: bottleneck",
        "layer1.1–2: bottleneck ×2",
        "layer2.0: bottleneck",
        "layer2.1–3: bottleneck ×3",
        "layer3.0: bottleneck",
        "layer3.1–5: bottleneck ×5",
        "layer4.0: bottleneck",
        "layer4.1–2: bottleneck ×2",
    ]
    assert "[1024, 14, 14] → [1024, 14, 14] · 5.59M params · 1.09G MACs" in text  # 5 x 1,117,184 params
    assert len(ids(svg, "skip")) == 4 and len(ids(svg, "frame")) == 8
    width, height = size(svg)
    assert width <= 1200 and height <= 1700, (width, height)  # a page: A2 as drawn, A4 at half size
    assert 1.2 <= height / width <= 1.6


def test_the_committed_resnet50_drawing_is_up_to_date(tmp_path: Path) -> None:
    committed = (ROOT / "docs" / "images" / "resnet50.svg").read_text()
    now = svg_of("resnet50", tmp_path)
    hint = "redraw it: cnnforge draw architectures/resnet50.yaml -o docs/images/resnet50.svg"
    assert labels(committed) == labels(now), hint
    assert size(committed) == size(now), hint
    assert len(re.findall("<path", committed)) == len(re.findall("<path", now)), hint


def test_repetitions_that_differ_are_not_folded_and_every_node_is_drawn_or_folded() -> None:
    compiled = compile_file(SPECS["resnet50"])
    parts = flat(plan(compiled))
    drawn = {layer.index for part in parts if isinstance(part, Stage) for layer in part.layers}
    drawn |= {layer.index for part in parts if isinstance(part, Fork) for layer in (part.merge, *part.followers)}
    frames = [part for part in parts if isinstance(part, Frame)]
    assert sum(frame.times for frame in frames) == 16  # blocks
    reps = {item.group.path: item for item in walk(outline(compiled)) if isinstance(item, Block)}
    folded = set()
    for frame in frames:
        first = int(frame.group.name)
        for number in range(first + 1, first + frame.times):
            rep = reps[f"{frame.group.parent}.{number}"]
            folded |= {item.layer.index for item in walk(rep.items) if isinstance(item, Node)}
    assert not drawn & folded
    assert drawn | folded == set(range(len(compiled.layers)))


def test_densenet_block_is_one_folded_layer_with_its_input_carried_past(tmp_path: Path) -> None:
    svg = svg_of("dense", tmp_path)
    text = labels(svg)
    assert "denseblock1: denselayer ×6" in text
    assert "[64, 56, 56] → [256, 56, 56] · 335k params · 1.04G MACs" in text
    assert len(ids(svg, "skip")) == 1 and "input" in text and "new" in text  # the arc carries the input past
    assert [text[text.index("concat0") + 1]] == ["[96, 56, 56]"]  # the first repetition's, as drawn
    width, height = size(svg)
    assert width <= 700 and height <= 400


def test_inception_branches_are_side_by_side(tmp_path: Path) -> None:
    text = labels(svg_of("inception", tmp_path))
    assert {"b1x1", "b3x3", "b5x5", "pool", "mixed", "x", "gate", "scale"} <= set(text)
    placed = layout_of(compile_file(SPECS["inception"]))
    centre = {c.stage.head.path: c.box.y + (c.box.height + c.box.dy) / 2 for c in placed.columns if c.stage.head}
    lanes = [["conv"], ["reduce3", "conv3"], ["reduce5", "conv5"], ["pool", "project"]]
    heights = [{centre[path] for path in lane} for lane in lanes]
    assert all(len(h) == 1 for h in heights)  # each branch on one line
    assert [h.pop() for h in heights] == sorted((y for y in {centre[lane[0]] for lane in lanes}), reverse=True)
    starts = {c.stage.head.path: c.box.x for c in placed.columns if c.stage.head}
    assert len({round(starts[lane[0]]) for lane in lanes[:3]}) == 1  # starting from the same split
    (mixed,) = [join for join in placed.joins if join.lines[0][0] == "mixed"]
    assert mixed.op == "concat" and mixed.x > max(c.box.right for c in placed.columns if c.stage.label == "project")


def test_nested_groups_nest_their_frames_and_a_repeated_layer_folds(tmp_path: Path) -> None:
    text = labels(svg_of("nested", tmp_path))
    assert sorted(t for t in text if t.endswith((": stage", "×2", "×3"))) == [
        "plain: conv ×3",
        "s1: stage",
        "units: twin ×2",
    ]
    assert {"left", "right", "a", "b", "x", "y", "concat2", "add0", "add3"} <= set(text)
    assert "extra" not in text  # a sequence that `when` leaves empty draws nothing
    placed = layout_of(compile_file(SPECS["nested"]))
    stage, units = (next(b for b in placed.boxes if b.title[0] == title) for title in ("s1: stage", "units: twin ×2"))
    assert stage.x0 < units.x0 and units.x1 < stage.x1 and stage.y0 < units.y0 and units.y1 < stage.y1


def test_a_frame_wider_than_the_page_wraps_into_rows_inside_it() -> None:
    placed = layout_of(compile_file(SPECS["features"]))
    (frame,) = placed.boxes
    held = [c for c in placed.columns if frame.x0 < c.box.x and c.box.right < frame.x1 and frame.y0 < c.box.y]
    assert len(held) == 18  # 13 convs and 5 pools, each with its labels in the frame
    assert all(frame.y0 < c.label_top - len(c.lines) * geometry.FONT * geometry.LINE for c in held)
    rows = 1 + sum(c.entry for c in held)
    assert rows >= 2 and [c.exit for c in held].count(True) == rows - 1  # an arrow from each row to the next
    outside = [(c.stage.label, c.entry, c.exit) for c in placed.columns if c not in held]
    assert outside == [("input", False, False), ("flatten1", True, False), ("linear2", False, False)]  # the frame
    # leaves from its last row, so it ends its row too: what follows starts the next
    assert frame.x1 - frame.x0 <= placed.width and placed.height <= geometry.PAGE * placed.width


def test_mobilenet_v2_wraps_its_features_onto_a_page(tmp_path: Path) -> None:
    """torchvision's layout puts all but the classifier in `features`: its frame wraps into rows, not one strip
    (once 24,890 x 1,300 px)."""
    svg = svg_of("mobilenet_v2", tmp_path)
    width, height = size(svg)
    assert width <= 1300 and 1.0 <= height / width <= geometry.PAGE, (width, height)
    features = next(box for box in layout_of(compile_file(SPECS["mobilenet_v2"])).boxes if box.title == ["features"])
    assert features.y1 - features.y0 > 0.7 * height  # its rows fill most of the page


def test_a_wrapped_frame_starts_beside_the_stages_before_it() -> None:
    """torchvision's `features` is drawn from the input's row on, not under an input left alone on a row."""
    placed = layout_of(compile_file(SPECS["vgg16"]))
    first = placed.columns[0]
    features = next(box for box in placed.boxes if box.title == ["features"])
    assert first.stage.label == "input" and not first.exit
    assert first.box.right < features.x0 and features.y0 < first.box.y < features.y1


def nested_sequences(folder: Path, depth: int) -> Path:
    """A spec of `depth` sequences, each two convs and the next."""
    spec = ""
    for level in reversed(range(depth)):
        inner = f", {{type: sequence, name: s{level + 1}, layers: [{spec}]}}" if spec else ""
        spec = "{type: conv, shape: [8, 8, 3, 3], padding: 1}, {type: conv, shape: [8, 8, 3, 3], padding: 1}" + inner
    path = folder / f"deep{depth}.yaml"
    path.write_text(f"name: deep\ninput: [8, 16, 16]\nlayers: [{{type: sequence, name: s0, layers: [{spec}]}}]\n")
    return path


def test_frames_nested_deeper_than_the_page_is_wide_still_draw(tmp_path: Path) -> None:
    """Each level of frames takes room from the one inside it; where none is left, an item a row (this once looped
    forever, then took 25 s for these 14 levels, twice as long for each level more)."""
    depth = 14
    boxes = layout_of(compile_file(nested_sequences(tmp_path, depth))).boxes
    assert [box.title for box in boxes] == [[f"s{level}"] for level in reversed(range(depth))]  # innermost first
    assert all(outer.x0 < inner.x0 and inner.x1 < outer.x1 for inner, outer in itertools.pairwise(boxes))


CONV = "{type: conv, shape: [8, 8, 3, 3], padding: 1}"
INNER = f"{{type: sequence, name: inner, layers: [{', '.join([CONV] * 12)}]}}"
LONE = f"name: lone\ninput: [8, 16, 16]\nlayers: [{{type: sequence, name: outer, layers: [{INNER}]}}]\n"  # a frame
# that holds one frame only


@pytest.mark.parametrize("name", ["nested", "features", "dense", "deep", "lone"])
def test_a_frame_that_does_not_wrap_is_drawn_as_with_no_limit(name: str, tmp_path: Path) -> None:
    """The layout knows whether a frame wraps without laying it out, and lays out once a frame that does not (as
    with no limit) and one with no room (an item a row): each claim against the frame laid out in that room, in
    rooms across the page and about where it starts to wrap."""
    (tmp_path / "lone.yaml").write_text(LONE)
    path = {"deep": nested_sequences(tmp_path, 6), "lone": tmp_path / "lone.yaml"}.get(name, SPECS.get(name))
    parts = plan(compile_file(path))
    sheet = geometry.Sheet(geometry.unit([part for part in flat(parts) if isinstance(part, Stage)]), measure)
    for frame in (part for part in flat(parts) if isinstance(part, Frame)):
        free, cramped = geometry._frame(frame, sheet), geometry._frame(frame, sheet, -1e6)
        low, high = -100.0, 1e4  # the least room in which it does not wrap, to within 0.001 pt
        while high - low > 1e-3:
            middle = (low + high) / 2
            low, high = (middle, high) if geometry._frame(frame, sheet, middle).wraps else (low, middle)
        rooms = [*range(-40, 1200, 23), low, high, *(high + d for d in (-6.5, -3.0, -1.0, 1.0, 3.0, 6.5))]
        wrapped = []
        for limit in sorted(rooms):
            placed = geometry._frame(frame, sheet, limit)
            assert placed.wraps == sheet.wraps(frame, limit), (frame.title, limit)
            assert placed.wraps or placed == free, (frame.title, limit)
            assert limit > geometry.FRAME_PAD + geometry.ARROW or placed == cramped, (frame.title, limit)
            assert geometry._element(frame, sheet, limit) == placed, (frame.title, limit)  # as laid out before
            wrapped.append(placed.wraps)
        assert wrapped == sorted(wrapped, reverse=True)  # in less room, wrapped wherever wrapped in more


def test_draw_of_a_graph_is_the_same_every_time(tmp_path: Path) -> None:
    assert svg_of("resnet18", tmp_path) == svg_of("resnet18", tmp_path / "..")


# --- nothing drawn over anything else ---------------------------------------------------------------------------


def measure(text: str, size: float, bold: bool) -> float:
    from cnnforge.diagram.draw import measure as real

    return real(text, size, bold)


def layout_of(compiled: Compiled) -> geometry.Layout:
    from cnnforge.diagram.draw import title

    return geometry.layout(plan(compiled), title(compiled), measure)


def pieces(compiled: Compiled) -> tuple[list, list, list, object]:
    """The drawing's texts (text, extent), the extents of what they must not touch (boxes, circles, and each
    straight piece of every line and arc), and its frames' extents, in pixels; and the figure's extent."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    from cnnforge.diagram import draw

    with matplotlib.rc_context(draw.RC):
        figure = draw.figure(compiled)
        renderer = FigureCanvasAgg(figure).get_renderer()
        (axes,) = figure.axes
        to_pixels = axes.transData.transform
        texts = [(t.get_text(), t.get_window_extent(renderer)) for t in axes.texts]
        solid = [
            p.get_window_extent(renderer) for p in axes.patches if not (p.get_gid() or "").startswith(("skip", "frame"))
        ]
        segments = [line.get_xydata() for line in axes.lines]
        placed = layout_of(compiled)
        segments += [skip.points for skip in placed.skips]
        frames = [Bbox(to_pixels([(b.x0, b.y0), (b.x1, b.y1)])) for b in placed.boxes]
        for points in segments:
            pixels = to_pixels(points)
            for (ax, ay), (bx, by) in itertools.pairwise(pixels):
                solid.append(Bbox.from_extents(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)))
        return texts, solid, frames, figure.bbox


def apart(a, b, tolerance: float = 0.5) -> bool:
    return a.x1 <= b.x0 + tolerance or b.x1 <= a.x0 + tolerance or a.y1 <= b.y0 + tolerance or b.y1 <= a.y0 + tolerance


def inside(a, b) -> bool:
    return b.x0 <= a.x0 and a.x1 <= b.x1 and b.y0 <= a.y0 and a.y1 <= b.y1


@pytest.mark.parametrize("name", SPECS)
def test_no_label_overlaps_anything(name: str) -> None:
    texts, solid, frames, figure = pieces(compile_file(SPECS[name]))
    for i, (text, extent) in enumerate(texts):
        assert figure.x0 <= extent.x0 and extent.x1 <= figure.x1 + 0.5, f"{text!r} leaves the drawing"
        assert figure.y0 <= extent.y0 and extent.y1 <= figure.y1 + 0.5, f"{text!r} leaves the drawing"
        for other, other_extent in texts[i + 1 :]:
            assert apart(extent, other_extent), f"{text!r} overlaps {other!r}"
        for shape in solid:
            assert apart(extent, shape), f"{text!r} overlaps a box or line at {shape}"
        for frame in frames:
            assert inside(extent, frame) or apart(extent, frame), f"{text!r} crosses a frame at {frame}"


@pytest.mark.parametrize("name", SPECS)
def test_frames_hold_their_contents_and_nest(name: str) -> None:
    placed = layout_of(compile_file(SPECS[name]))
    for a in placed.boxes:
        for b in placed.boxes:
            if a is not b:
                overlap = min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)
                nested = a.x0 <= b.x0 and b.x1 <= a.x1 and a.y0 <= b.y0 and b.y1 <= a.y1
                assert not overlap or nested or (b.x0 <= a.x0 and a.x1 <= b.x1), (a.title, b.title)


@pytest.mark.parametrize("name", SPECS)
def test_frames_end_just_past_what_they_hold(name: str) -> None:
    """A frame's right edge is FRAME_PAD past the rightmost box, label, circle, arc or frame in it (a frame or
    fork placed at x in a frame once counted x twice, leaving the frame empty at its end)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnnforge.diagram import draw

    with matplotlib.rc_context(draw.RC):
        figure = draw.figure(compile_file(SPECS[name]))
        renderer = FigureCanvasAgg(figure).get_renderer()
        (axes,) = figure.axes
        drawn = [t.get_window_extent(renderer) for t in axes.texts]
        drawn += [p.get_window_extent(renderer) for p in axes.patches]
        frames = [p.get_window_extent(renderer) for p in axes.patches if (p.get_gid() or "").startswith("frame")]
    pad, short = (points * figure.dpi / 72 for points in (geometry.FRAME_PAD, 4.0))  # a row's arrow out stops up
    assert frames  # to 4 pt short of its end; a text is drawn 1 px wider or narrower than measured
    for frame in frames:
        held = [extent for extent in drawn if inside(extent, frame) and extent.bounds != frame.bounds]
        slack = frame.x1 - max(extent.x1 for extent in held)
        assert pad - 1.5 <= slack <= pad + short + 1.0, frame
