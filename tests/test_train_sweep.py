"""Sweeps (`cnnforge train -m`): each job's folder is named by what the sweep varies (safe as a file name, unique,
the same every time), and sweep.csv at the sweep's root has a row per finished job, failed ones included, even
when the jobs finish at the same moment in processes of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from train_helpers import ENV, app_folder, read_metrics, train, write_spec

from cnnforge.train.sweep import COLUMNS, EXCLUDE_KEY, NAME_MAX, exclude_unswept, job_folder

SMALL = ("trainer.device=cpu", "data=synthetic", "data.train_size=64", "data.val_size=32", "trainer.batch_size=32")


def name(task: list[str], exclude: list[str] = (), num: int = 0) -> str:
    """The folder name of job `num` whose overrides are `task`, leaving out the keys in `exclude`."""
    options = {"kv_sep": "=", "item_sep": "_", "exclude_keys": list(exclude)}
    hydra = OmegaConf.create({"overrides": {"task": task}, "job": {"config": {"override_dirname": options}}})
    return job_folder(num, "tiny", hydra)


@pytest.mark.parametrize(
    ("task", "exclude", "expected"),
    [
        (["arch=lenet", "optim.lr=0.1", "trainer.epochs=1"], ["trainer.epochs"], "0_arch=lenet_lr=0.1"),
        (["optim.lr=0.1", "arch=lenet"], [], "0_arch=lenet_lr=0.1"),  # sorted as Hydra's override_dirname
        (["optim.lr=0.1", "trainer.resume=a/last.pt"], [], "0_lr=0.1"),  # not a setting
        (["optim.lr=0.1"], ["optim.lr"], "0_tiny"),  # nothing swept: the arch's name
        (["data.root=/data/my set"], [], "0_root=-data-my-set"),
        (["data.root='../a\\\\b:c*?<>|'"], [], "0_root=-..-a-b-c-"),
        (["+optim.nesterov=true", "optim.betas=[0.9,0.99]"], [], "0_nesterov=true_betas=-0.9,0.99-"),
        (["optim.lr=${oc.env:LR}"], [], "0_lr=-oc.env-LR-"),  # kept as written, never resolved
        (["optim=adamw"], [], "0_optim=adamw"),
    ],
)
def test_job_folder_names(task: list[str], exclude: list[str], expected: str) -> None:
    assert name(task, exclude) == expected


def test_long_job_folder_names_are_cut_and_stay_distinct() -> None:
    many = [f"+data.setting_number_{i}={i}" for i in range(30)]
    first, second = name(many), name([*many[:-1], "+data.setting_number_29=x"])
    assert len(first) == len(second) == NAME_MAX
    assert first[:-8] == second[:-8] and first != second  # the same start, then a hash of the whole name
    assert name(many) == first and name(many, num=12).startswith("12_setting_number_0=0_")


def test_only_the_swept_keys_name_the_folders() -> None:
    argv = ["-m", "arch=a.yaml,b/c.yaml", "optim.lr=0.1,0.01", "trainer.epochs=1", "+optim.nesterov=true"]
    argv += ["trainer.seed=range(0,3)", "trainer.resume=x.pt", "hydra.sweep.dir=s", "hydra/launcher=submitit_local"]
    assert exclude_unswept(argv) == [f"{EXCLUDE_KEY}=['trainer.resume','trainer.epochs','optim.nesterov']"]
    assert exclude_unswept([*argv, f"{EXCLUDE_KEY}=[]"]) == []  # the user's own choice stands


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    write_spec(tmp_path)
    (tmp_path / "specs").mkdir()
    write_spec(tmp_path / "specs", "tiny", name="other")
    with app_folder(tmp_path):
        yield tmp_path


def test_a_sweep_names_its_job_folders_and_tables_them(work: Path) -> None:
    run = train("-m", "arch=tiny.yaml,specs/tiny.yaml", "optim.lr=0.1,0.01", "trainer.epochs=2", *SMALL)
    assert run.code == 0, run.output
    names = ["0_arch=tiny_lr=0.1", "1_arch=tiny_lr=0.01", "2_arch=tiny_2_lr=0.1", "3_arch=tiny_2_lr=0.01"]
    assert [folder.name for folder in run.folders] == names  # two specs named tiny.yaml: tiny and tiny_2
    root = run.folders[0].parent
    assert OmegaConf.load(root / "2_arch=tiny_2_lr=0.1" / "config.yaml").arch.spec == "specs/tiny.yaml"
    table = read_metrics(root / "sweep.csv")
    assert list(table[0]) == COLUMNS
    assert [row["job"] for row in table] == ["0", "1", "2", "3"] and [row["folder"] for row in table] == names
    for row, folder in zip(table, run.folders, strict=True):
        metrics = read_metrics(folder / "metrics.csv")
        assert row["best_val_acc"] == max((m["val_acc"] for m in metrics), key=float)
        assert (row["epochs"], row["status"], row["error"]) == ("2", "ok", "")
        assert 0 < float(row["seconds"]) < 600
    assert table[2]["overrides"] == f"arch=specs/tiny.yaml optim.lr=0.1 trainer.epochs=2 {' '.join(SMALL)}"


def test_a_failed_job_is_a_row_of_its_own(work: Path) -> None:
    run = train("-m", "arch=tiny.yaml", "optim.lr=0.1,-1", "trainer.epochs=1", *SMALL)
    assert run.code == 1
    assert "optim.lr=-1: must be greater than 0" in run.output
    (done,) = run.folders  # the refused job left no run folder
    ok, failed = read_metrics(done.parent / "sweep.csv")
    assert (ok["folder"], ok["status"], ok["epochs"]) == ("0_lr=0.1", "ok", "1")
    assert (failed["job"], failed["folder"], failed["status"]) == ("1", "1_lr=-1", "failed")
    assert (failed["best_val_acc"], failed["epochs"]) == ("", "0")
    assert failed["error"] == "optim.lr=-1: must be greater than 0"


RECORD = """
import sys
from pathlib import Path
from cnnforge.train.sweep import Job
root, num = Path(sys.argv[1]), int(sys.argv[2])
sys.stdin.read()  # all start, then all finish at once
Job(root, num, root / f"{num}_job", [f"optim.lr={num}"]).finished(None if num % 2 else "went wrong")
"""


def test_jobs_finishing_at_once_lose_no_rows(tmp_path: Path) -> None:
    jobs = [
        subprocess.Popen([sys.executable, "-c", RECORD, str(tmp_path), str(n)], stdin=subprocess.PIPE, env=ENV)
        for n in range(8)
    ]
    for job in jobs:
        job.stdin.close()  # go
    assert [job.wait(timeout=120) for job in jobs] == [0] * 8
    table = read_metrics(tmp_path / "sweep.csv")
    assert [(row["job"], row["overrides"], row["status"]) for row in table] == [
        (str(n), f"optim.lr={n}", "ok" if n % 2 else "failed") for n in range(8)
    ]
    assert json.loads((tmp_path / ".jobs" / "3.json").read_text())["folder"] == "3_job"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
