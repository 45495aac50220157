"""`cnnforge export` and `cnnforge predict model=FILE.onnx`: every shipped spec exports and runs in onnxruntime as
in torch; a checkpoint's export predicts what the checkpoint predicts, without torch; a bad export is refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_torchvision_specs import smaller
from train_helpers import ENV, Run, app_folder, train, write_spec

from cnnforge.cli import main
from cnnforge.compiler import check_file
from cnnforge.train.data import Prepare
from cnnforge.use import load
from cnnforge.use.export import Source, export, from_spec
from cnnforge.use.exported import Exported, Preparation, prepared

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "architectures").glob("*.yaml"))


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- every shipped spec ---------------------------------------------------------------------------------------


def small(source: Source) -> Source:
    """The source with the smallest input of 64, 96 or 128 square that its spec takes with the same layers, where
    that is smaller than its own (test_torchvision_specs.smaller): the same graph to export, less arithmetic to
    compare."""
    compiled = smaller(source.compiled)
    prepare = source.metadata.prepare.model_copy(update={"input": compiled.spec.input})
    metadata = source.metadata.model_copy(update={"prepare": prepare})
    return dataclasses.replace(source, compiled=compiled, metadata=metadata)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_spec_exports_to_onnx_and_runs_as_in_torch(name: str, one_thread: None) -> None:
    source = from_spec(str(ROOT / "architectures" / f"{name}.yaml"), {}, "none", None)
    # A fixed batch of 1, which torch's exporter traces faster than a dynamic one, and without onnxscript's optimizer
    # (a quarter of the time): the graph is the network's, as exported; the dynamic batch axis and the optimizer are
    # exercised for LeNet-5 and the checkpoints below, and `cnnforge export` verifies every file it writes itself.
    exported = small(source)
    done = export(exported, "onnx", batch=1, optimize=False)  # raises when the check or comparison fails
    verification = done.verification
    assert verification.inputs == ["random inputs in batches of 1"] and verification.runtime == "onnxruntime"
    assert 0 <= verification.difference <= 1e-4 * verification.scale and verification.scale > 0
    proto = onnx.load_model_from_string(done.data)
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *exported.compiled.spec.input]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["cnnforge.verified"] == str(verification)
    # the metadata's spec text and parameters rebuild the same network
    assert meta["cnnforge.spec"] == source.compiled.standalone[0]
    rebuilt = check_file(ROOT / "architectures" / f"{name}.yaml", json.loads(meta["cnnforge.params"]))
    assert (rebuilt.total_params, rebuilt.output) == (source.compiled.total_params, source.compiled.output)
    assert json.loads(meta["cnnforge.classes"]) == [str(i) for i in range(source.compiled.output[0])]


# -- a checkpoint, exported and run without torch --------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Short digits runs of a grayscale and a colour network (digits copied to 3 channels), at 8x8."""
    folder = tmp_path_factory.mktemp("export")
    write_spec(folder, "gray")
    write_spec(folder, "colour", channels=3)
    with app_folder(folder):
        common = ("trainer.epochs=2", "trainer.batch_size=32", "optim.lr=0.1")
        found = {name: train(f"arch={name}.yaml", *common) for name in ("gray", "colour")}
        for run in found.values():
            assert run.code == 0, run.output
        yield found


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Images of every kind predict reads: grayscale and colour, smaller and larger than 8x8, one 16-bit."""
    folder, rng = tmp_path_factory.mktemp("pictures"), np.random.default_rng(0)
    shapes = {"small.png": (5, 7), "same.png": (8, 8), "wide.png": (20, 50), "colour.png": (40, 40, 3)}
    shapes |= {"tall.jpg": (300, 17, 3), "mixed.png": (6, 30, 3)}
    for name, shape in shapes.items():
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)
    deep = rng.integers(0, 65536, (12, 9), dtype=np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")
    return sorted(str(path) for path in folder.iterdir())


def exported_file(run: Run, capsys: pytest.CaptureFixture) -> Path:
    """The run's best.pt exported to ONNX next to it (once)."""
    path = run.folder / "best.onnx"
    if not path.exists():
        code, _, err = cli(capsys, "export", f"ckpt={run.folder / 'best.pt'}")
        assert code == 0, err
    return path


