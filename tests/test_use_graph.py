"""`cnnforge features` and `cnnforge explain` on a small residual network, randomly initialised (no training):
layers and groups chosen by path, merges read where torch computes them, wrong paths answered with the paths
near them. Torch computes each map again by hand as the oracle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnforge.builder import build
from cnnforge.cli import main
from cnnforge.compiler import compile_spec
from cnnforge.spec import read_text
from cnnforge.train import checkpoint
from cnnforge.train.data import Prepare
from cnnforge.use import load
from cnnforge.use.features import activations
from cnnforge.use.maps import feature_layer, map_layers

needs_grad_cam = pytest.mark.skipif(
    importlib.util.find_spec("pytorch_grad_cam") is None, reason="needs the explain extra (grad-cam)"
)

TINY = """\
name: tiny
input: [3, 16, 16]
blocks:
  basic:
    params: {in: 8, out: 8, stride: 1}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, name: conv1, shape: ['${in}', '${out}', 3, 3], stride: '${stride}', padding: 1}
            - {type: relu, name: relu1}
            - {type: conv, name: conv2, shape: ['${out}', '${out}', 3, 3], padding: 1}
          shortcut:
            - {type: conv, name: downsample, shape: ['${in}', '${out}', 1, 1], stride: '${stride}',
               when: '${stride != 1 or in != out}'}
      - {type: relu, name: relu}
  grow:
    params: {in: 16}
    layers:
      - type: concat
        branches:
          input: []
          new: [{type: conv, name: conv, shape: ['${in}', 4, 3, 3], padding: 1}]
layers:
  - {type: conv, name: stem, shape: [3, 8, 3, 3], padding: 1}
  - {type: basic, name: layer1, repeat: 2}
  - {type: basic, name: layer2, in: 16, out: 16, first: {in: 8, stride: 2}, repeat: 1}
  - {type: grow, name: grow}
  - {type: adaptive_avgpool, name: pool, output: 1}
  - {type: flatten, name: flatten}
  - {type: linear, name: fc, shape: [20, 3]}
"""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of TINY as built, its weights random: what the commands read, without a training run."""
    loaded = read_text(TINY, "tiny.yaml")
    torch.manual_seed(0)
    model = build(compile_spec(loaded.spec, loaded.file, loaded.source))
    state = {
        "model": model.state_dict(),
        "spec": {"name": "tiny", "file": "tiny.yaml", "text": TINY, "bindings": {}},
        "config": {"data": {"name": "synthetic", "classes": 3}},
        "data": {"name": "synthetic", "classes": ["a", "b", "c"]},
        "prepare": Prepare((3, 16, 16), (3, 16, 16), 255.0, [0.5] * 3, [0.25] * 3).state(),
        "progress": {"epoch": 0},
    }
    return checkpoint.save(state, tmp_path_factory.mktemp("tiny") / "random.pt")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("images") / "noise.png"
    Image.fromarray(pixels).save(path)
    return path


