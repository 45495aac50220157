"""`cnnforge sizes` against the compiler and torch: a size is claimed accepted exactly when the compiler accepts
it and torch runs it, and every pixel is claimed read exactly when every pixel has a gradient (tests/reach.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from agreement import compile_dict
from analysis_graphs import event, graph_classifiers, reached_by_all, runs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reach import linear_modules
from reach import reached_by_all as reached_by_chain
from strategies import specs
from torch_oracle import run

from cnnforge.cli import main
from cnnforge.sizes import Sizes, find
from cnnforge.spec import read_text
from cnnforge.spec.read import read

ROOT = Path(__file__).resolve().parent.parent
PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
LARGEST_READ = 40  # sizes whose pixels are followed through torch

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def resized(spec: dict, h: int, w: int) -> dict:
    return {**spec, "input": [spec["input"][0], h, w]}


def accepted(answer: Sizes, h: int, w: int) -> bool:
    return any(h in box[0].sizes() and w in box[1].sizes() for box in answer.accepted)


def tried_sizes(answer: Sizes) -> set[tuple[int, int]]:
    """Sizes at and next to the edges of every accepted box, and some way inside."""
    tried = set()
    for box in answer.accepted:
        edges = []
        for span, reads in zip(box, answer.reads, strict=True):
            period = reads.period if reads else 4
            ends = [span.first - 1, span.first, span.first + 1, span.first + period, span.first + 2 * period + 1]
            if span.last is not None:
                ends = [n for n in ends if n <= span.last] + [span.last, span.last + 1]
            edges.append([n for n in ends if n >= 1])
        tried |= {(h, box[1].first) for h in edges[0]} | {(box[0].first, w) for w in edges[1]}
    return tried


def assert_sizes_agree(spec: dict) -> None:
    loaded = read_text(json.dumps(spec), "spec.yaml")
    answer = find(loaded.spec, loaded.file, loaded.source)
    if not answer.accepted:
        event("no size accepted")
        assert answer.problems
        assert not compile_dict(spec).ok
        return
    event("sizes pinned by a linear layer" if answer.pin else "sizes from a smallest one on")
    for h, w in tried_sizes(answer):
        claimed = accepted(answer, h, w)
        assert compile_dict(resized(spec, h, w)).ok == claimed, (h, w)
        ran = run(resized(spec, h, w), "meta")
        if not ran.stricter:
            assert ran.ok == claimed, (h, w, ran.error)
        if claimed and max(h, w) <= LARGEST_READ and None not in answer.reads:
            every = reached_by_chain(linear_modules(resized(spec, h, w)), [spec["input"][0], h, w])
            reads_h, reads_w = (h in answer.reads[0]), (w in answer.reads[1])  # type: ignore[operator]
            event(f"every pixel read: {reads_h and reads_w}")
            assert bool(every.all()) == (reads_h and reads_w), (h, w)
            if every.any():
                assert bool(every.any(dim=1).all()) == reads_h and bool(every.any(dim=0).all()) == reads_w


@st.composite
def classifiers(draw: st.DrawFn) -> dict:
    """A random spec that, where it ends in a feature map, goes on with flatten and a linear layer that fits."""
    spec = draw(specs(max_layers=4, max_channels=3, max_size=16))
    ran = run(spec, "meta")
    if ran.ok and len(ran.shapes[-1]) == 3:
        c, h, w = ran.shapes[-1]
        spec["layers"] += [{"type": "flatten"}, {"type": "linear", "shape": [c * h * w, draw(st.integers(1, 4))]}]
    return spec


@settings(max_examples=200, **PROFILE)
@given(specs(max_layers=5, max_channels=3, max_size=16))
def test_sizes_agree_with_the_compiler_and_torch(spec: dict) -> None:
    assert_sizes_agree(spec)


@settings(max_examples=100, **PROFILE)
@given(classifiers())
def test_sizes_pinned_by_a_linear_layer(spec: dict) -> None:
    assert_sizes_agree(spec)


@pytest.mark.parametrize("name", ["lenet", "alexnet", "alexnet2012"])
def test_shipped_specs_agree(name: str) -> None:
    loaded = read(ROOT / "architectures" / f"{name}.yaml")
    answer = find(loaded.spec)
    spec = {"name": name, "input": list(loaded.spec.input), "layers": []}
    spec["layers"] = [leaf.layer.model_dump(exclude_defaults=True) | {"type": leaf.kind} for leaf in loaded.spec.layers]
    for h, w in tried_sizes(answer):
        claimed = accepted(answer, h, w)
        assert run(resized(spec, h, w), "meta").ok == claimed, (h, w)


def test_lenet_accepts_exactly_three_boxes() -> None:
    """16 channels of h x w after flatten6 must give linear7's 400 features: h*w = 25, as 1x25, 5x5 or 25x1."""
    answer = find(read(ROOT / "architectures" / "lenet.yaml").spec)
    boxes = [((h.first, h.last), (w.first, w.last)) for h, w in answer.accepted]
    assert boxes == [((16, 19), (112, 115)), ((32, 35), (32, 35)), ((112, 115), (16, 19))]
    assert answer.pin is not None and (answer.pin.layer, answer.pin.features, answer.pin.channels) == (
        "linear7",
        400,
        16,
    )
    assert [n for n in range(32, 36) if n in answer.reads[0]] == [32]  # odd maps leave a row to each pool


