"""The benchmark suite runs end to end, and its baselines (hand-written, or torchvision's) are the shipped specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import ENV

from benchmarks.__main__ import BENCHMARKS
from benchmarks.handwritten import BASELINES, load_by_position
from benchmarks.loops import by_hand, compose_config, resized
from benchmarks.report import Measure, Row
from benchmarks.timing import Stat
from cnnforge.builder import build
from cnnforge.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_every_benchmark(tmp_path: Path) -> None:
    results, report = tmp_path / "results.json", tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--json", str(results), "--markdown", str(report)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)  # one thread
    assert run.returncode == 0, run.stderr
    rows = json.loads(results.read_text())["rows"]
    assert {row["benchmark"] for row in rows} == set(BENCHMARKS)
    for row in rows:
        if row["benchmark"] == "gpu" and not torch.cuda.is_available():
            assert row["note"].startswith("skipped: no CUDA device")
        elif row["difference"]:  # accuracies in %, and ours minus the baseline's
            ours, base = row["ours"]["stat"]["median"], row["base"]["stat"]["median"]
            assert 0 <= ours <= 100 and 0 <= base <= 100
            assert row["ratio"]["median"] == pytest.approx(ours - base)
        elif row["ours"] is not None and row["base"] is not None:
            assert row["ratio"]["median"] > 0 and min(row["ratio"]["values"]) > 0
            assert row["ours"]["stat"]["median"] > 0 and row["base"]["stat"]["median"] > 0
    for name in BENCHMARKS:
        assert f"\n{name}  " in run.stdout and f"| {name} |" in report.read_text()
    text = report.read_text()
    assert "python -m benchmarks --quick" in text and torch.__version__ in text and "torch threads" in text


@pytest.mark.parametrize("arch", sorted(BASELINES))
def test_baseline_model_is_the_shipped_spec(root: Path, arch: str, tmp_path: Path, one_thread: None) -> None:
    spec = root / "architectures" / f"{arch}.yaml"
    if arch.startswith("resnet"):  # torchvision's models, on small images as the benchmark trains them
        pytest.importorskip("torchvision")
        spec = resized(spec, (3, 64, 64), tmp_path)
    compiled = compile_file(spec)
    (classes,) = compiled.output
    torch.manual_seed(0)
    built, hand = build(compiled).eval(), BASELINES[arch](classes).eval()
    assert sum(p.numel() for p in hand.parameters()) == compiled.total_params
    assert [p.shape for p in hand.parameters()] == [p.shape for p in built.parameters()]
    load_by_position(hand, built)
    x = torch.randn(2, *compiled.spec.input)
    with torch.no_grad():
        assert torch.equal(hand(x), built(x))


def test_resized_spec_differs_in_its_input_alone(root: Path, tmp_path: Path) -> None:
    spec = root / "architectures" / "resnet18.yaml"
    copy = resized(spec, (3, 32, 48), tmp_path)
    assert copy.name == spec.name and copy.parent == tmp_path
    changed = [
        (a, b) for a, b in zip(spec.read_text().splitlines(), copy.read_text().splitlines(), strict=True) if a != b
    ]
    assert changed == [("input: [3, 224, 224]", "input: [3, 32, 48]")]
    compiled = compile_file(copy)
    assert compiled.spec.input == (3, 32, 48) and compiled.output == (1000,)


def test_hand_written_augmentation_follows_the_augment_config() -> None:
    pytest.importorskip("torchvision")
    crop_flip = compose_config(["augment=crop_flip", "augment.padding=3", "augment.flip=1.0"]).augment
    image = torch.arange(1.0, 31.0).view(1, 6, 5)
    padded = torch.nn.functional.pad(image, [3] * 4)  # [1, 12, 11]
    crops = [padded[:, i : i + 6, j : j + 5].flip(-1) for i in range(7) for j in range(7)]
    augmented = by_hand(crop_flip, (6, 5))(image)
    assert any(torch.equal(augmented, crop) for crop in crops)
    assert by_hand(compose_config([]).augment, (6, 5)) is None
    with pytest.raises(ValueError, match="augment=trivialaugment"):
        by_hand(compose_config(["augment=trivialaugment"]).augment, (6, 5))


def test_accuracy_rows_give_the_mean_and_standard_deviation_and_signed_differences() -> None:
    ours, base = Measure("a", "%", Stat.of([97.0, 98.0]), "mean"), Measure("b", "%", Stat.of([96.0]), "mean")
    row = Row("augment", "case", ours, base, Stat.of([1.0, -0.5]), difference=True)
    assert row.cells()[2:5] == ("a: 97.5 ± 0.707 % (97-98)", "b: 96 %", "+0.25 ± 1.06 (-0.5 to +1)")
