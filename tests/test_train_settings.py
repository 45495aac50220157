"""Training settings are checked before anything runs: every problem is one line naming the key, the value
found and what is allowed; only the declared optimizers and schedules can be instantiated; and the app runs
cleanly, warnings as errors, under both Hydra lines it supports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from train_helpers import ENV, cnnforge, read_metrics, spec_folder, train, write_spec

from cnnforge.train import settings

# Each refused as one line, before the spec is compiled or anything allocated (as the issue tracker found them).
REFUSED = {
    "optim.lr=abc": "optim.lr=abc: must be a number",
    "optim.lr=-1": "optim.lr=-1: must be greater than 0",
    "optim._target_=torch.optim.NotAnOptimizer": "optim._target_=torch.optim.NotAnOptimizer: not one of "
    "torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW (did you mean torch.optim.Adam?)",
    "optim._target_=os.system": "optim._target_=os.system: not one of torch.optim.SGD, torch.optim.Adam, "
    "torch.optim.AdamW",
    "trainer.seed=abc": "trainer.seed=abc: must be a whole number",
    f"trainer.seed={2**80}": f"trainer.seed={2**80}: must be at most 4294967295",
    "trainer.device=meta": "trainer.device=meta: must be auto, cpu, cuda, cuda:N or mps",
    "trainer.checkpoint=null": "trainer.checkpoint=null: must be a mapping of last, best, best_on",
    "trainer.checkpoint.last=maybe": "trainer.checkpoint.last=maybe: must be true or false",
    "trainer.sync_batchnorm=abc": "trainer.sync_batchnorm=abc: must be true or false",
    "trainer.num_workers=-1": "trainer.num_workers=-1: must be at least 0",
    "trainer.epochs=0": "trainer.epochs=0: must be at least 1",
    "trainer.precision=16": "trainer.precision=16: must be 32, bf16 or 16-mixed",
    "data.val_fraction=abc": "data.val_fraction=abc: must be a number",
    "data.val_fraction=1.5": "data.val_fraction=1.5: must be less than 1",
    "+optim.lrr=0.1": "optim.lrr: unknown key (did you mean lr?) (known: _target_, lr, momentum, dampening, "
    "weight_decay, nesterov, label_smoothing, decay_norm_and_bias)",
    "sched=step sched.gamma=0": "sched.gamma=0: must be greater than 0",
    "optim.nesterov=true optim.momentum=0": "optim.nesterov=true needs optim.momentum > 0 and optim.dampening=0",
    "data=synthetic data.train_size=0": "data.train_size=0: must be at least 1",
    "data=synthetic data.train_size=-1": "data.train_size=-1: must be at least 1",
    "data=synthetic data.val_size=0": "data.val_size=0: must be at least 1",
    "data=synthetic data.classes=abc": "data.classes=abc: must be a whole number",
    "data=synthetic data.shape=[1,8]": "data.shape=[1, 8]: must have 3 items",
    "data=imagefolder": "data.root: missing; give it a value, e.g. data.root=...",
    "data=imagefolder data.root=x data.memory_gb=abc": "data.memory_gb=abc: must be a number",
    # not settings, but also refused before anything is allocated, and so found by the same tests
    "data.val_fraction=0.999": "digits: data.val_fraction=0.999 leaves an empty training split (1,797 samples in "
    "the other); training and validation need at least one sample each",
    "data.val_fraction=0.0001": "digits: data.val_fraction=0.0001 leaves an empty validation split (1,797 samples "
    "in the other); training and validation need at least one sample each",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from spec_folder(tmp_path_factory, "settings")


@pytest.mark.parametrize("overrides", REFUSED)
def test_a_bad_setting_is_one_line_and_leaves_nothing(work: Path, overrides: str) -> None:
    run = train("arch=tiny.yaml", *overrides.split())
    assert run.code == 1, run.output
    lines = run.output.splitlines()
    assert lines[-1].endswith(REFUSED[overrides]), run.output
    assert "Traceback" not in run.output
    assert run.folders == []  # nothing that looks like a run
    if not overrides.startswith("data.val_fraction=0"):  # those are found when the data is read
        assert lines == [REFUSED[overrides]], run.output  # said before the spec is even compiled


def test_several_problems_are_said_together(work: Path) -> None:
    run = train("arch=tiny.yaml", "optim.lr=abc", "trainer.epochs=-1", "trainer.device=tpu")
    assert run.code == 1
    assert run.output.splitlines() == [
        "optim.lr=abc: must be a number",
        "trainer.epochs=-1: must be at least 1",
        "trainer.device=tpu: must be auto, cpu, cuda, cuda:N or mps",
    ]


def test_a_network_too_big_for_memory_is_refused_before_it_is_built(work: Path) -> None:
    (work / "huge.yaml").write_text(
        "name: huge\ninput: [1, 8, 8]\nlayers:\n  - {type: flatten}\n  - {type: linear, shape: [64, 2000000000]}\n"
        "  - {type: linear, shape: [2000000000, 10]}\n"
    )
    run = train("arch=huge.yaml")
    assert run.code == 1, run.output
    # 64 * 2e9 + 2e9 + 2e9 * 10 + 10 parameters; float32 weights, gradients and momentum: 12 bytes each
    assert "huge.yaml: 150,000,000,010 parameters need 1,676.4 GiB for their weights, gradients and " in run.output
    assert "Traceback" not in run.output and run.folders == []


def test_instantiate_builds_only_what_is_declared() -> None:
    optimizer = settings.instantiate(
        {"_target_": "torch.optim.SGD", "lr": 0.1}, params=[__import__("torch").zeros(1, requires_grad=True)]
    )
    assert type(optimizer).__name__ == "SGD"
    if settings.HYDRA_LINE >= (1, 4):  # the execution whitelist is Hydra 1.4's; validate() refuses it on 1.3
        with pytest.raises(Exception, match=r"os\.getcwd"):
            settings.instantiate({"_target_": "os.getcwd"})


def test_evaluate_reads_data_overrides_as_train_does(work: Path) -> None:
    run = train("arch=tiny.yaml", "trainer.epochs=1")
    assert run.code == 0, run.output
    ckpt = f"ckpt={run.folder / 'last.pt'}"
    bad = cnnforge("evaluate", ckpt, "data.val_fraction=abc", cwd=work)
    assert (bad.returncode, bad.stderr) == (2, "cnnforge evaluate: data.val_fraction=abc: must be a number\n")
    half = cnnforge("evaluate", ckpt, "data.root=elsewhere", "data.val_fraction=0.5", cwd=work)
    assert half.returncode == 0, half.stderr
    assert "(val, 898 samples)" in half.stdout  # half of 1,797, stratified: 0.5 read as a number
    typo = cnnforge("evaluate", ckpt, "data.download=false", cwd=work)
    assert typo.returncode == 2
    known = "name, root, val_fraction, normalize, train_fraction"
    assert typo.stderr == f"cnnforge evaluate: data.download: unknown key (known: {known})\n"


# -- both Hydra lines, warnings as errors ------------------------------------------------------------------------

HYDRA_LINES = {"1.3": ["hydra-core>=1.3,<1.4"], "1.4": ["--pre", "hydra-core>=1.4.0rc1,<1.5"]}


@pytest.fixture(scope="module", params=sorted(HYDRA_LINES))
def hydra_line(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """Hydra of one line (and its OmegaConf), and the folders to put first on PYTHONPATH for it: none where the
    installed Hydra is of that line, else one it is installed into from the package index."""
    line = request.param
    if settings.HYDRA_LINE == tuple(int(part) for part in line.split(".")):
        return line, []
    target = tmp_path_factory.mktemp(f"hydra-{line}")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-cache-dir", "--target", str(target), *HYDRA_LINES[line]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if install.returncode and not os.environ.get("CI"):
        pytest.skip(f"cannot install Hydra {line} here (no package index?): {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr
    return line, [str(target)]


def test_train_sweep_resume_and_evaluate_run_cleanly_under_each_hydra_line(
    hydra_line: tuple[str, list[str]], tmp_path: Path
) -> None:
    line, folders = hydra_line
    env = {**ENV, "PYTHONPATH": os.pathsep.join([*folders, str(Path(__file__).parent.parent)])}
    write_spec(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        return cnnforge(*args, cwd=tmp_path, timeout=300, env=env, python=("-W", "error"))

    version = subprocess.run(
        [sys.executable, "-c", "import hydra; print(hydra.__version__)"], env=env, capture_output=True, text=True
    )
    assert version.stdout.startswith(line), version.stdout
    common = ["arch=tiny.yaml", "trainer.device=cpu", "sched=cosine", "optim=adamw", "data=synthetic"]
    swept = run("train", "-m", *common, "trainer.epochs=1", "optim.lr=0.1,0.05", "hydra.sweep.dir=sweep")
    assert swept.returncode == 0, swept.stderr
    assert [row["folder"] for row in read_metrics(tmp_path / "sweep" / "sweep.csv")] == ["0_lr=0.1", "1_lr=0.05"]
    first = "trainer.resume=sweep/0_lr=0.1/last.pt"  # a run of its own, resumed from a sweep's first job
    resumed = run("train", *common, "trainer.epochs=2", first, "hydra.run.dir=resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2/2: train loss" in resumed.stdout + resumed.stderr
    assert "Warning" not in swept.stderr + resumed.stderr
    evaluated = run("evaluate", "ckpt=resumed/last.pt", "data.val_size=64")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "(val, 64 samples)" in evaluated.stdout
    refused = run("train", *common, "optim._target_=os.system")
    assert refused.returncode == 1
    assert (refused.stdout + refused.stderr).startswith("optim._target_=os.system: not one of torch.optim.SGD")


def test_readme_settings_example_is_what_train_prints(work: Path) -> None:
    readme = (Path(__file__).parent.parent / "docs" / "training.md").read_text()
    command, *shown = re.search(r"```console\n\$ (cnnforge train optim\.lr=abc .*?)```", readme, re.S)[1].splitlines()
    run = train(*command.split()[2:])
    assert run.code == 1
    assert run.output.splitlines() == shown
