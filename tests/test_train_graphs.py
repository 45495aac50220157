"""`cnnforge train` on a graph spec (a residual block repeated, an add shortcut, a concat): it trains on digits,
resumes from its checkpoint to the run it would have made without a stop, is evaluated from its checkpoint, and
trains in two processes as in one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from train_helpers import Run, app_folder, assert_same_run, run_dirs, same_run, torchrun, train

from cnnforge.cli import main
from cnnforge.modules import Graph
from cnnforge.train import checkpoint
from cnnforge.use import load

# No batchnorm and no dropout, so that two processes can match one exactly (see test_train_distributed.py).
RESIDUAL = """\
name: residual
params: {classes: 10}
input: [1, 8, 8]
blocks:
  unit:
    params: {c: 4}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, name: conv1, shape: ['${c}', '${c}', 3, 3], padding: 1}
            - {type: relu, name: relu1}
            - {type: conv, name: conv2, shape: ['${c}', '${c}', 3, 3], padding: 1}
          shortcut: []
      - {type: relu, name: relu}
layers:
  - {type: conv, name: stem, shape: [1, 4, 3, 3], padding: 1}        # -> [4, 8, 8]
  - {type: unit, name: stage, repeat: 2}
  - type: concat
    name: widen
    branches:
      features: []
      pooled: [{type: maxpool, name: pool, kernel: 3, stride: 1, padding: 1}]   # -> [8, 8, 8]
  - {type: maxpool, name: down, kernel: 2}                           # -> [8, 4, 4]
  - {type: flatten, name: flatten}
  - {type: linear, name: fc, shape: [128, '${classes}']}
"""
# 45 does not divide the 1,438 digits, nor does 2 divide 45: in two processes, the shares differ by one sample.
COMMON = ("arch=residual.yaml", "trainer.batch_size=45", "trainer.num_workers=0", "optim.lr=0.1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("graphs")
    (folder / "residual.yaml").write_text(RESIDUAL)
    with app_folder(folder):
        yield folder


@pytest.fixture(scope="module")
def runs(folder: Path) -> dict[str, Run]:
    """Two epochs; one epoch; and that one resumed for a second."""
    done = {"whole": train(*COMMON, "trainer.epochs=2"), "first": train(*COMMON, "trainer.epochs=1")}
    resume = f"trainer.resume={done['first'].folder / 'last.pt'}"
    done["resumed"] = train(*COMMON, "trainer.epochs=2", resume)
    for run in done.values():
        assert run.code == 0, run.output
    return done


def test_a_graph_trains_and_resumes_to_the_same_run(runs: dict[str, Run]) -> None:
    first, resumed, whole = runs["first"], runs["resumed"], runs["whole"]
    assert sorted(p.name for p in first.folder.glob("*.pt")) == ["best.pt", "last.pt"]
    state = checkpoint.load(first.folder / "last.pt")
    assert state["spec"]["name"] == "residual" and "stage.1.conv2.weight" in state["model"]
    assert "resumed from" in resumed.output and "at epoch 2, step 0" in resumed.output
    same_run(first.rows(), whole.rows()[:1])
    same_run(resumed.rows(), whole.rows())
    ours, theirs = (
        checkpoint.load(resumed.folder / "last.pt")["model"],
        checkpoint.load(whole.folder / "last.pt")["model"],
    )
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    assert float(whole.rows()[-1]["val_acc"]) > 0.5  # it learns


def test_a_graph_is_evaluated_from_its_checkpoint(runs: dict[str, Run], capsys: pytest.CaptureFixture) -> None:
    run = runs["whole"]
    capsys.readouterr()
    assert main(["evaluate", f"ckpt={run.folder / 'last.pt'}", "device=cpu"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    match = re.fullmatch(
        r"residual on digits \(val, 359 samples\): loss ([\d.]+), accuracy ([\d.]+), top-5 [\d.]+", head
    )
    assert match, head
    assert float(match[1]) == pytest.approx(float(run.rows()[-1]["val_loss"]), abs=6e-5)  # printed to 4 decimals
    assert float(match[2]) == pytest.approx(float(run.rows()[-1]["val_acc"]), abs=6e-5)
    model = load(run.folder / "last.pt").model  # rebuilt from the spec the checkpoint holds
    assert isinstance(model, Graph) and isinstance(model.get_submodule("stage.1"), Graph)


def test_a_graph_trains_in_two_processes_as_in_one(runs: dict[str, Run], tmp_path: Path) -> None:
    (tmp_path / "residual.yaml").write_text(RESIDUAL)
    done = torchrun(*COMMON, "trainer.epochs=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = run_dirs(tmp_path)
    assert_same_run(runs["first"].folder, run)
    assert "training on 2 processes (cpu)" in done.stdout + done.stderr
