"""`cnnforge sizes` against the compiler and torch: a size is claimed accepted exactly when the compiler accepts
it and torch runs it, and every pixel is claimed read exactly when every pixel has a gradient (tests/reach.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agreement import compile_dict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reach import linear_modules, reached_by_all
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
            every = reached_by_all(linear_modules(resized(spec, h, w)), [spec["input"][0], h, w])
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
    assert data["accepted"] == [{"h": [63, None], "w": [63, None]}] and data["smallest"] == {"h": 63, "w": 63}
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
    assert answer["accepted"] == [{"h": [1, None], "w": [1, None]}]
    assert answer["every_pixel_read"]["h"] is None
    assert answer["every_pixel_read"]["w"]["residues"] == [0]  # a 1 x 1 window (or one window) reads every column