def test_alexnet_accepts_from_63(capsys: pytest.CaptureFixture) -> None:
    """The adaptive pool makes the features 9216 whatever the size; below 63 the last max pool has no window."""
    assert main(["sizes", str(ROOT / "architectures" / "alexnet.yaml")]) == 0
    out = capsys.readouterr().out
    assert "accepted: every H >= 63 with every W >= 63" in out
    assert "every row is read at H = 63 + 8k, 64 + 8k or 65 + 8k (k >= 0); worked out up to H = 254" in out
    assert main(["sizes", str(ROOT / "architectures" / "alexnet.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accepted"] == [{"h": [63, None], "w": [63, None], "step": {"h": 1, "w": 1}}]
    assert data["smallest"] == {"h": 63, "w": 63} and data["refused"] is None
    assert data["every_pixel_read"]["h"]["period"] == 8 and data["every_pixel_read"]["h"]["residues"] == [0, 1, 7]
    assert 224 % 8 == 0 and data["declared_accepted"]


def test_sizes_with_set_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = ROOT / "architectures" / "alexnet2012.yaml"
    assert main(["sizes", str(spec), "--set", "classes=10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pinned_by"]["layer"] == "fc6"
    (tmp_path / "bad.yaml").write_text("name: t\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, shape: [1, 2, 3, 3]}\n")
    assert main(["sizes", str(tmp_path / "bad.yaml")]) == 1
    out = capsys.readouterr().out
    assert "no input size is accepted:" in out and "shape says C_i=1 but the incoming tensor has 3 channels" in out
    (tmp_path / "typo.yaml").write_text("name: t\ninput: [3, 8, 8]\nlayers:\n  - {type: covn}\n")
    assert main(["sizes", str(tmp_path / "typo.yaml")]) == 1
    assert "did you mean 'conv'?" in capsys.readouterr().err


def test_sizes_and_the_analysis_do_not_import_torch() -> None:
    code = (
        "import sys\nfrom cnnforge.cli import main\n"
        "codes = [main(['sizes', 'architectures/lenet.yaml']), main(['summary', '-a', 'architectures/alexnet.yaml'])]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'hydra', 'omegaconf'})\n"
        "print(codes, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "[0, 0] []"


@pytest.mark.parametrize(
    "layers",
    [
        ["{type: adaptive_avgpool, output: [2147483647, 1]}"],  # a 2^31-row output from any input
        ["{type: conv, shape: [1, 1, 1, 1], padding: [1000000000, 0]}", "{type: relu}"],  # 2e9 padding rows
    ],
)
def test_huge_layers_answer_quickly(tmp_path: Path, layers: list[str]) -> None:
    """Rows read are followed as bit masks, one bit a row: a layer of 2^31 rows is not followed, and the answer
    (all sizes accepted; along the small axis, which are read) still comes at once."""
    path = tmp_path / "huge.yaml"
    path.write_text("name: t\ninput: [1, 8, 8]\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers))
    command = [sys.executable, "-m", "cnnforge", "sizes", "--json", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["accepted"] == [{"h": [1, None], "w": [1, None], "step": {"h": 1, "w": 1}}]
    assert answer["every_pixel_read"]["h"] is None
    assert answer["every_pixel_read"]["w"]["residues"] == [0]  # a 1 x 1 window (or one window) reads every column


def assert_graph_sizes_agree(spec: dict, largest: int = 16) -> None:
    """Every H up to `largest` beside an accepted W, and every W beside an accepted H: claimed accepted exactly
    when the compiler accepts it and torch runs it; and, up to LARGEST_READ, every pixel claimed read exactly
    when torch's gradients reach every pixel."""
    loaded = read_text(json.dumps(spec), "spec.yaml")
    answer = find(loaded.spec, loaded.file, loaded.source)
    box = answer.smallest(0)
    h_0, w_0 = (box[0].first, box[1].first) if box else spec["input"][1:]
    if not answer.accepted:
        event("no size accepted")
        assert answer.problems
    tried = {(h, w_0) for h in range(1, largest + 1)} | {(h_0, w) for w in range(1, largest + 1)}
    read = 0
    for h, w in sorted(tried):
        claimed = accepted(answer, h, w)
        assert compile_dict(resized(spec, h, w)).ok == claimed, (h, w)
        assert runs(resized(spec, h, w)) == claimed, (h, w)
        if claimed and max(h, w) <= LARGEST_READ and None not in answer.reads and read < 4:
            read += 1
            every = reached_by_all(resized(spec, h, w))
            assert bool(every.all()) == (h in answer.reads[0] and w in answer.reads[1]), (h, w)  # type: ignore[operator]
    event(f"sizes refused past the smallest: {any(not accepted(answer, h, w_0) for h in range(h_0, largest))}")


@settings(max_examples=25, **PROFILE)
@given(graph_classifiers())
def test_sizes_of_graphs_agree_with_the_compiler_and_torch(spec: dict) -> None:
    assert_graph_sizes_agree(spec)


def block(body: list[str], shortcut: list[str], op: str = "add") -> str:
    """A spec of one merge of two branches on a [3, 32, 32] input."""
    lines = ["name: t", "input: [3, 32, 32]", "layers:", f"  - type: {op}", "    branches:", "      body:"]
    lines += [f"        - {layer}" for layer in body] + ["      shortcut:"]
    return "\n".join(lines + [f"        - {layer}" for layer in shortcut]) + "\n"


def test_resnet_shortcut_agrees_at_every_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A 3x3 stride-2 conv padded by 1 gives ceil(n / 2) rows, as the 1x1 stride-2 shortcut does: every size."""
    (tmp_path / "b.yaml").write_text(
        block(
            ["{type: conv, shape: [3, 4, 3, 3], stride: 2, padding: 1}"],
            ["{type: conv, shape: [3, 4, 1, 1], stride: 2}"],
        )
    )
    assert main(["sizes", str(tmp_path / "b.yaml")]) == 0
    assert "accepted: every H >= 1 with every W >= 1\n" in capsys.readouterr().out
    assert_graph_sizes_agree(yaml.safe_load((tmp_path / "b.yaml").read_text()))


def test_a_2x2_body_agrees_with_its_shortcut_at_even_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A 2x2 stride-2 conv gives floor(n / 2) rows, the 1x1 shortcut ceil(n / 2): they agree at even sizes, and
    at 3, where the body's one row is broadcast; at 5 x 2 the compiler says why not."""
    (tmp_path / "b.yaml").write_text(
        block(["{type: conv, shape: [3, 4, 2, 2], stride: 2}"], ["{type: conv, shape: [3, 4, 1, 1], stride: 2}"])
    )
    assert main(["sizes", str(tmp_path / "b.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "accepted: H = 4 + 2k (k >= 0), and H = 2, 3 with W = 4 + 2k (k >= 0), and W = 2, 3"
    assert lines[-1].startswith("where branches meet, other sizes are refused; at 5 x 2: ")
    assert "the body gives [4, 2, 1], the shortcut [4, 3, 1]" in lines[-1]
    assert main(["sizes", str(tmp_path / "b.yaml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"h": [4, None], "w": [4, None], "step": {"h": 2, "w": 2}} in data["accepted"]
    assert (data["refused"]["h"], data["refused"]["w"], data["declared_accepted"]) == (5, 2, True)
    assert_graph_sizes_agree(yaml.safe_load((tmp_path / "b.yaml").read_text()), largest=40)


def test_branches_that_never_agree(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A concat of a 3x3 conv without padding (n - 2 rows) and a 1x1 conv (n rows): no size."""
    (tmp_path / "b.yaml").write_text(
        block(["{type: conv, shape: [3, 4, 3, 3]}"], ["{type: conv, shape: [3, 4, 1, 1]}"], op="concat")
    )
    assert main(["sizes", str(tmp_path / "b.yaml")]) == 1
    out = capsys.readouterr().out
    assert "no input size is accepted:" in out and "concat joins channels, so rows and columns must agree" in out
    assert_graph_sizes_agree(yaml.safe_load((tmp_path / "b.yaml").read_text()))


def test_branches_with_different_strides_agree_at_a_few_sizes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """n - 2 rows beside ceil(n / 2): equal at 4 and 5 only; at 3, 1 row beside 2 is broadcast."""
    (tmp_path / "b.yaml").write_text(
        block(["{type: conv, shape: [3, 4, 3, 3]}"], ["{type: conv, shape: [3, 4, 1, 1], stride: 2}"])
    )
    assert main(["sizes", str(tmp_path / "b.yaml")]) == 0
    assert "accepted: only H = 3, 4, 5 with only W = 3, 4, 5\n" in capsys.readouterr().out
    assert_graph_sizes_agree(yaml.safe_load((tmp_path / "b.yaml").read_text()))


def test_resnet50_sizes_are_quick() -> None:
    """Every size, found from ResNet-50's 16 blocks along each axis in a second or so."""
    loaded = read(ROOT / "architectures" / "resnet50.yaml")
    started = time.perf_counter()
    answer = find(loaded.spec)
    assert time.perf_counter() - started < 5
    assert [(h.first, h.last, h.step, w.first, w.last) for h, w in answer.accepted] == [(1, None, 1, 1, None)]
    assert answer.reads[0] is not None and answer.reads[0].describe("H") == "every H from 1 on"