def cnnforge(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def by_hand(ckpt: Path, image: Path) -> dict[str, torch.Tensor]:
    """The maps of TINY for `image`, computed module by module as torchvision's BasicBlock does."""
    net = load(ckpt)
    m = net.model
    x = net.inputs(image)
    with torch.no_grad():
        maps = {"stem": m.stem(x)}
        a = maps["stem"]
        for path in ("layer1.0", "layer1.1", "layer2.0"):
            block = m.get_submodule(path)
            body = block.conv2(block.relu1(block.conv1(a)))
            maps[f"{path}.conv2"] = body
            shortcut = block.downsample(a) if hasattr(block, "downsample") else a
            maps[f"{path}.add0"] = body + shortcut
            a = maps[path] = torch.relu(body + shortcut)
        maps["grow.concat0"] = maps["grow"] = torch.cat([a, m.grow.conv(a)], 1)
    return maps


def test_maps_are_looked_up_by_path(ckpt: Path) -> None:
    compiled = load(ckpt).compiled
    paths = [layer.path for layer in map_layers(compiled)]
    assert paths[:6] == ["stem", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.relu1", "layer1.0.conv2"]
    assert "layer2.0.downsample" in paths and "grow.concat0" in paths and "fc" not in paths
    assert feature_layer(compiled, None).path == "grow.conv"  # the last conv, in the order torch runs them
    add = feature_layer(compiled, "layer1.0.add0")
    assert (add.kind, add.output, add.module, add.as_input) == ("add", (8, 16, 16), "layer1.0.relu", True)
    concat = feature_layer(compiled, "grow.concat0")
    assert (concat.output, concat.module, concat.as_input) == ((20, 8, 8), "grow", False)
    group = feature_layer(compiled, "layer2")
    assert (group.kind, group.output, group.module) == ("repeat", (16, 8, 8), "layer2")


def test_a_merge_straight_into_another_is_refused_with_its_group() -> None:
    from cnnforge.compiler import compile_file
    from cnnforge.use.command import UsageError

    compiled = compile_file(Path(__file__).parent / "data" / "nested.yaml")
    with pytest.raises(UsageError) as refused:
        feature_layer(compiled, "s1.units.0.concat2")
    assert str(refused.value) == (
        "layer=s1.units.0.concat2: the concat of left and right is computed by no module of its own, so nothing "
        "can be hooked on it; take s1.units.0, the group it is in"
    )
    top = feature_layer(compiled, "add3")  # read as the input of the relu after it
    assert (top.module, top.as_input, top.output) == ("relu5", True, (8, 16, 16))


@pytest.mark.parametrize(
    "path", ["stem", "layer1.0.conv2", "layer1.0.add0", "layer1.1", "layer2.0.add0", "layer2", "grow.concat0"]
)
def test_features_of_a_path_are_torchs_maps(ckpt: Path, image: Path, path: str) -> None:
    net = load(ckpt)
    expected = by_hand(ckpt, image)[path if path != "layer2" else "layer2.0"]
    with torch.no_grad():
        found = activations(net.model, feature_layer(net.compiled, path), net.inputs(image))
    torch.testing.assert_close(found, expected)


def test_features_command_names_files_by_path(ckpt: Path, image: Path, tmp_path: Path, capsys) -> None:
    code, out, err = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", "layer=layer1.0.add0", image)
    assert (code, err) == (0, "")
    assert out == f"{image}: layer1.0.add0 [8, 16, 16] -> {tmp_path / 'noise.layer1.0.add0.png'}\n"
    code, out, _ = cnnforge(capsys, "features", f"ckpt={ckpt}", f"out={tmp_path}", "--filters")
    assert (code, out) == (0, f"filters of stem [8, 3, 3, 3] -> {tmp_path / 'tiny.stem.filters.png'}\n")


@pytest.mark.parametrize("command", ["features", "explain"])
def test_a_wrong_path_gets_the_nearest_paths(ckpt: Path, image: Path, tmp_path: Path, capsys, command: str) -> None:
    code, _, err = cnnforge(capsys, command, f"ckpt={ckpt}", f"out={tmp_path}", "layer=layer1.0.conv3", image)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"cnnforge {command}: layer=layer1.0.conv3: no such layer 'layer1.0.conv3' in tiny (did you mean "
        "'layer1.0.conv2'?); layers and groups with feature maps: stem, layer1, layer2, grow, pool, and the layers "
        "inside the groups (cnnforge summary lists them)"
    )
    code, _, err = cnnforge(capsys, command, f"ckpt={ckpt}", f"out={tmp_path}", "layer=layer2.0", image)
    assert (code, err) == (0, "")
    code, _, err = cnnforge(capsys, command, f"ckpt={ckpt}", f"out={tmp_path}", "layer=flatten", image)
    assert code == 2 and "layer=flatten: flatten (flatten) gives [20], not a feature map [C, H, W]" in err


@needs_grad_cam
@pytest.mark.parametrize(("path", "module"), [("layer1.0.conv2", "layer1.0.conv2"), ("layer2", "layer2"),
                                              ("grow.concat0", "grow")])  # fmt: skip
def test_explain_a_path_hooks_its_module(ckpt: Path, image: Path, tmp_path: Path, capsys, path, module) -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    args = (f"ckpt={ckpt}", f"out={tmp_path}", f"layer={path}", "class=b", "--npy", "size=0", image)
    code, out, err = cnnforge(capsys, "explain", *args)
    assert (code, err) == (0, ""), err
    assert out.endswith(f"{tmp_path / f'noise.gradcam.{path}.class1.npy'}\n")
    net = load(ckpt)
    with GradCAM(model=net.model, target_layers=[net.model.get_submodule(module)]) as cam:
        expected = cam(input_tensor=net.inputs(image), targets=[ClassifierOutputTarget(1)])[0]
    np.testing.assert_allclose(np.load(tmp_path / f"noise.gradcam.{path}.class1.npy"), expected, atol=1e-5)


@needs_grad_cam
def test_explain_refuses_a_merge_no_module_computes(ckpt: Path, image: Path, capsys) -> None:
    code, _, err = cnnforge(capsys, "explain", f"ckpt={ckpt}", "layer=layer1.0.add0", image)
    assert code == 2
    assert err.splitlines()[-1] == (
        "cnnforge explain: layer=layer1.0.add0: the add of body and shortcut is computed by no module of its own, "
        "so nothing can be hooked on it; take layer1.0.relu, the layer after it, or layer1.0, the group it is in"
    )


def test_report_of_a_graph_shows_its_tree_and_its_drawing(ckpt: Path) -> None:
    """The report's model section, of a run whose checkpoint holds a graph: the summary as a tree whose
    indentation the page keeps, and the drawing with its arcs and frames."""
    import html
    import re

    from cnnforge.report.evaluation import Evaluation
    from cnnforge.report.page import render
    from cnnforge.report.run import RunFolder
    from cnnforge.summary import as_table
    from cnnforge.train.scores import Scores

    compiled = load(ckpt).compiled
    scores = Scores(1.0, 2 / 3, None, torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]]))
    result = Evaluation(ckpt, compiled, 0, "synthetic", ["a", "b", "c"], 3, scores)
    page = render(RunFolder(ckpt.parent, "data: {name: synthetic}\n"), result)
    table = page[page.index('<table id="summary-table">') : page.index("</table>")]
    cells = [html.unescape(cell) for cell in re.findall(r'<td class="text pre">(.*?)</td>', table)]
    names = cells[::3]  # name, type, output
    lines = as_table(compiled).splitlines()
    start, end = list(re.finditer(r"-+", lines[2]))[1].span()  # the name column
    assert names == [line[start:end].rstrip() for line in lines[3:-5]]
    assert names[1:4] == ["layer1", "├─ 0", "│  ├─ conv1"]
    assert "td.pre { white-space: pre; }" in page  # so that the browser keeps the tree's spaces
    assert len(re.findall(r'<g id="skip\d+">', page)) == 2  # layer1 (its 2 blocks folded), grow's input; not layer2.0
    assert "layer1: basic ×2" in re.findall(r"<!-- (.*?) -->", page)
