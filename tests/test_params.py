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


COMPUTED = """\
name: computed
params:
  depth: {default: 16, choices: [11, 16], description: "convs per stage, from the depth"}
  width: 4
  convs: '${2 if depth == 11 else 3}'
  features: '${width * 2 * 10 * 10}'
input: [1, 12, 12]
layers:
  - {type: conv, shape: [1, '${width}', 3, 3], repeat: '${convs}', first: {shape: [1, '${width}', 3, 3]}, when: true}
  - {type: conv, shape: ['${width}', '${width * 2}', 1, 1]}
  - {type: flatten}
  - {type: linear, shape: ['${features}', 10]}
"""


def test_a_default_may_use_the_parameters_before_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(COMPUTED.replace("repeat: '${convs}', first: {shape: [1, '${width}', 3, 3]}, when: true", ""))
    compiled = compile_file(path)
    assert compiled.output == (10,) and compiled.spec.params == {"depth": 16, "width": 4, "convs": 3, "features": 800}
    # a bound value reaches the defaults computed from it, as if written there
    wide = compile_file(path, {"width": 6})
    assert wide.spec.params["features"] == 1200 and wide.layers[-1].input == (1200,)
    assert compile_file(path, {"depth": 11}).spec.params["convs"] == 2


@pytest.mark.parametrize(
    ("params", "bindings", "message"),
    [
        (
            "{depth: {default: 16, choices: [11, 16]}}",
            {"depth": 12},
            ":3:3: error: parameter 'depth' is one of 11, 16; found 12",
        ),
        ("{depth: {default: 12, choices: [11, 16]}}", {}, ":3:3: error: parameter 'depth' is one of 11, 16; found 12"),
        ("{depth: {default: 16, choices: [11, 16]}}", {"depth": 16.0}, "is one of 11, 16; found 16.0"),
        ("{depth: {default: 16, choise: [11]}}", {}, "parameter 'depth': unknown key 'choise'"),
        ("{depth: {choices: [11]}}", {}, "parameter 'depth': no default"),
        ("{depth: {default: 16, choices: 11}}", {}, "'choices' is a list of the values it may take"),
        ("{a: '${b + 1}', b: 2}", {}, "unknown parameter 'b' (declared before it: none)"),
        ("{a: 2, b: '${a / 0}'}", {}, "division by zero"),
    ],
)
def test_parameter_declarations_are_checked(tmp_path: Path, params: str, bindings: dict, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\nparams:\n  {params[1:-1].replace(', b', chr(10) + '  b')}\ninput: [1, 4, 4]\n"
        "layers:\n  - {type: relu}\n"
    )
    found = [str(d) for d in check_file(path, bindings or None).diagnostics]
    assert found and message in found[0], found
