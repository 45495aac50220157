"""Spec parameters: declared under `params`, used as '${name}', bound from outside the file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnforge import check_file, compile_file
from cnnforge.builder import build

ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
name: p
params: {classes: 7, width: 8}
input: [1, 12, 12]
layers:
  - {type: conv, shape: [1, '${width}', 3, 3]}
  - {type: flatten}
  - {type: linear, shape: [800, '${classes}']}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(SPEC)
    return path


def test_defaults_apply_and_torch_agrees(spec: Path) -> None:
    compiled = compile_file(spec, {"classes": 3})
    assert compiled.output == (3,)
    model = build(compiled)
    assert tuple(model(torch.zeros(2, 1, 12, 12)).shape) == (2, 3)
    assert sum(p.numel() for p in model.parameters()) == compiled.total_params


def test_a_binding_that_breaks_shapes_is_reported_where_the_parameter_is_used(spec: Path) -> None:
    (error,) = [str(d) for d in check_file(spec, {"width": 4}).diagnostics]
    assert error == (
        f"{spec}:7:5: error: layer 2 'linear2' (linear): shape says F_i=800 but the incoming tensor has 400 features"
    )


def test_unknown_parameters_are_errors(spec: Path, tmp_path: Path) -> None:
    (error,) = check_file(spec, {"clases": 3}).diagnostics
    assert "cannot set parameter 'clases': the spec declares no such parameter (declared: classes, width)" in str(error)
    typo = tmp_path / "typo.yaml"
    typo.write_text(SPEC.replace("'${classes}'", "'${clases}'"))
    (error,) = check_file(typo).diagnostics
    assert str(error) == f"{typo}:7:33: error: unknown parameter 'clases' (declared: classes, width)"


def test_shipped_alexnet_binds_its_class_count() -> None:
    ten = compile_file(ROOT / "architectures" / "alexnet.yaml", {"classes": 10})
    assert ten.output == (10,)
    assert ten.total_params == 61_100_840 - 4096 * 990 - 990


def test_cli_set(spec: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cnnforge", "summary", str(spec), "--json", "--set", "classes=5"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["output"] == [5]
    bad = subprocess.run(
        [sys.executable, "-m", "cnnforge", "check", str(spec), "--set", "classes"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "expected NAME=VALUE" in bad.stderr