@pytest.mark.parametrize("name", ["gray", "colour"])
def test_a_checkpoint_exports_with_what_predict_needs(runs: dict[str, Run], name: str, capsys) -> None:
    run = runs[name]
    code, out, err = cli(capsys, "export", f"ckpt={run.folder / 'best.pt'}", "out=" + str(run.folder / "x.onnx"))
    assert code == 0 and err == "", err  # the exporters' progress lines and log records are kept off the terminal
    lines = out.splitlines()
    channels = 1 if name == "gray" else 3
    assert lines[0].startswith(f"{run.folder / 'x.onnx'}: {name} as onnx (")
    assert f"'input' [N, {channels}, 8, 8] -> 'logits' [N, 10], batch dynamic, opset " in lines[0]
    assert lines[1] == "checked: onnx.checker (full check) passed"
    assert lines[2].startswith("verified: onnxruntime equals torch on random inputs in batches of 1 and 3, ")
    assert "8 validation images of digits: max abs difference " in lines[2] and "x the logits' scale" in lines[2]
    trained = load(run.folder / "best.pt")
    meta = Exported.load(run.folder / "x.onnx").metadata
    assert meta.name == name and meta.classes == trained.classes == [str(d) for d in range(10)]
    assert meta.spec == trained.state["spec"]["text"] and meta.params == trained.state["spec"]["bindings"]
    assert meta.prepare.mode == "L" and meta.prepare.input == (channels, 8, 8)  # digits are grayscale
    assert meta.prepare.mean == pytest.approx(trained.prepare.mean.flatten().tolist())
    assert meta.prepare.std == pytest.approx(trained.prepare.std.flatten().tolist())
    assert meta.verified == lines[2].removeprefix("verified: ")


@pytest.mark.parametrize("name", ["gray", "colour"])
def test_predict_model_gives_what_predict_ckpt_gives(runs: dict[str, Run], pictures, name: str, capsys) -> None:
    run = runs[name]
    model = exported_file(run, capsys)
    answers = {}
    for option in (f"ckpt={run.folder / 'best.pt'}", f"model={model}"):
        code, out, err = cli(capsys, "predict", option, "top_k=10", "format=json", "device=cpu", *pictures)
        assert code == 0, err
        answers[option[:4]] = json.loads(out)
    assert [row["file"] for row in answers["mode"]] == pictures
    for torch_row, onnx_row in zip(answers["ckpt"], answers["mode"], strict=True):
        torch_p = {c["class"]: c["probability"] for c in torch_row["top"]}
        onnx_p = {c["class"]: c["probability"] for c in onnx_row["top"]}
        assert onnx_p == pytest.approx(torch_p, abs=1e-5)
        assert onnx_row["top"][0]["class"] == torch_row["top"][0]["class"]


