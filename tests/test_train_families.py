"""`cnnforge train arch=NAME` for every shipped torchvision family: a few steps on small synthetic data (its
classes bound to the data's 3), on the CPU, at the smallest input of 64, 96 or 128 square that the spec takes with
the same layers; the checkpoint then predicts an image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_torchvision_specs import ARCHITECTURES, FAMILIES, compiled, smaller
from train_helpers import app_folder, train

from benchmarks.loops import resized
from cnnforge.cli import main
from cnnforge.compiler import compile_file

# A step of two training samples and one validation sample: enough to run every part of a run.
SMALL = (
    "data=synthetic",
    "data.classes=3",
    "data.train_size=2",
    "data.val_size=1",
    "trainer.epochs=1",
    "trainer.batch_size=2",
    "trainer.num_workers=0",
    "optim.lr=0.001",
    "trainer.checkpoint.best=false",  # last.pt is enough: VGG-16's is half a gigabyte
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The app's folder: an image, and in architectures/ (which arch=NAME reads before the shipped specs) each
    shipped spec with its input made smaller (a spec that extends another, as it is)."""
    folder = tmp_path_factory.mktemp("families")
    Image.new("RGB", (40, 30), (200, 40, 90)).save(folder / "image.png")
    (folder / "architectures").mkdir()
    for spec in ARCHITECTURES.glob("*.yaml"):
        (folder / "architectures" / spec.name).write_text(spec.read_text())
        if "\ninput:" in spec.read_text():  # not a spec that extends another, and so has its input
            resized(spec, smaller(compile_file(spec)).spec.input, folder / "architectures")
    with app_folder(folder):
        yield folder


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_and_its_checkpoint_predicts(folder: Path, name: str, capsys) -> None:
    run = train(f"arch={name}", *SMALL)
    assert run.code == 0, run.output
    assert f": input {list(smaller(compiled(name)).spec.input)} -> output [3]" in run.output  # the smaller input
    assert "parameter classes bound to 3" in run.output
    rows = run.rows()
    assert len(rows) == 1 and float(rows[0]["train_loss"]) > 0
    checkpoint = run.folder / "last.pt"
    capsys.readouterr()
    assert main(["predict", f"ckpt={checkpoint}", "top_k=3", str(folder / "image.png")]) == 0
    line = capsys.readouterr().out.strip()  # image.png: 1 (0.337), 0 (0.336), 2 (0.327)
    image, _, classes = line.rpartition(": ")
    probabilities = [float(part.split("(")[1].rstrip(")")) for part in classes.split(", ")]
    assert image == str(folder / "image.png") and len(probabilities) == 3, line
    assert sum(probabilities) == pytest.approx(1, abs=2e-3)
    checkpoint.unlink()  # keep the temporary folder small
