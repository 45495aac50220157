"""Resuming: a run stopped after some epochs, or by Ctrl-C in the middle of one, then continued, ends exactly
where an uninterrupted run does; and checkpoints are written atomically and read back carefully."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from train_helpers import ENV, Run, same_run, spec_folder, train, write_spec

import cnnforge
from cnnforge.cli import main
from cnnforge.train import checkpoint
from cnnforge.train.loop import Trainer

# Digits in batches of 4 on the CPU: 360 steps an epoch, long enough to interrupt in the middle of one. A spec
# with dropout and a decaying rate, so that resuming must restore the random state and the scheduler.
OVERRIDES = (
    "arch=tiny.yaml",
    "trainer.device=cpu",
    "trainer.epochs=2",
    "trainer.batch_size=4",
    "sched=step",
    "sched.step_size=1",
    "sched.gamma=0.5",
    "optim.lr=0.02",
)
STEPS = 360


def weights(run: Run) -> dict[str, torch.Tensor]:
    return checkpoint.load(run.folder / "last.pt")["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from spec_folder(tmp_path_factory, "resume")


@pytest.fixture(scope="module")
def reference(folder: Path) -> Run:
    """Two epochs without a stop."""
    run = train(*OVERRIDES)
    assert run.code == 0, run.output
    assert len(run.rows()) == 2
    return run


def test_resume_after_an_epoch_equals_an_uninterrupted_run(folder: Path, reference: Run) -> None:
    first = train(*OVERRIDES, "trainer.epochs=1")
    assert first.code == 0, first.output
    same_run(first.rows(), reference.rows()[:1])
    resumed = train(*OVERRIDES, f"trainer.resume={first.folder / 'last.pt'}")
    assert resumed.code == 0, resumed.output
    assert resumed.folder != first.folder  # a resumed run writes a folder of its own
    assert "resumed from" in resumed.output and "at epoch 2, step 0" in resumed.output
    same_run(resumed.rows(), reference.rows())
    assert_same_weights(weights(resumed), weights(reference))
    assert len(first.rows()) == 1  # the first run's folder is left as it was


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_resume_after_a_stop_mid_epoch_equals_an_uninterrupted_run(
    folder: Path, reference: Run, stop: signal.Signals
) -> None:
    """Ctrl-C, or the SIGTERM a cluster's scheduler sends before it ends a job: a checkpoint, then a resume."""
    log = folder / f"interrupted-{stop.name}.out"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cnnforge", "train", *OVERRIDES, "trainer.log_every=1"],
            cwd=folder,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_step(log, process, step=5)
            process.send_signal(stop)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    output = log.read_text()
    assert code == 128 + stop, output
    assert "Traceback" not in output
    # stderr is not a terminal: plain progress lines, no progress bars redrawn with carriage returns
    assert "\r" not in output
    assert re.search(r"epoch 1/2 step 1/360 loss \d", output)
    saved = Path(re.search(r"saved (\S+interrupted\.pt)$", output, re.MULTILINE)[1])
    state = checkpoint.load(saved)
    epoch, step = state["progress"]["epoch"], state["progress"]["step"]
    assert epoch in (0, 1) and 0 < step < STEPS  # stopped in the middle of an epoch
    assert f"stopped at epoch {epoch + 1}, step {step}" in output
    assert ("metrics.csv" in os.listdir(saved.parent)) == (epoch == 1)
    # continue exactly as the run said to
    command = re.search(r"continue with: cnnforge train (.*)$", output, re.MULTILINE)[1]
    resumed = train(*shlex.split(command))
    assert resumed.code == 0, resumed.output
    assert f"at epoch {epoch + 1}, step {step}" in resumed.output
    same_run(resumed.rows(), reference.rows())
    assert_same_weights(weights(resumed), weights(reference))


@contextlib.contextmanager
def stop_after(epoch: int, steps: int, second: bool = False) -> Iterator[None]:
    """Ask the run to stop, as Ctrl-C does, during training step `steps` of epoch `epoch` (0-based), so that it
    stops after exactly that many steps; with `second`, a second Ctrl-C comes while the checkpoint is written."""
    original = Trainer._training_input

    def _training_input(self: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if (self.progress.epoch, self.progress.step) == (epoch, steps - 1) and not self.stop_requested:
            self._request_stop(signal.SIGINT, None)
        return original(self, x, y)

    real_save = torch.save

    def save(obj: object, file: object) -> None:
        if second and isinstance(obj, dict) and obj.get("progress", {}).get("step"):
            signal.raise_signal(signal.SIGINT)  # the handler runs here, in the middle of the write
        real_save(obj, file)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_training_input", _training_input)
        patch.setattr(torch, "save", save)
        yield


def history(path: Path) -> list[dict]:
    """A checkpoint's per-epoch rows at full precision, timing aside."""
    rows = checkpoint.load(path)["progress"]["history"]
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in rows]


# Early, mid-epoch, one step before the end of the first epoch, and in the second epoch.
STOPS = [(0, 1), (0, 180), (0, STEPS - 1), (1, 100)]


