"""Shared by the training-app tests: tiny specs, and `cnnforge train` run in this process or in a fresh
interpreter, always with the working folder (and so outputs/) in a temporary folder."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnforge.cli import main

# A network on digits' own 8x8 samples, with dropout so that resuming must restore the random state too.
TINY = """\
name: tiny
input: [CHANNELS, 8, 8]
layers:
  - {type: conv, shape: [CHANNELS, 4, 3, 3], padding: 1}   # -> [4, 8, 8]
  - {type: relu}
  - {type: maxpool, kernel: 2}                              # -> [4, 4, 4]
  - {type: flatten}                                         # -> [64]
  - {type: dropout, p: 0.3}
  - {type: linear, shape: [64, CLASSES]}
"""

# Single-threaded: fast on a busy small machine, and the same numbers in every process.
ENV = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"}


def write_spec(folder: Path, file: str = "tiny", classes: int = 10, channels: int = 1, name: str | None = None) -> Path:
    """TINY as `folder/FILE.yaml`, with its output and input channels set; the spec's name is `name` or FILE."""
    path = folder / f"{file}.yaml"
    text = TINY.replace("CLASSES", str(classes)).replace("CHANNELS", str(channels))
    path.write_text(text.replace("name: tiny", f"name: {name or file}"))
    return path


@contextlib.contextmanager
def app_folder(folder: Path) -> Iterator[Path]:
    """Run the app in this process from `folder`: one thread, and the working folder, sys.argv and the
    logging handlers Hydra replaces put back afterwards."""
    import torch

    root = logging.getLogger()
    handlers, level, argv, cwd = root.handlers[:], root.level, sys.argv[:], Path.cwd()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        sys.argv = argv
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def run_dirs(folder: Path) -> list[Path]:
    """The run folders (those holding a .hydra/) under folder/outputs, oldest first."""
    return sorted(p.parent for p in (folder / "outputs").rglob(".hydra"))


@dataclass
class Run:
    """The outcome of one `cnnforge train`: exit status, what it printed, and the run folders it made."""

    code: int
    output: str
    folders: list[Path]

    @property
    def folder(self) -> Path:
        (folder,) = self.folders
        return folder

    def rows(self) -> list[dict[str, str]]:
        return read_metrics(self.folder / "metrics.csv")


def train(*overrides: str) -> Run:
    """`cnnforge train OVERRIDES` in this process, from the current folder (see app_folder)."""
    import io

    before = set(run_dirs(Path.cwd()))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(["train", *overrides])
        except SystemExit as exit:
            code = exit.code
    return Run(code, out.getvalue(), [p for p in run_dirs(Path.cwd()) if p not in before])


def spec_folder(factory: Any, name: str) -> Iterator[Path]:
    """A fixture's body: a new temporary folder holding tiny.yaml, the app run from it (see app_folder)."""
    folder = factory.mktemp(name)
    write_spec(folder)
    with app_folder(folder):
        yield folder


def cnnforge(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`python [PYTHON] -m cnnforge ARGS` in a fresh interpreter (with `env` or ENV), stdout and stderr captured,
    neither a terminal."""
    return subprocess.run(
        [sys.executable, *python, "-m", "cnnforge", *args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def torchrun(*args: str, cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """`cnnforge train ARGS` in `processes` processes started by torchrun (gloo on the CPU), from `cwd`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return subprocess.run(
        [*command, "-m", "cnnforge", "train", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def checkpoint_weights(folder: Path, name: str = "last.pt") -> dict[str, Any]:
    """The model's state in a run folder's checkpoint."""
    import torch

    return torch.load(folder / name, weights_only=True)["model"]


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold equal weights (up to the order of floating-point sums across processes) and equal
    metrics."""
    import pytest
    import torch

    wa, wb = checkpoint_weights(a), checkpoint_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5, msg=key)
    rows_a, rows_b = read_metrics(a / "metrics.csv"), read_metrics(b / "metrics.csv")
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-4, abs=1e-5), key


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def same_run(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    """Assert two metrics tables agree on everything but timing."""
    timing = {"seconds", "images_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in a] == [
        {k: v for k, v in r.items() if k not in timing} for r in b
    ]


def digits_logits(checkpoint: Path) -> tuple[Any, Any]:
    """A digits run's checkpoint on the validation split (the default val_fraction): its logits [359, 10], computed
    here with torch, and the labels [359]."""
    import torch
    from omegaconf import OmegaConf

    from cnnforge.train.data import load
    from cnnforge.use import load as load_trained

    net = load_trained(checkpoint)
    data = load(OmegaConf.create({"name": "digits", "val_fraction": 0.2}), (1, 8, 8))
    x, labels = next(data.val.batches(len(data.val)))
    with torch.no_grad():
        return net.model(net.prepare(x)), labels


def torch_scores(logits: Any, labels: Any) -> tuple[float, list[tuple[int, int]]]:
    """The oracle of Scores: top-5 accuracy by torch.topk, and each class's samples and correct predictions counted
    from the labels and the logits' argmax."""
    in_top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1)
    predicted = logits.argmax(dim=1)
    counts = [(int((labels == c).sum()), int(((labels == c) & (predicted == c)).sum())) for c in range(logits.shape[1])]
    return float(in_top5.double().mean()), counts