def test_predict_model_runs_without_torch(runs: dict[str, Run], pictures, capsys) -> None:
    """In a fresh interpreter where torch (and onnx, Hydra) cannot be imported: the same lines as ckpt= gives."""
    run = runs["gray"]
    model = exported_file(run, capsys)
    blocked = "import sys; sys.modules.update(dict.fromkeys(['torch', 'torchvision', 'onnx', 'onnxscript', 'hydra']))"
    command = f"{blocked}; from cnnforge.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["predict", f"model={model}", "top_k=2", *pictures[:3]]
    result = subprocess.run([sys.executable, "-c", command, *args], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    code, out, _ = cli(capsys, "predict", f"ckpt={run.folder / 'best.pt'}", "top_k=2", *pictures[:3])
    assert code == 0 and result.stdout == out and len(out.splitlines()) == 3


@pytest.mark.parametrize("form", ["exported", "torchscript"])
def test_exported_program_and_torchscript_compute_the_checkpoints_outputs(runs, form: str, tmp_path, capsys) -> None:
    run = runs["colour"]
    code, out, err = cli(capsys, "export", f"ckpt={run.folder / 'best.pt'}", f"format={form}", f"out={tmp_path / 'm'}")
    assert code == 0, err
    suffix = {"exported": ".pt2", "torchscript": ".torchscript"}[form]
    assert out.startswith(f"{tmp_path / ('m' + suffix)}: colour as {form} (") and "verified: " in out
    extra = {"cnnforge.json": ""}
    if form == "exported":
        module = torch.export.load(tmp_path / "m.pt2", extra_files=extra).module()
    else:
        module = torch.jit.load(tmp_path / "m.torchscript", _extra_files=extra)
    meta = json.loads(extra["cnnforge.json"])
    assert json.loads(meta["cnnforge.classes"]) == [str(d) for d in range(10)]
    trained = load(run.folder / "best.pt")
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x), trained.model(x), rtol=0, atol=1e-5)


def test_a_fixed_batch_and_an_opset(runs: dict[str, Run], tmp_path: Path, capsys) -> None:
    run = runs["gray"]
    args = ("export", f"ckpt={run.folder / 'best.pt'}", "batch=4", "opset=18", f"out={tmp_path / 'four.onnx'}")
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "'input' [4, 1, 8, 8] -> 'logits' [4, 10], batch 4, opset 18)" in out
    assert "random inputs in batches of 4, 8 validation images of digits" in out
    proto = onnx.load(tmp_path / "four.onnx")
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [4, 1, 8, 8]
    assert {o.version for o in proto.opset_import if o.domain == ""} == {18}


def test_nothing_is_overwritten(runs: dict[str, Run], tmp_path: Path, capsys) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"mine")
    code, out, err = cli(capsys, "export", f"ckpt={runs['gray'].folder / 'best.pt'}", f"out={target}")
    assert code == 0, err
    assert target.read_bytes() == b"mine" and out.startswith(f"{tmp_path / 'm-2.onnx'}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-2.onnx", "m.onnx"]  # no temporary file left


def test_an_export_that_differs_from_torch_is_an_error_and_writes_nothing(runs, tmp_path, monkeypatch, capsys):
    logits = Exported.logits
    monkeypatch.setattr(Exported, "logits", lambda self, x: logits(self, x) * 1.001)  # 0.1%: ten times too far
    code, out, err = cli(capsys, "export", f"ckpt={runs['gray'].folder / 'best.pt'}", f"out={tmp_path / 'm.onnx'}")
    assert code == 1 and out == "" and list(tmp_path.iterdir()) == []
    assert err.startswith("cnnforge export: error: the export does not compute what the torch model does: on random ")
    assert "over the tolerance" in err and err.endswith("nothing was written\n")


