"""Training in several processes (torchrun, gloo on the CPU) gives the run one process gives with the same global
batch; sharding serves every sample of every batch exactly once; launch problems are said plainly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import app_folder, assert_same_run, run_dirs, torchrun, train

from cnnforge.train.data import TensorSplit, shards
from cnnforge.train.distributed import LaunchError, processes

# No dropout (every process draws its own masks) and no batchnorm (on the CPU its statistics are per process):
# only such a network can match one process exactly.
PLAIN = """\
name: plain
input: [1, 8, 8]
layers:
  - {type: conv, shape: [1, 4, 3, 3], padding: 1}
  - {type: relu}
  - {type: maxpool, kernel: 2}
  - {type: flatten}
  - {type: linear, shape: [64, 10]}
"""
# 45 does not divide the 1,438 digits, nor does 2 divide 45: the processes' shares differ by one sample.
COMMON = ("arch=plain.yaml", "trainer.batch_size=45", "trainer.log_every=7", "trainer.num_workers=0")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs in one process, this one: the run the distributed ones must reproduce."""
    folder = tmp_path_factory.mktemp("single")
    (folder / "plain.yaml").write_text(PLAIN)
    with app_folder(folder):
        done = train(*COMMON, "trainer.epochs=2")
    assert done.code == 0, done.output
    return done.folder


def test_two_processes_train_as_one(tmp_path: Path, single: Path) -> None:
    (tmp_path / "plain.yaml").write_text(PLAIN)
    done = torchrun(*COMMON, "trainer.epochs=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = run_dirs(tmp_path)  # one run folder: the other process's Hydra folder is temporary
    assert_same_run(single, run)
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".pt") == ["best.pt", "last.pt"]
    # process 0 alone logs: each epoch is reported once
    output = done.stdout + done.stderr
    assert output.count("epoch 2/2: train loss") == 1, output
    assert "training on 2 processes (cpu), precision 32, batch 45" in output
    assert (run / "train.log").read_text().count("epoch 1/2: train loss") == 1


def test_resume_in_two_processes(tmp_path: Path, single: Path) -> None:
    """One epoch in two processes, then the second from its checkpoint in two processes: the same run again."""
    (tmp_path / "plain.yaml").write_text(PLAIN)
    first = torchrun(*COMMON, "trainer.epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run,) = run_dirs(tmp_path)
    second = torchrun(*COMMON, "trainer.epochs=2", f"trainer.resume={run / 'last.pt'}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    resumed = [p for p in run_dirs(tmp_path) if p != run]
    assert len(resumed) == 1
    assert_same_run(single, resumed[0])


def test_global_batch_smaller_than_processes(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text(PLAIN)
    done = torchrun("arch=plain.yaml", "trainer.batch_size=1", "trainer.epochs=1", cwd=tmp_path)
    assert done.returncode != 0
    output = done.stdout + done.stderr  # torchrun adds its own report (with a traceback) of a failed process
    assert output.count("trainer.batch_size=1 is the global batch, shared by 2 processes") == 1, output
    assert "process 1:" not in output
    assert not any(p.suffix == ".pt" for p in (tmp_path / "outputs").rglob("*"))


def test_bad_launcher_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plain.yaml").write_text(PLAIN)
    for name, value in {"RANK": "3", "WORLD_SIZE": "2", "LOCAL_RANK": "3"}.items():
        monkeypatch.setenv(name, value)
    with app_folder(tmp_path):
        done = train("arch=plain.yaml", "trainer.epochs=1")
    assert done.code == 1
    assert "RANK=3 is not a process of WORLD_SIZE=2" in done.output
    assert "Traceback" not in done.output


def test_processes_from_environment() -> None:
    assert processes({}).world == 1
    assert processes({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}).shard == (1, 4)
    assert not processes({"RANK": "1", "WORLD_SIZE": "4"}).main
    for bad in ({"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "-1", "WORLD_SIZE": "2"}):
        with pytest.raises(LaunchError):
            processes(bad)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 60),
    batch=st.integers(1, 17),
    parts=st.integers(1, 5),
    skip=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_shares_make_up_each_batch(size: int, batch: int, parts: int, skip: int, seed: int) -> None:
    """Process i's share of each batch, for i < n, put together is that batch, in order: n processes see what
    one would, and every process takes the same number of steps (a share may be empty)."""
    split = TensorSplit(torch.arange(size).view(-1, 1, 1, 1), torch.arange(size))
    whole = [y for _, y in split.batches(batch, torch.Generator().manual_seed(seed), skip)]
    shares = [
        [y for _, y in split.batches(batch, torch.Generator().manual_seed(seed), skip, shard=(i, parts))]
        for i in range(parts)
    ]
    assert all(len(s) == len(whole) for s in shares)
    for step, y in enumerate(whole):
        parts_of_step = [s[step] for s in shares]
        assert torch.equal(torch.cat(parts_of_step), y)
        assert max(map(len, parts_of_step)) - min(map(len, parts_of_step)) <= 1


def test_shards_cut_like_tensor_split() -> None:
    for n in range(12):
        for parts in range(1, 5):
            expected = [t.tolist() for t in torch.arange(n).tensor_split(parts)]
            assert shards(list(range(n)), parts) == expected
