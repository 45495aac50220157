"""`cnnforge train` end to end: what a run writes, spec/data mismatches caught before anything is allocated,
the reconciliations that do work, NaN losses, and multiruns."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from train_helpers import Run, app_folder, cnnforge, read_metrics, run_dirs, train, write_spec

from cnnforge.builder import build
from cnnforge.cli import main
from cnnforge.compiler import check_file
from cnnforge.train import archs, checkpoint, metrics
from cnnforge.train.app import CONF, RunError, prepare_run
from cnnforge.train.settings import compose

DIGITS = str(CONF / "data" / "digits.yaml")
SYNTHETIC = str(CONF / "data" / "synthetic.yaml")
DIGITS_TRAIN, DIGITS_VAL = 1438, 359
PARAMETRIZED = """\
name: bound
params: {PARAM: 1000}
input: [1, 8, 8]
layers:
  - {type: flatten}
  - {type: linear, shape: [64, 16]}
  - {type: relu}
  - {type: linear, shape: [16, '${PARAM}']}
"""


def config(spec: str | Path, *overrides: str) -> DictConfig:
    """The composed config with arch.spec set to `spec`, as `cnnforge train arch=SPEC OVERRIDES` has it."""
    composed = compose(list(overrides))
    composed.arch.spec = str(spec)
    return composed


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    with app_folder(tmp_path):
        yield tmp_path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """Two runs of the tiny spec on digits from one folder: three epochs with a decaying rate, then one."""
    folder = tmp_path_factory.mktemp("runs")
    write_spec(folder)
    with app_folder(folder):
        first = train(
            "arch=tiny.yaml", "trainer.epochs=3", "sched=step", "sched.step_size=1", "sched.gamma=0.5", "optim.lr=0.1"
        )
        second = train("arch=tiny.yaml", "trainer.epochs=1")
    assert first.code == 0, first.output
    assert second.code == 0, second.output
    return first, second


# -- what a run writes ----------------------------------------------------------------------------------------


def test_metrics_csv_has_a_row_per_epoch(runs: tuple[Run, Run]) -> None:
    first, _ = runs
    text = (first.folder / "metrics.csv").read_text()
    assert text.splitlines()[0] == ",".join([*metrics.COLUMNS, "val_top5"])  # 10 classes: top-5 too
    rows = first.rows()
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["lr"]) for r in rows] == [0.1, 0.05, 0.025]  # the rate each epoch trained with
    for row in rows:
        values = {k: float(v) for k, v in row.items()}
        assert all(math.isfinite(v) for v in values.values())
        assert 0 <= values["train_acc"] <= 1 and 0 <= values["val_acc"] <= 1
        assert values["train_loss"] > 0 and values["val_loss"] > 0
        assert values["seconds"] > 0
        assert values["images_per_s"] == pytest.approx(DIGITS_TRAIN / values["seconds"], rel=1e-4)
        assert (values["val_acc"] * DIGITS_VAL) == pytest.approx(round(values["val_acc"] * DIGITS_VAL), abs=1e-3)
        assert values["val_acc"] <= values["val_top5"] <= 1
    assert float(rows[-1]["val_acc"]) > 0.5  # it learns


def test_curves_png_is_a_valid_image(runs: tuple[Run, Run]) -> None:
    path = runs[0].folder / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > image.height > 100


def test_checkpoints_hold_everything_to_continue(runs: tuple[Run, Run]) -> None:
    folder = runs[0].folder
    rows = read_metrics(folder / "metrics.csv")
    last, best = checkpoint.load(folder / "last.pt"), checkpoint.load(folder / "best.pt")
    for state in (last, best):
        assert {"model", "optimizer", "scheduler", "progress", "rng", "spec", "config", "data", "prepare"} <= set(state)
        assert state["spec"]["name"] == "tiny"
        assert state["spec"]["text"] == (folder.parent.parent.parent / "tiny.yaml").read_text()
        assert state["config"] == OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
        assert state["data"] == {"name": "digits", "classes": [str(d) for d in range(10)]}
        assert set(state["rng"]) >= {"python", "torch"}
        model = build(check_file(archs.resolve("tiny.yaml", folder.parent.parent.parent)))
        model.load_state_dict(state["model"])
    assert last["progress"]["epoch"] == 3
    assert [r["val_acc"] for r in last["progress"]["history"]] == [pytest.approx(float(r["val_acc"])) for r in rows]
    assert last["scheduler"]["last_epoch"] == 3 * math.ceil(DIGITS_TRAIN / 64)  # stepped once per optimizer step
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0125)
    # best.pt is the first epoch with the highest validation accuracy
    accuracies = [float(r["val_acc"]) for r in rows]
    assert best["progress"]["epoch"] == accuracies.index(max(accuracies)) + 1
    if best["progress"]["epoch"] == 3:
        assert all(torch.equal(best["model"][k], v) for k, v in last["model"].items())


def test_run_folder_holds_config_summary_and_log(runs: tuple[Run, Run]) -> None:
    folder = runs[0].folder
    assert OmegaConf.load(folder / "config.yaml").trainer.epochs == 3
    summary = (folder / "summary.txt").read_text()
    assert "tiny: input [1, 8, 8] -> output [10]" in summary
    assert "Total params: 690" in summary  # conv 1*4*3*3 + 4, linear 64*10 + 10
    log = (folder / "train.log").read_text()
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3: train loss" in log
    assert "best validation accuracy" in log
    assert folder.name.endswith("_tiny")
    assert folder.parent.parent.name == "outputs"


def test_a_second_run_never_overwrites_the_first(runs: tuple[Run, Run]) -> None:
    first, second = runs
    assert first.folder != second.folder
    assert run_dirs(first.folder.parent.parent.parent) == [first.folder, second.folder]
    assert len(first.rows()) == 3
    assert len(second.rows()) == 1
    for folder in (first.folder, second.folder):
        assert {"config.yaml", "summary.txt", "metrics.csv", "curves.png", "last.pt", "best.pt", "train.log"} <= {
            p.name for p in folder.iterdir()
        }


# -- mismatches caught before training ------------------------------------------------------------------------


def assert_nothing_trained(run: Run) -> None:
    assert run.code == 1
    assert "Traceback" not in run.output
    assert "training on" not in run.output
    assert run.folders == []  # refused before it started: nothing is left that looks like a run
    assert not (Path.cwd() / "outputs").exists() or not any((Path.cwd() / "outputs").rglob("*"))


def test_class_count_mismatch(work: Path) -> None:
    spec = write_spec(work, "five", classes=5)
    run = train("arch=five.yaml", "trainer.epochs=1")
    assert_nothing_trained(run)
    assert f"{spec.name}: the network's output is [5] but {DIGITS} (digits) has 10 classes" in run.output
    assert "params: {classes: 10}" in run.output  # how to fix it


def test_class_count_mismatch_names_the_chosen_data_config(work: Path) -> None:
    write_spec(work)
    run = train("arch=tiny.yaml", "data=synthetic", "data.classes=3", "trainer.epochs=1")
    assert_nothing_trained(run)
    assert f"but {SYNTHETIC} (synthetic) has 3 classes" in run.output


def test_channel_mismatch_that_cannot_be_converted(work: Path) -> None:
    spec = write_spec(work, "two", channels=2)
    run = train("arch=two.yaml", "trainer.epochs=1")
    assert_nothing_trained(run)
    (line,) = [line for line in run.output.splitlines() if "channel" in line]
    assert f"{spec.name} and {DIGITS}:" in line
    assert "the data has 1-channel samples [1, 8, 8] but the spec takes 2 channels [2, 8, 8]" in line


def test_static_shape_error_reports_as_check_does(work: Path, capsys: pytest.CaptureFixture) -> None:
    spec = work / "broken.yaml"
    spec.write_text(
        "name: broken\ninput: [1, 8, 8]\nlayers:\n"
        "  - {type: conv, shape: [3, 4, 3, 3]}\n"  # 3 input channels, but the input has 1
        "  - {type: linear, shape: [100, 10]}\n"  # a feature map, not features
    )
    assert main(["check", spec.name]) == 1
    expected = capsys.readouterr().out.splitlines()
    assert len(expected) == 2 and all(line.startswith("broken.yaml:") for line in expected)
    run = train("arch=broken.yaml", "trainer.epochs=1")
    assert_nothing_trained(run)
    for line in expected:
        assert re.search(rf"^{re.escape(line)}$", run.output, re.MULTILINE), line


def test_unknown_device(work: Path) -> None:
    write_spec(work)
    run = train("arch=tiny.yaml", "trainer.device=gpu", "trainer.epochs=1")
    assert_nothing_trained(run)
    assert "trainer.device=gpu: must be auto, cpu, cuda, cuda:N or mps" in run.output


# -- reconciliations that work --------------------------------------------------------------------------------


def test_digits_resized_to_lenet() -> None:
    plan = prepare_run(config("lenet"), DIGITS)
    assert plan.compiled.spec.name == "lenet5"
    assert plan.prepare.source == (1, 8, 8) and plan.prepare.target == (1, 32, 32)
    assert plan.bindings == {}
    assert "digits: samples [1, 8, 8] -> the spec's input [1, 32, 32]: resized 8x8 -> 32x32 (bilinear)" in plan.notes


@pytest.mark.parametrize("param", ["classes", "num_classes"])
@pytest.mark.parametrize(("overrides", "classes"), [((), 10), (("data=synthetic", "data.classes=3"), 3)])
def test_declared_class_parameter_is_bound(
    tmp_path: Path, param: str, overrides: tuple[str, ...], classes: int
) -> None:
    spec = tmp_path / "bound.yaml"
    spec.write_text(PARAMETRIZED.replace("PARAM", param))
    plan = prepare_run(config(spec, *overrides), DIGITS if classes == 10 else SYNTHETIC)
    assert plan.bindings == {param: classes}
    assert plan.compiled.output == (classes,)
    assert any(note.startswith(f"bound.yaml: parameter {param} bound to {classes}") for note in plan.notes)
    x, _ = next(plan.data.val.batches(4))
    assert build(plan.compiled)(plan.prepare(x)).shape == (4, classes)


@pytest.mark.parametrize("name", sorted(archs.shipped()))
def test_shipped_spec_on_digits(name: str, tmp_path: Path) -> None:
    """A shipped spec that declares its class count is bound to digits' 10; one that does not either has 10
    outputs or is refused with the way to fix it."""
    spec = archs.shipped()[name]
    declared = {"classes", "num_classes"} & set(check_file(spec).spec.params or {})  # through `extends` too
    try:
        plan = prepare_run(config(spec), DIGITS)
    except RunError as error:
        assert not declared
        assert check_file(spec).output != (10,)
        assert f"{spec}: the network's output is" in str(error) and "params: {classes: 10}" in str(error)
        return
    assert plan.compiled.output == (10,)
    assert plan.bindings == dict.fromkeys(declared, 10)


# -- NaN ------------------------------------------------------------------------------------------------------


def test_nan_loss_stops_naming_epoch_and_step(work: Path) -> None:
    write_spec(work)
    steps = []
    for log_every in (1, 50):  # the first bad step is found on the device, whenever the host looks
        run = train(
            "arch=tiny.yaml",
            "data=synthetic",
            "optim.lr=1e10",
            "trainer.epochs=2",
            f"trainer.log_every={log_every}",
            "trainer.batch_size=16",
        )
        assert run.code == 1
        assert "Traceback" not in run.output
        match = re.search(r"the loss became NaN or infinite at epoch 1, step (\d+); try a lower optim\.lr", run.output)
        assert match, run.output
        steps.append(int(match[1]))
        assert not {"last.pt", "best.pt", "metrics.csv"} & {p.name for p in run.folder.iterdir()}
    assert steps[0] == steps[1] and 1 <= steps[0] < 32


# -- multirun -------------------------------------------------------------------------------------------------


def test_multirun_writes_a_folder_per_job(work: Path) -> None:
    write_spec(work)
    run = train("-m", "arch=tiny.yaml", "trainer.epochs=1", "optim.lr=0.1,0.01", "trainer.batch_size=128")
    assert run.code == 0, run.output
    folders = run.folders
    assert [f.name for f in folders] == ["0_lr=0.1", "1_lr=0.01"]  # named by what the sweep varies
    assert all(f.parent.parent.parent == work / "outputs" / "multirun" for f in folders)
    assert folders[0].parent == folders[1].parent  # one sweep folder
    for folder, lr in zip(folders, (0.1, 0.01), strict=True):
        (row,) = read_metrics(folder / "metrics.csv")
        assert float(row["lr"]) == lr
        assert OmegaConf.load(folder / "config.yaml").optim.lr == lr
        assert (folder / "last.pt").is_file()


def test_sweep_through_the_submitit_launcher(work: Path) -> None:
    """The launcher a Slurm cluster uses, in its local mode: each job a process of its own (as each would be a
    Slurm job), with the same run folders and the spec given as a path."""
    write_spec(work)
    done = cnnforge(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        "arch=tiny.yaml",
        "trainer.epochs=1",
        "optim.lr=0.1,0.01",
        cwd=work,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folders = [f for f in run_dirs(work) if f.parent.parent.parent == work / "outputs" / "multirun"]
    assert [f.name for f in folders][-2:] == ["0_lr=0.1", "1_lr=0.01"]
    for folder, lr in zip(folders[-2:], (0.1, 0.01), strict=True):
        (row,) = read_metrics(folder / "metrics.csv")
        assert float(row["lr"]) == lr
        assert (folder / "last.pt").is_file()
    table = read_metrics(folders[-1].parent / "sweep.csv")  # each job process added its own row
    assert [(row["folder"], row["status"]) for row in table] == [("0_lr=0.1", "ok"), ("1_lr=0.01", "ok")]
