"""Run folders: a run never writes into a folder that holds another run (or the user's own files of those
names), unless it was asked to continue that run there; and a run refused before it starts leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from train_helpers import app_folder, read_metrics, run_dirs, train, write_spec

TINY = ("arch=tiny.yaml", "trainer.epochs=1", "trainer.device=cpu", "data=synthetic", "data.train_size=64")


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    write_spec(tmp_path)
    with app_folder(tmp_path):
        yield tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_folder_given_twice_is_refused_and_the_first_run_kept(work: Path) -> None:
    first = train(*TINY, "hydra.run.dir=exp")
    assert first.code == 0, first.output
    before = snapshot(work / "exp")
    assert {"config.yaml", "metrics.csv", "last.pt", ".hydra/config.yaml", "train.log"} <= set(before)
    again = train(*TINY, "optim.lr=0.5", "hydra.run.dir=exp")
    assert again.code == 1
    assert again.output.splitlines() == [
        "hydra.run.dir=exp: this folder already holds a run (config.yaml); give a new folder (by default each run "
        "gets one of its own), or trainer.resume=<its checkpoint> to continue that run there"
    ]
    assert snapshot(work / "exp") == before  # not a byte changed, Hydra's own records included


def test_the_current_folder_with_the_users_config_is_refused(work: Path) -> None:
    (work / "config.yaml").write_text("mine: true\n")
    run = train(*TINY, "hydra.run.dir=.")
    assert run.code == 1
    assert "hydra.run.dir=.: this folder already holds a run (config.yaml)" in run.output
    assert (work / "config.yaml").read_text() == "mine: true\n"
    assert not (work / ".hydra").exists() and not (work / "train.log").exists()


def test_a_run_folder_named_by_interpolation_is_refused_before_cnnforge_writes(work: Path) -> None:
    first = train(*TINY, "hydra.run.dir=runs/${arch.name}")
    assert first.code == 0, first.output
    folder = work / "runs" / "tiny"
    kept = {name: (folder / name).read_bytes() for name in ("config.yaml", "metrics.csv", "last.pt", "summary.txt")}
    again = train(*TINY, "hydra.run.dir=runs/${arch.name}")
    assert again.code == 1
    assert f"{folder}: this folder already holds a run (config.yaml)" in again.output
    assert {name: (folder / name).read_bytes() for name in kept} == kept


def test_resuming_into_the_runs_own_folder_is_allowed(work: Path) -> None:
    first = train(*TINY, "hydra.run.dir=exp")
    assert first.code == 0, first.output
    resumed = train(*TINY, "trainer.epochs=2", "trainer.resume=exp/last.pt", "hydra.run.dir=exp")
    assert resumed.code == 0, resumed.output
    assert [row["epoch"] for row in read_metrics(work / "exp" / "metrics.csv")] == ["1", "2"]


def test_a_sweep_folder_given_twice_is_refused(work: Path) -> None:
    first = train("-m", *TINY, "optim.lr=0.1", "hydra.sweep.dir=sweep")
    assert first.code == 0, first.output
    before = snapshot(work / "sweep")
    again = train("-m", *TINY, "optim.lr=0.1", "hydra.sweep.dir=sweep")
    assert again.code == 1
    assert again.output.startswith("hydra.sweep.dir=sweep: this folder already holds a run (multirun.yaml)")
    assert snapshot(work / "sweep") == before


@pytest.mark.parametrize(
    "overrides",
    [
        ("optim.lr=abc",),  # a setting
        ("arch=broken.yaml",),  # the spec
        ("data=digits", "data.val_fraction=0.999"),  # the data
        ("arch=nosuchnet",),
        ("trainer.resume=nothing.pt",),
    ],
    ids=["setting", "spec", "data", "arch", "checkpoint"],
)
def test_a_refused_run_leaves_nothing(work: Path, overrides: tuple[str, ...]) -> None:
    (work / "broken.yaml").write_text("name: broken\ninput: [1, 8, 8]\nlayers:\n  - {type: linear, shape: [3, 2]}\n")
    run = train(*TINY, *overrides)
    assert run.code == 1, run.output
    assert "Traceback" not in run.output
    assert run_dirs(work) == []
    assert not (work / "outputs").exists() or not any((work / "outputs").rglob("*"))


def test_paths_with_equals_signs_and_spaces_are_paths(work: Path) -> None:
    """A sweep's job folder holds '=' (1_lr=0.01): its checkpoint is named as written, and so is a folder with
    spaces; Hydra's grammar alone would refuse both."""
    first = train(*TINY, "hydra.run.dir=runs/1_lr=0.01 b")
    assert first.code == 0, first.output
    assert (work / "runs" / "1_lr=0.01 b" / "last.pt").exists()
    resumed = train(*TINY, "trainer.epochs=2", "trainer.resume=runs/1_lr=0.01 b/last.pt", "hydra.run.dir=runs/2")
    assert resumed.code == 0, resumed.output
    assert "resumed from runs/1_lr=0.01 b/last.pt at epoch 2, step 0" in resumed.output