@pytest.mark.parametrize(("epoch", "steps"), STOPS, ids=[f"epoch{e + 1}-step{s}" for e, s in STOPS])
def test_resume_wherever_it_stopped_equals_an_uninterrupted_run(
    folder: Path, reference: Run, epoch: int, steps: int
) -> None:
    """Stopped after exactly `steps` steps, then resumed with the command it printed: the same weights, and the
    same losses and accuracies to the last bit."""
    with stop_after(epoch, steps):
        stopped = train(*OVERRIDES)
    assert stopped.code == 130, stopped.output
    assert f"stopped at epoch {epoch + 1}, step {steps}" in stopped.output
    command = re.search(r"continue with: cnnforge train (.*)$", stopped.output, re.MULTILINE)[1]
    resumed = train(*shlex.split(command))
    assert resumed.code == 0, resumed.output
    assert f"at epoch {epoch + 1}, step {steps}" in resumed.output
    assert history(resumed.folder / "last.pt") == history(reference.folder / "last.pt")
    assert_same_weights(weights(resumed), weights(reference))


def test_a_second_ctrl_c_during_the_checkpoint_write_lets_it_finish(folder: Path, reference: Run) -> None:
    with stop_after(0, 10, second=True):
        stopped = train(*OVERRIDES)
    assert stopped.code == 130, stopped.output
    assert "Traceback" not in stopped.output
    saved = Path(re.search(r"saved (\S+interrupted\.pt)$", stopped.output, re.MULTILINE)[1])
    assert checkpoint.load(saved)["progress"]["step"] == 10  # written whole
    resumed = train(*OVERRIDES, f"trainer.resume={saved}")
    assert resumed.code == 0, resumed.output
    assert_same_weights(weights(resumed), weights(reference))