def test_export_from_a_spec_with_parameters_classes_and_normalisation(tmp_path: Path, capsys) -> None:
    (tmp_path / "names.txt").write_text("".join(f"class {i}\n" for i in range(7)))
    spec = ROOT / "architectures" / "squeezenet1_1.yaml"
    args = ("--set", "classes=7", "normalize=imagenet", f"classes={tmp_path / 'names.txt'}", f"out={tmp_path / 's'}")
    code, out, err = cli(capsys, "export", f"spec={spec}", *args)
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 's.onnx'}: squeezenet1_1 as onnx (") and "-> 'logits' [N, 7]" in out
    meta = Exported.load(tmp_path / "s.onnx").metadata
    assert meta.classes == [f"class {i}" for i in range(7)] and meta.params["classes"] == 7
    assert meta.prepare.mean == [0.485, 0.456, 0.406] and meta.prepare.std == [0.229, 0.224, 0.225]


BAD_USAGE = [
    ((), "usage: cnnforge export"),
    (("spec=a.yaml", "ckpt=b.pt"), "usage: cnnforge export"),
    (("spec=a.yaml", "format=tflite"), "format=tflite: needs onnx, exported or torchscript"),
    (("spec=a.yaml", "batch=0"), "batch=0: needs dynamic or a positive whole number"),
    (("spec=a.yaml", "opset=x"), "opset=x: needs a positive whole number"),
    (("spec=a.yaml", "format=exported", "opset=18"), "opset=18: for format=onnx only"),
    (("ckpt=b.pt", "normalize=imagenet"), "normalize: with spec= only"),
    (("spec=a.yaml", "--set"), "--set: needs NAME=VALUE"),
    (("spec=a.yaml", "dpi=3"), "unknown option 'dpi'"),
]


def test_export_help_lists_the_options(capsys) -> None:
    code, out, _ = cli(capsys, "export", "--help")
    assert code == 0 and out.startswith("usage: cnnforge export ckpt=PATH|spec=FILE [format=onnx|exported|torchscript]")
    for option in ("format=", "out=", "batch=", "opset=N", "normalize=", "classes=", "--set NAME=VALUE"):
        assert f"\n  {option}" in out, option


@pytest.mark.parametrize(("args", "problem"), BAD_USAGE)
def test_export_usage(args: tuple[str, ...], problem: str, capsys) -> None:
    code, out, err = cli(capsys, "export", *args)
    assert code == 2 and out == ""
    assert err.startswith("cnnforge export: ") and problem in err


def test_export_refusals_are_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\ninput: [1, 8, 8]\nlayers:\n  - {type: linear, shape: [9, 2]}\n")
    code, _, err = cli(capsys, "export", f"spec={tmp_path / 'bad.yaml'}")
    assert code == 1 and err.startswith(f"{tmp_path / 'bad.yaml'}:4:5: error: layer 0 'linear0' (linear): ")
    code, _, err = cli(capsys, "export", f"ckpt={tmp_path / 'none.pt'}")
    assert (code, err) == (1, f"cnnforge export: error: {tmp_path / 'none.pt'}: no such checkpoint file\n")
    (tmp_path / "two.txt").write_text("a\nb\n")
    args = (f"spec={ROOT / 'architectures' / 'lenet.yaml'}", f"classes={tmp_path / 'two.txt'}")
    code, _, err = cli(capsys, "export", *args)
    assert code == 1 and err.endswith("two.txt: holds 2 names, and the network gives 10 scores\n")
    code, _, err = cli(capsys, "export", f"spec={ROOT / 'architectures' / 'lenet.yaml'}", "opset=13")
    assert (code, err) == (
        1,
        "cnnforge export: error: opset=13: torch's exporter wrote opset 18 instead (it writes 18 and up); nothing was "
        "written\n",
    )
    code, _, err = cli(capsys, "export", f"spec={ROOT / 'architectures' / 'lenet.yaml'}", "normalize=imagenet")
    assert code == 2 and "normalize=imagenet: needs 3 input channels, and lenet5 takes 1" in err
    (tmp_path / "afile").write_text("")
    code, _, err = cli(capsys, "export", f"spec={ROOT / 'architectures' / 'lenet.yaml'}", f"out={tmp_path}/afile/x")
    assert code == 1 and err.startswith(f"cnnforge export: error: {tmp_path / 'afile'}: cannot make the folder: ")
    assert list(tmp_path.glob("*.onnx")) == []


# -- reading an exported file -----------------------------------------------------------------------------------


def rewritten(source: Path, target: Path, **changes: str | None) -> Path:
    """A copy of an ONNX file with metadata properties changed (None: removed)."""
    proto = onnx.load(source)
    props = {p.key: p.value for p in proto.metadata_props} | changes
    del proto.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, target)
    return target


