"""`cnnforge evaluate` on labelled data apart from the training run's: an image folder's test/ split, and a folder
of class folders given as it is."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_helpers import Run, app_folder, train, write_spec

from cnnforge.cli import main
from cnnforge.use import load

# Images per class in each split: the counts differ, so a line that reports the wrong split or class shows it.
COUNTS = {"train": {"dark": 12, "light": 12, "stripes": 12}, "val": {"dark": 2, "light": 3, "stripes": 3}}
TEST = {"dark": 3, "light": 4, "stripes": 5}


def pixels(kind: str, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 grayscale image of a kind: dark, light, or vertical stripes, with noise."""
    base = {"dark": np.full((8, 8), 40.0), "light": np.full((8, 8), 215.0)}.get(kind)
    if base is None:
        base = np.tile([30.0, 225.0], (8, 4))
    return np.clip(base + rng.normal(0, 15, (8, 8)), 0, 255).astype(np.uint8)


def write_images(root: Path, counts: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind, n in counts.items():
        (root / kind).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(pixels(kind, rng)).save(root / kind / f"{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Path]]:
    folder = tmp_path_factory.mktemp("evaluate")
    write_spec(folder, classes=3)
    shapes = folder / "shapes"
    for seed, (split, counts) in enumerate([*COUNTS.items(), ("test", TEST)]):
        write_images(shapes / split, counts, seed)
    with app_folder(folder):
        run = train("arch=tiny.yaml", "data=imagefolder", "data.root=shapes", "trainer.epochs=3", "optim.lr=0.1")
        assert run.code == 0, run.output
        yield run, shapes


def evaluate(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def parse(out: str) -> tuple[str, int, float, list[list[int]], list[list[str]]]:
    """(which split, samples, accuracy, confusion rows, per-class rows) from evaluate's output. Three classes: the
    first line has no top-5 accuracy."""
    head, columns, *rest = out.splitlines()
    match = re.fullmatch(r"tiny on imagefolder \((.+), (\d+) samples\): loss [\d.]+, accuracy ([\d.]+)", head)
    assert match, head
    assert columns.split() == ["true\\pred", "dark", "light", "stripes"]
    rows, (blank, per_class_head, *per_class) = rest[:3], rest[3:]
    assert blank == "" and per_class_head.split() == ["class", "samples", "correct", "accuracy"]
    assert [row.split()[0] for row in rows] == [row.split()[0] for row in per_class] == ["dark", "light", "stripes"]
    confusion = [[int(v) for v in row.split()[1:]] for row in rows]
    return match[1], int(match[2]), float(match[3]), confusion, [row.split()[1:] for row in per_class]


def predicted_by_predict(checkpoint: Path, root: Path) -> dict[Path, str]:
    """The most probable class of each root/<class>/ image, image by image."""
    net = load(checkpoint)
    return {path: net.predict(path, top_k=1)[0][0] for path in sorted(root.glob("*/*.png"))}


@pytest.mark.parametrize("how", ["split", "folder", "root"])
def test_evaluate_a_separate_test_folder(trained, how: str, capsys: pytest.CaptureFixture) -> None:
    run, shapes = trained
    args = {
        "split": ["split=test"],  # the checkpoint's own data config: data.root=shapes
        "folder": [str(shapes / "test")],
        "root": ["data=imagefolder", f"data.root={shapes}", "split=test"],
    }[how]
    code, out, err = evaluate(capsys, f"ckpt={run.folder / 'last.pt'}", "device=cpu", *args)
    assert code == 0, err
    which, samples, accuracy, confusion, per_class = parse(out)
    root = Path("shapes") if how == "split" else shapes
    assert which == f"{'all' if how == 'folder' else 'test'}: {root / 'test'}"
    assert samples == sum(TEST.values())
    assert [sum(row) for row in confusion] == list(TEST.values())  # rows: the true classes of the test images
    predicted = predicted_by_predict(run.folder / "last.pt", shapes / "test")
    right = [path.parent.name for path, name in predicted.items() if name == path.parent.name]
    assert accuracy == pytest.approx(len(right) / samples, abs=6e-5)
    assert per_class == [[str(n), str(right.count(kind)), f"{right.count(kind) / n:.4f}"] for kind, n in TEST.items()]


def test_the_validation_split_is_still_the_default(trained, capsys: pytest.CaptureFixture) -> None:
    run, _ = trained
    code, out, err = evaluate(capsys, f"ckpt={run.folder / 'last.pt'}", "device=cpu")
    assert code == 0, err
    which, samples, _, confusion, _ = parse(out)
    assert (which, samples) == ("val", sum(COUNTS["val"].values()))
    assert [sum(row) for row in confusion] == list(COUNTS["val"].values())


def test_other_classes_are_named_with_the_checkpoint_s(trained, tmp_path: Path, capsys) -> None:
    run, _ = trained
    write_images(tmp_path / "other", {"dark": 2, "light": 2, "round": 2}, seed=9)
    code, out, err = evaluate(capsys, f"ckpt={run.folder / 'last.pt'}", str(tmp_path / "other"))
    assert (code, out) == (2, "")
    assert err == (
        f"cnnforge evaluate: imagefolder (all: {tmp_path / 'other'}) has classes ['dark', 'light', 'round'], but tiny "
        "was trained on imagefolder with classes ['dark', 'light', 'stripes'] (only in the data: ['round']; only in "
        "the checkpoint: ['stripes'])\n"
    )


def test_a_folder_of_splits_given_as_a_test_folder_says_so(trained, capsys) -> None:
    run, shapes = trained
    code, _, err = evaluate(capsys, f"ckpt={run.folder / 'last.pt'}", str(shapes))
    assert code == 2
    assert err.startswith(f"cnnforge evaluate: imagefolder (all: {shapes}) has classes ['test', 'train', 'val'], ")
    assert err.endswith(f"; {shapes} holds val/, train/, test/: give one of them, or data.root={shapes} split=NAME\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("data=digits", "split=test"),
            "cnnforge evaluate: split=test: digits has train and val splits only; a test split is an image folder's "
            "ROOT/test/ (data=imagefolder data.root=ROOT), or give a folder of class folders as FOLDER\n",
        ),
        (
            ("data.root=nowhere", "split=test"),
            "cnnforge evaluate: error: nowhere/test/: no such folder; it should hold ",
        ),
    ],
    ids=["not-a-folder-data-set", "no-test-folder"],
)
def test_a_test_split_that_is_not_there(trained, args, message: str, capsys) -> None:
    run, _ = trained
    code, out, err = evaluate(capsys, f"ckpt={run.folder / 'last.pt'}", *args)
    assert (code, out) == (2 if message.endswith("\n") else 1, "")
    assert err.startswith(message) and err.count("\n") == 1
