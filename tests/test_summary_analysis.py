"""`cnnforge summary`'s analysis: receptive fields and memory in the JSON (new keys only) and, with -a, the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_registry import PixelShuffle

from cnnforge.cli import main
from cnnforge.layers import LAYERS, register

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_keys(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "summary", str(ARCHITECTURES / "alexnet.yaml"), "--json", "--batch", "8")
    data = json.loads(out)
    assert code == 0
    assert list(data)[-3:] == ["batch", "param_bytes", "saved_bytes"]
    assert (data["batch"], data["param_bytes"]) == (8, 4 * 61_100_840)
    assert data["saved_bytes"] == sum(layer["saved_bytes"] for layer in data["layers"])
    conv10 = data["layers"][10]
    assert list(conv10)[6:9] == ["receptive_field", "output_bytes", "saved_bytes"]  # the graph's keys follow
    assert conv10["receptive_field"] == {
        "size": [163, 163],
        "jump": [16, 16],
        "start": [-66, -66],
        "whole_input": False,
    }
    assert conv10["output_bytes"] == {"float32": 256 * 13 * 13 * 4, "bfloat16": 256 * 13 * 13 * 2}
    assert conv10["saved_bytes"] == 0  # its input is relu9's output, kept by relu9
    assert data["layers"][0]["saved_bytes"] == 8 * 3 * 224 * 224 * 4  # the images
    assert data["layers"][16]["receptive_field"]["whole_input"]


def test_uneven_adaptive_pool_in_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An adaptive pool from 5 rows to 3 has windows 0-1, 1-3, 3-4: the field is uneven, and 3 rows at most."""
    (tmp_path / "a.yaml").write_text(
        "name: a\ninput: [1, 5, 6]\nlayers:\n"
        "  - {type: adaptive_avgpool, output: 3}\n  - {type: conv, shape: [1, 1, 2, 2]}\n"
    )
    _, out, _ = run(capsys, "summary", str(tmp_path / "a.yaml"), "--json")
    fields = [layer["receptive_field"] for layer in json.loads(out)["layers"]]
    assert fields[0] == {"size": [3, 2], "jump": [2, 2], "start": [None, 0], "whole_input": False}
    assert fields[1] == {"size": [5, 4], "jump": [2, 2], "start": [None, 0], "whole_input": False}
    _, out, _ = run(capsys, "summary", str(tmp_path / "a.yaml"), "-a")
    assert "<=3x2" in out and "-,0" in out


def test_table_with_analysis(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "summary", str(ARCHITECTURES / "lenet.yaml"), "-a", "--batch", "256")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    header = ["#", "name", "type", "output", "params", "MACs", "RF", "jump", "start", "out/sample", "saved"]
    assert lines[1].split() == [*header, "(batch", "256)"]
    conv3 = next(line for line in lines if " conv3 " in line).split()
    assert conv3[-7:] == ["14x14", "2x2", "0,0", "6.2", "KiB", "1.1", "MiB"]  # 256 x [6, 14, 14] floats kept
    assert next(line for line in lines if " linear7 " in line).split()[6] == "all"
    assert "Parameters:   241.0 KiB in float32" in lines
    assert lines[-1].startswith("Activations:  8.9 MiB at batch 256, kept by autograd for the backward pass")


def test_table_without_analysis_keeps_its_columns(capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run(capsys, "summary", str(ARCHITECTURES / "lenet.yaml"))
    assert out.splitlines()[1].split() == ["#", "name", "type", "output", "params", "MACs"]
    assert max(len(line) for line in out.splitlines()[:-4]) <= 120


@pytest.mark.parametrize("batch", ["0", "-3", "two", "2147483648", "9" * 400, "\u0663", "1e3"])
def test_batch_must_be_positive_and_at_most_2_31_minus_1(capsys: pytest.CaptureFixture, batch: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["summary", str(ARCHITECTURES / "lenet.yaml"), "--batch", batch])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()[-1:]
    assert line.startswith("cnnforge summary: error: argument --batch: expected a positive integer up to 2147483647")
    assert len(line) < 150


def test_the_largest_batch_is_answered(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "summary", str(ARCHITECTURES / "lenet.yaml"), "--json", "--batch", str(2**31 - 1))
    assert code == 0 and json.loads(out)["batch"] == 2**31 - 1


@pytest.fixture
def pixel_shuffle() -> Iterator[None]:
    """A custom kind that says nothing of its axes or memory (tests/test_registry.py)."""
    register(PixelShuffle)
    yield
    del LAYERS["pixel_shuffle"]


def test_a_custom_kind_without_rules_is_unknown(pixel_shuffle: None, tmp_path: Path, capsys) -> None:
    (tmp_path / "up.yaml").write_text(
        "name: up\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, shape: [3, 12, 3, 3], padding: 1}\n"
        "  - {type: pixel_shuffle, factor: 2}\n  - {type: relu}\n  - {type: flatten}\n"
        "  - {type: linear, shape: [768, 2]}\n"
    )
    _, out, _ = run(capsys, "summary", str(tmp_path / "up.yaml"), "--json")
    data = json.loads(out)
    assert [layer["receptive_field"] is None for layer in data["layers"]] == [False, True, True, True, True]
    assert [layer["saved_bytes"] for layer in data["layers"]] == [768, None, 3072, 0, 0]
    assert data["saved_bytes"] is None
    code, out, _ = run(capsys, "sizes", str(tmp_path / "up.yaml"))
    assert code == 0
    assert "  H 8, W 8\n" in out and "which pixels are read is not worked out" in out  # 2H * 2W * 3 = 768