def test_model_files_that_cannot_be_run_are_one_line(runs: dict[str, Run], pictures, tmp_path: Path, capsys) -> None:
    import os

    model = exported_file(runs["gray"], capsys)
    (tmp_path / "text.onnx").write_text("hello")
    (tmp_path / "empty.onnx").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo.onnx")
    cases = {
        tmp_path / "none.onnx": "no such model file",
        tmp_path / "empty.onnx": "empty file",
        tmp_path / "fifo.onnx": "not a regular file",
        tmp_path: "not a regular file",
        tmp_path / "text.onnx": "not a model onnxruntime can run (",
        runs["gray"].folder / "best.pt": "a torch file, not an ONNX model: give a checkpoint as ckpt=",
        rewritten(model, tmp_path / "plain.onnx", **{"cnnforge.format": None}): "holds no cnnforge metadata",
        rewritten(model, tmp_path / "c.onnx", **{"cnnforge.classes": "[1"}): "cnnforge.classes is not JSON: '[1'",
        rewritten(
            model, tmp_path / "m.onnx", **{"cnnforge.prepare": json.dumps({"mode": "L", "input": [1, 8, 8]})}
        ): "cnnforge.prepare.mean cannot be used: Field required",
        rewritten(
            model, tmp_path / "k.onnx", **{"cnnforge.classes": '["a", "b"]'}
        ): "its graph takes [('input', ['batch', 1, 8, 8])] and gives [('logits', ['batch', 10])], but its metadata",
    }
    for path, problem in cases.items():
        code, out, err = cli(capsys, "predict", f"model={path}", pictures[0])
        assert code == 1 and out == "", path
        assert err.startswith(f"cnnforge predict: error: {path}: ") and problem in err and err.count("\n") == 1, err


def test_predict_model_usage(capsys) -> None:
    code, _, err = cli(capsys, "predict", "model=a.onnx", "ckpt=b.pt", "x.png")
    assert code == 2 and "usage: cnnforge predict ckpt=PATH|model=FILE.onnx" in err


# -- preparing images as torch does ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([1, 3]),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.sampled_from([1, 3]),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.integers(0, 2**32 - 1),
)
@example(1, (3, 1), 1, (2, 1), 0)  # a 1-pixel side, resized along the other: torch's antialiased resize errs there
@example(3, (7, 7), 1, (2, 1), 0)  # and when a side becomes 1 pixel
def test_numpy_preparation_is_torchs(channels: int, size, target: int, input_size, seed: int) -> None:
    """prepared() (numpy and Pillow) against Prepare (torch), as predict ckpt= prepares a file's pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size, 3) if channels == 3 else size, dtype=np.uint8)
    mean, std = rng.uniform(0, 1, target).tolist(), rng.uniform(0.1, 1, target).tolist()
    how = Preparation(mode="L" if channels == 1 else "RGB", input=(target, *input_size), mean=mean, std=std)
    found = prepared(Image.fromarray(pixels), how)
    x = torch.from_numpy(pixels).reshape(1, *size, channels).permute(0, 3, 1, 2)
    expected = Prepare((channels, *size), (target, *input_size), 255, mean, std)(x).numpy()
    assert found.shape == expected.shape == (1, target, *input_size) and found.dtype == np.float32
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-4)


def test_the_onnx_extra_does_not_install_torch() -> None:
    """The onnx extra, as installed cnnforge's metadata states it, names no torch, directly or through another of
    cnnforge's extras."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    by_extra: dict[str, list[Requirement]] = {}
    for text in requires("cnnforge") or []:
        requirement = Requirement(text)
        marker = str(requirement.marker or "")
        if "extra ==" in marker:
            by_extra.setdefault(marker.split('"')[1], []).append(requirement)

    def names(extra: str) -> set[str]:
        found = set()
        for requirement in by_extra[extra]:
            found |= (
                set().union(*map(names, requirement.extras)) if requirement.name == "cnnforge" else {requirement.name}
            )
        return found

    assert names("onnx") == {"onnxruntime", "numpy", "pillow"}
    assert {"torch", "onnx", "onnxscript", "onnxruntime"} <= names("export")
