"""The benchmark suite runs end to end, and its hand-written baselines are the shipped specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import BENCHMARKS
from benchmarks.handwritten import HANDWRITTEN, load_by_position
from cnnforge.builder import build
from cnnforge.compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_every_benchmark(tmp_path: Path) -> None:
    results, report = tmp_path / "results.json", tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--json", str(results), "--markdown", str(report)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(results.read_text())["rows"]
    assert {row["benchmark"] for row in rows} == set(BENCHMARKS)
    for row in rows:
        if row["benchmark"] == "gpu" and not torch.cuda.is_available():
            assert row["note"].startswith("skipped: no CUDA device")
        elif row["ours"] is not None and row["base"] is not None:
            assert row["ratio"]["median"] > 0 and min(row["ratio"]["values"]) > 0
            assert row["ours"]["stat"]["median"] > 0 and row["base"]["stat"]["median"] > 0
    for name in BENCHMARKS:
        assert f"\n{name}  " in run.stdout and f"| {name} |" in report.read_text()
    text = report.read_text()
    assert "python -m benchmarks --quick" in text and torch.__version__ in text and "torch threads" in text


@pytest.mark.parametrize("arch", sorted(HANDWRITTEN))
def test_handwritten_model_is_the_shipped_spec(root: Path, arch: str) -> None:
    compiled = compile_file(root / "architectures" / f"{arch}.yaml")
    (classes,) = compiled.output
    torch.manual_seed(0)
    built, hand = build(compiled).eval(), HANDWRITTEN[arch](classes).eval()
    assert sum(p.numel() for p in hand.parameters()) == compiled.total_params
    assert [p.shape for p in hand.parameters()] == [p.shape for p in built.parameters()]
    load_by_position(hand, built)
    x = torch.randn(2, *compiled.spec.input)
    with torch.no_grad():
        assert torch.equal(hand(x), built(x))
