"""`cnnforge check --format json`: the diagnostics for editors and CI annotations."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"layer_path", "file", "line", "column", "severity", "layer_index", "layer_name", "layer_type", "message"}


def check_json(*args: str, cwd: Path) -> tuple[int, dict]:
    run = subprocess.run(
        [sys.executable, "-m", "cnnforge", "check", "--format", "json", *args], cwd=cwd, capture_output=True, text=True
    )
    return run.returncode, json.loads(run.stdout)


def test_json_lists_every_diagnostic_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ninput: [3, 32, 32]\nlayers:\n"
        "  - {type: conv, shape: [3, 8, 3, 3], stride: 2}\n"  # warning: last row and column unread
        "  - {type: conv, shape: [4, 8, 3, 3]}\n"  # error: 8 channels arrive
    )
    (tmp_path / "good.yaml").write_text("name: good\ninput: [1, 4, 4]\nlayers:\n  - {type: relu}\n")
    code, report = check_json("bad.yaml", "good.yaml", cwd=tmp_path)
    assert code == 1
    assert report["files"] == [{"file": "bad.yaml", "ok": False}, {"file": "good.yaml", "ok": True}]
    warning, error = report["diagnostics"]
    assert set(warning) == set(error) == KEYS
    assert (warning["severity"], warning["line"], warning["layer_index"], warning["layer_name"]) == (
        "warning",
        4,
        0,
        "conv0",
    )
    assert (error["severity"], error["line"], error["column"], error["layer_type"]) == ("error", 5, 5, "conv")
    assert "shape says C_i=4 but the incoming tensor has 8 channels" in error["message"]


def test_json_for_clean_files_and_file_level_errors(tmp_path: Path) -> None:
    code, report = check_json("architectures/", cwd=ROOT)
    assert code == 0 and all(f["ok"] for f in report["files"])
    # the one warning: torchvision's SqueezeNet strides past the input's last row and column, and so does the spec
    assert [(d["file"], d["severity"]) for d in report["diagnostics"]] == [
        ("architectures/squeezenet1_1.yaml", "warning")
    ]
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    code, report = check_json("broken.yaml", cwd=tmp_path)
    (problem,) = report["diagnostics"]
    assert code == 1 and problem["layer_index"] is None and (problem["line"], problem["column"]) == (1, 7)  # the '['