def wait_for_step(log: Path, process: subprocess.Popen, step: int, timeout: float = 90) -> None:
    """Wait until the run in `process` has logged training step `step` (or later) of its first epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = re.findall(r"epoch \d/2 step (\d+)/", log.read_text())
        if steps and int(steps[-1]) >= step:
            return
        assert process.poll() is None, log.read_text()
        time.sleep(0.01)
    raise AssertionError(f"no step {step} within {timeout} s:\n{log.read_text()}")


def test_resume_from_a_checkpoint_of_another_spec(folder: Path, reference: Run) -> None:
    ckpt = reference.folder / "last.pt"
    run = train("arch=lenet", "trainer.epochs=3", f"trainer.resume={ckpt}")
    assert run.code == 1
    lenet = Path(cnnforge.__file__).parent / "architectures" / "lenet.yaml"  # spec files as the user named them
    assert run.output.splitlines() == [
        f"trainer.resume={ckpt}: this checkpoint is of `tiny` (file tiny.yaml); "
        f"the run's spec is `lenet5` (file {lenet})"
    ]
    assert run.folders == []  # a run refused before it starts leaves no folder


def test_resume_from_a_checkpoint_whose_spec_changed(folder: Path, reference: Run) -> None:
    write_spec(folder, file="tiny_rgb", channels=3, name="tiny")  # the same name, other layers
    ckpt = reference.folder / "last.pt"
    run = train(*OVERRIDES, "arch=tiny_rgb.yaml", "trainer.epochs=3", f"trainer.resume={ckpt}")
    assert run.code == 1
    assert run.output.splitlines()[-1] == (
        f"trainer.resume={ckpt}: the checkpoint's `tiny` (file tiny.yaml) does not fit this run's "
        "spec (file tiny_rgb.yaml): conv0.weight is [4, 1, 3, 3] in the file, [4, 3, 3, 3] in the spec"
    )
    assert "Traceback" not in run.output and run.folders == []


def test_resuming_a_finished_run_says_so(folder: Path, reference: Run) -> None:
    ckpt = reference.folder / "last.pt"
    run = train(*OVERRIDES, f"trainer.resume={ckpt}")
    assert run.code == 1
    assert run.output.splitlines() == [
        f"trainer.resume={ckpt}: that run has finished: it trained 2 epochs, and this run has trainer.epochs=2; "
        "to train on, give trainer.epochs=3 or more"
    ]
    assert run.folders == []


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            "data.val_fraction=0.3",
            "data.val_fraction=0.3, but the checkpoint's run had 0.2; a resumed run keeps its data and its optimizer",
        ),
        (
            "data=synthetic",
            "data.name=synthetic, but the checkpoint's run had digits; a resumed run keeps its data and its optimizer",
        ),
        (
            "optim=adam",
            "optim._target_=torch.optim.Adam, but the checkpoint's run had torch.optim.SGD; a resumed run "
            "keeps its data and its optimizer",
        ),
    ],
)
def test_resume_refuses_to_change_the_data_or_the_optimizer(
    folder: Path, reference: Run, change: str, line: str
) -> None:
    ckpt = reference.folder / "last.pt"
    run = train(*OVERRIDES, "trainer.epochs=3", change, f"trainer.resume={ckpt}")
    assert run.code == 1
    assert run.output.splitlines() == [f"trainer.resume={ckpt}: {line}"]
    assert run.folders == []


def test_resume_mid_epoch_keeps_the_batch_size_and_seed(folder: Path) -> None:
    with stop_after(0, 5):
        stopped = train(*OVERRIDES)
    ckpt = stopped.folder / "interrupted.pt"
    for change, was in (("trainer.batch_size=8", 4), ("trainer.seed=1", 0)):
        run = train(*OVERRIDES, change, f"trainer.resume={ckpt}")
        assert run.code == 1
        assert run.output.splitlines() == [
            f"trainer.resume={ckpt}: {change}, but the checkpoint's run had {was}; it stopped mid-epoch, so the rest "
            "of the epoch must be its batches"
        ]


def test_resume_takes_the_learning_rate_and_schedule_from_its_config(folder: Path) -> None:
    """The config says what ran: a new optim.lr (and schedule) on resume is what trains, what metrics.csv and
    config.yaml record, and the run says what it changed."""
    first = train(*OVERRIDES, "trainer.epochs=1")
    assert first.code == 0, first.output
    resumed = train(*OVERRIDES, "optim.lr=0.05", "sched.gamma=0.1", f"trainer.resume={first.folder / 'last.pt'}")
    assert resumed.code == 0, resumed.output
    assert "resuming with optim.lr=0.05 (the checkpoint's run: 0.02)" in resumed.output
    assert "resuming with sched.gamma=0.1 (the checkpoint's run: 0.5)" in resumed.output
    # StepLR(step_size=1, gamma=0.1) from 0.05, one epoch done: 0.05 * 0.1 in epoch 2, as a new run would have it
    assert [row["lr"] for row in resumed.rows()] == ["0.02", "0.005"]
    saved = checkpoint.load(resumed.folder / "last.pt")
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.05 * 0.1**2)
    config = (resumed.folder / "config.yaml").read_text()
    assert "  lr: 0.05\n" in config and "  gamma: 0.1\n" in config


def test_resume_from_a_missing_checkpoint(folder: Path) -> None:
    run = train(*OVERRIDES, "trainer.resume=nothing/here.pt")
    assert run.code == 1
    assert "nothing/here.pt: no such checkpoint file" in run.output
    assert "Traceback" not in run.output


# -- atomic checkpoints ---------------------------------------------------------------------------------------


def test_save_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    assert checkpoint.save({"x": torch.arange(3)}, path) == path
    assert checkpoint.save({"x": torch.arange(5)}, path) == path
    assert torch.equal(checkpoint.load(path)["x"], torch.arange(5))
    assert os.listdir(tmp_path) == ["last.pt"]


def test_a_failed_save_leaves_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save({"x": torch.arange(3)}, path)
    old = path.read_bytes()

    def failing_save(obj: object, file: object) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save({"x": torch.arange(5)}, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(path)["x"], torch.arange(3))


@pytest.fixture
def bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = checkpoint.save({"x": torch.arange(1000)}, tmp_path / "good.pt")
    files = {
        "truncated": tmp_path / "truncated.pt",
        "garbage": tmp_path / "garbage.pt",
        "empty": tmp_path / "empty.pt",
        "foreign": tmp_path / "foreign.pt",  # a torch file, but not one cnnforge wrote
    }
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["garbage"].write_bytes(b"this is not a checkpoint\n" * 10)
    files["empty"].write_bytes(b"")
    torch.save({"model": {}}, files["foreign"])
    return files


class Planted:
    """Unpickling this creates a folder: what an unrestricted unpickler would let a file do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def test_load_runs_no_code_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "planted.pt"
    torch.save({"format": checkpoint.FORMAT, "model": Planted(tmp_path / "ran")}, path)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint"):
        checkpoint.load(path)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "foreign"])
def test_load_refuses_a_bad_file(bad_checkpoints: dict[str, Path], kind: str) -> None:
    path = bad_checkpoints[kind]
    message = "not a cnnforge checkpoint" if kind == "foreign" else "not a readable checkpoint"
    with pytest.raises(checkpoint.CheckpointError, match=rf"^{re.escape(str(path))}: {message}"):
        checkpoint.load(path)


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_evaluate_reports_a_bad_checkpoint(bad_checkpoints: dict[str, Path], kind: str, capsys) -> None:
    path = bad_checkpoints[kind]
    assert main(["evaluate", f"ckpt={path}"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"cnnforge evaluate: error: {path}: not a readable checkpoint")


def test_a_run_resumed_into_a_new_folder_holds_the_best_so_far(folder: Path, reference: Run) -> None:
    """With a learning rate too small to improve anything, the resumed epoch is not the best: best.pt is the
    continued run's, carried over, and stays the best of the whole history."""
    resumed = train(*OVERRIDES, "trainer.epochs=3", "optim.lr=1e-12", f"trainer.resume={reference.folder / 'last.pt'}")
    assert resumed.code == 0, resumed.output
    best = checkpoint.load(resumed.folder / "best.pt")
    history = [float(row["val_acc"]) for row in resumed.rows()]
    assert best["progress"]["best"] == pytest.approx(max(history))
    assert (resumed.folder / "best.pt").read_bytes() == (reference.folder / "best.pt").read_bytes()
    assert "best.pt: the best so far of the run it continues" in resumed.output
