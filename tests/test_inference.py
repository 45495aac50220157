"""`cnnforge evaluate` and `cnnforge predict` on a checkpoint of a short digits run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from train_helpers import Run, app_folder, digits_logits, torch_scores, train, write_spec

from cnnforge.cli import main
from cnnforge.train.data import load
from cnnforge.use import load as load_trained

DIGITS_VAL = 359


@dataclass
class Output:
    code: int
    out: str
    err: str


def cnnforge(capsys: pytest.CaptureFixture, *args: str) -> Output:
    """The CLI in this process."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return Output(code, out, err)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("inference")
    write_spec(folder)
    with app_folder(folder):
        run = train("arch=tiny.yaml", "trainer.epochs=2", "trainer.batch_size=32", "optim.lr=0.1")
        assert run.code == 0, run.output
        yield run


@dataclass
class Evaluated:
    """What evaluate printed."""

    data: str
    split: str
    samples: int
    loss: float
    accuracy: float
    top5: float | None  # printed only with more than 5 classes
    confusion: torch.Tensor  # [10, 10], rows: the true class
    per_class: list[tuple[int, int, float | None]]  # each class's samples, correct ones and accuracy (None: '-')


def parse_evaluate(out: str) -> Evaluated:
    """Evaluate's output: a line of scores, the confusion table, a blank line, the table of accuracy per class;
    each table's columns right-aligned, so its lines are all as long."""
    head, *lines = out.splitlines()
    pattern = r"tiny on (\w+) \((\w+), (\d+) samples\): loss ([\d.]+), accuracy ([\d.]+)(?:, top-5 ([\d.]+))?"
    match = re.fullmatch(pattern, head)
    assert match, head
    digits = [str(d) for d in range(10)]
    confusion, blank, per_class = lines[:11], lines[11], lines[12:]
    assert confusion[0].split() == ["true\\pred", *digits] and blank == ""
    assert per_class[0].split() == ["class", "samples", "correct", "accuracy"]
    for table in (confusion, per_class):
        assert [row.split()[0] for row in table[1:]] == digits
        assert len({len(row) for row in table}) == 1, table
    matrix = torch.tensor([[int(v) for v in row.split()[1:]] for row in confusion[1:]])
    rows = [row.split()[1:] for row in per_class[1:]]
    accuracies = [(int(n), int(hit), None if share == "-" else float(share)) for n, hit, share in rows]
    top5 = None if match[6] is None else float(match[6])
    return Evaluated(match[1], match[2], int(match[3]), float(match[4]), float(match[5]), top5, matrix, accuracies)


def assert_scored_as_torch_does(evaluated: Evaluated, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Top-5 accuracy and each class's samples and correct predictions, as torch computes them from the logits and
    the labels, are what evaluate printed."""
    top5, counts = torch_scores(logits, labels)
    assert evaluated.top5 == pytest.approx(top5, abs=6e-5)  # printed to 4 decimals
    assert [(samples, correct) for samples, correct, _ in evaluated.per_class] == counts
    assert [accuracy for _, _, accuracy in evaluated.per_class] == [
        pytest.approx(correct / samples, abs=6e-5) if samples else None for samples, correct in counts
    ]


@pytest.mark.parametrize("which", ["last", "best"])
def test_evaluate_matches_the_runs_validation(trained: Run, which: str, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "evaluate", f"ckpt={trained.folder / f'{which}.pt'}", "device=cpu")
    assert result.code == 0, result.err
    evaluated = parse_evaluate(result.out)
    rows = trained.rows()
    row = rows[-1] if which == "last" else max(rows, key=lambda r: float(r["val_acc"]))
    assert (evaluated.data, evaluated.split, evaluated.samples) == ("digits", "val", DIGITS_VAL)
    assert evaluated.loss == pytest.approx(float(row["val_loss"]), abs=6e-5)  # printed to 4 decimals
    assert evaluated.accuracy == pytest.approx(float(row["val_acc"]), abs=6e-5)
    confusion = evaluated.confusion
    assert confusion.shape == (10, 10)
    assert int(confusion.sum()) == DIGITS_VAL
    assert int(confusion.trace()) / DIGITS_VAL == pytest.approx(evaluated.accuracy, abs=6e-5)
    logits, labels = digits_logits(trained.folder / f"{which}.pt")
    assert confusion.sum(dim=1).tolist() == torch.bincount(labels, minlength=10).tolist()  # rows: the true classes
    assert_scored_as_torch_does(evaluated, logits, labels)


def test_evaluate_the_training_split(trained: Run, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "evaluate", f"ckpt={trained.folder / 'last.pt'}", "split=train", "batch_size=100")
    assert result.code == 0, result.err
    evaluated = parse_evaluate(result.out)
    assert (evaluated.split, evaluated.samples, int(evaluated.confusion.sum())) == ("train", 1438, 1438)
    assert sum(samples for samples, _, _ in evaluated.per_class) == 1438
    assert 0.5 < evaluated.accuracy <= 1 and evaluated.accuracy <= evaluated.top5 <= 1  # type: ignore[operator]


def test_a_class_without_samples_has_no_accuracy(trained: Run, capsys: pytest.CaptureFixture) -> None:
    """Six random 9x9 images in ten classes: some classes have none."""
    size = ["data=synthetic", "data.shape=[1,9,9]", "data.train_size=1", "data.val_size=6"]
    result = cnnforge(capsys, "evaluate", f"ckpt={trained.folder / 'last.pt'}", "device=cpu", *size)
    assert result.code == 0, result.err
    evaluated = parse_evaluate(result.out)
    assert (evaluated.data, evaluated.samples) == ("synthetic", 6)
    assert sum(accuracy is None for _, _, accuracy in evaluated.per_class) >= 4
    assert [row.split()[-1] == "-" for row in result.out.splitlines()[-10:]] == [
        accuracy is None for _, _, accuracy in evaluated.per_class
    ]
    config = {"name": "synthetic", "shape": [1, 9, 9], "classes": 10, "train_size": 1, "val_size": 6, "seed": 0}
    x, labels = next(load(OmegaConf.create(config), (1, 8, 8)).val.batches(6))
    net = load_trained(trained.folder / "last.pt")
    with torch.no_grad():
        logits = net.model(net.inputs(x))  # float pixels in [0, 1], resized to 8x8
    assert_scored_as_torch_does(evaluated, logits, labels)


def test_evaluate_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "evaluate", f"ckpt={tmp_path / 'none.pt'}")
    assert result.code == 1
    assert result.err == f"cnnforge evaluate: error: {tmp_path / 'none.pt'}: no such checkpoint file\n"
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((), ""),
        (("split=val",), ""),
        (("ckpt=x.pt", "splitt=train"), "unknown option 'splitt' (options: ckpt, data, split, device, batch_size)"),
        (("ckpt=x.pt", "split=tests"), "split=tests: needs val, train or test"),
        (("ckpt=x.pt", "a", "b"), ""),
        (("ckpt=x.pt", "split=val", "."), ".: a folder is evaluated whole, without data or split options"),
        (("ckpt=x.pt", "batch_size=0"), "batch_size=0: needs a positive whole number"),
        (("ckpt=x.pt", "batch_size=many"), "batch_size=many: needs a positive whole number"),
        (("ckpt=x.pt", "device=gpu"), "device=gpu: not a device (auto, cpu, cuda, cuda:N or mps)"),
        (("ckpt=x.pt", "device=cuda:99"), "device=cuda:99: this machine has no such device"),
    ],
    ids=str,
)
def test_evaluate_usage(args: tuple[str, ...], problem: str, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "evaluate", *args)
    assert result.code == 2
    first, *rest = result.err.splitlines()
    assert first.startswith(f"cnnforge evaluate: {problem or 'usage: cnnforge evaluate ckpt=PATH'}")
    assert (rest[-1] if rest else first).endswith("[batch_size=N] [FOLDER]")  # the usage line
    assert result.out == ""


# -- predict --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images(trained: Run, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, torch.Tensor]]:
    """Five validation digits as 8-bit PNGs (digits' 0..16 scaled to 0..255), with the model's class
    probabilities for the original samples."""
    folder = tmp_path_factory.mktemp("images")
    net = load_trained(trained.folder / "last.pt")
    model, prepare = net.model, net.prepare
    data = load(OmegaConf.create({"name": "digits", "val_fraction": 0.2}), (1, 8, 8))
    x, _ = next(data.val.batches(5))
    with torch.no_grad():
        probabilities = model(prepare(x)).softmax(dim=1)
    images = []
    for i, (sample, p) in enumerate(zip(x, probabilities, strict=True)):
        pixels = (sample[0].float() * 255 / 16).round().to(torch.uint8)
        path = folder / f"digit{i}.png"
        Image.frombytes("L", (8, 8), bytes(pixels.flatten().tolist())).save(path)
        images.append((path, p))
    return images


def parse_predictions(line: str) -> tuple[str, list[tuple[str, float]]]:
    name, _, rest = line.partition(": ")
    return name, [(m[1], float(m[2])) for m in re.finditer(r"(\w+) \(([\d.]+)\)", rest)]


def test_predict_prints_the_top_classes(trained: Run, digit_images, capsys: pytest.CaptureFixture) -> None:
    paths = [str(path) for path, _ in digit_images]
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", "top_k=3", "device=cpu", *paths)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == len(paths)
    for line, (path, expected) in zip(lines, digit_images, strict=True):
        name, top = parse_predictions(line)
        assert name == str(path)
        assert len(top) == 3
        probabilities = [p for _, p in top]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.001
        # the image is prepared as the training data was: the same answer as for the original sample
        assert top[0][0] == str(int(expected.argmax()))
        assert probabilities[0] == pytest.approx(float(expected.max()), abs=0.02)


def test_predict_converts_colour_and_size(trained: Run, digit_images, tmp_path: Path, capsys) -> None:
    path, expected = digit_images[0]
    with Image.open(path) as image:
        image.convert("RGB").save(tmp_path / "colour.png")
        image.resize((16, 16), Image.NEAREST).save(tmp_path / "big.png")
    names = [str(tmp_path / "colour.png"), str(tmp_path / "big.png")]
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", "top_k=1", *names)
    assert result.code == 0, result.err
    for line, name in zip(result.out.splitlines(), names, strict=True):
        assert parse_predictions(line)[0] == name
        assert len(parse_predictions(line)[1]) == 1
    assert parse_predictions(result.out.splitlines()[0])[1][0][0] == str(int(expected.argmax()))


def test_predict_bad_image(trained: Run, digit_images, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    good = str(digit_images[0][0])
    missing = str(tmp_path / "missing.png")
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", str(bad), good, missing)
    assert result.code == 1
    assert [parse_predictions(line)[0] for line in result.out.splitlines()] == [good]  # the good one still runs
    errors = result.err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"{bad}: error: cannot read image")
    assert errors[1].startswith(f"{missing}: error: cannot read image")
    assert "Traceback" not in result.err


def test_predict_reads_16_bit_images_as_their_8_bit_equivalent(trained: Run, digit_images, tmp_path: Path, capsys):
    """Levels v * 257 at 16 bits are v at 8: the same picture, so the same prediction (once clipped to 0/255)."""
    path, _ = digit_images[1]
    levels = np.asarray(Image.open(path))
    assert levels.min() == 0 and levels.max() == 255  # the 16-bit copy spans 0..65535
    Image.fromarray(levels.astype(np.uint16) * 257).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    names = [str(path), str(tmp_path / "16.png")]
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", "top_k=10", *names)
    assert result.code == 0, result.err
    eight, sixteen = (parse_predictions(line)[1] for line in result.out.splitlines())
    assert eight == sixteen


def test_predict_refuses_huge_images_and_goes_on(trained: Run, digit_images, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # as a decompression bomb is to the default bound
    warned, raised = tmp_path / "warned.png", tmp_path / "raised.png"  # over the bound; over twice the bound
    Image.new("L", (11, 11)).save(warned)
    Image.new("L", (15, 15)).save(raised)
    good = str(digit_images[0][0])
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", str(warned), good, str(raised))
    assert result.code == 1
    assert [parse_predictions(line)[0] for line in result.out.splitlines()] == [good]
    assert result.err.splitlines() == [
        f"{warned}: error: refused: Image size (121 pixels) exceeds limit of 100 pixels, could be decompression "
        "bomb DOS attack.",
        f"{raised}: error: refused: Image size (225 pixels) exceeds limit of 200 pixels, could be decompression "
        "bomb DOS attack.",
    ]


def test_predict_missing_checkpoint(digit_images, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "predict", f"ckpt={tmp_path / 'none.pt'}", str(digit_images[0][0]))
    assert result.code == 1
    assert result.err == f"cnnforge predict: error: {tmp_path / 'none.pt'}: no such checkpoint file\n"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((), ""),
        (("ckpt=x.pt",), ""),
        (("top_k=2", "a.png"), ""),
        (("ckpt=x.pt", "topk=2", "a.png"), "unknown option 'topk' (options: ckpt, model, top_k, format, device)"),
        (("ckpt=x.pt", "top_k=0", "a.png"), "top_k=0: needs a positive whole number"),
        (("ckpt=x.pt", "top_k=-1", "a.png"), "top_k=-1: needs a positive whole number"),
        (("ckpt=x.pt", "device=gpu", "a.png"), "device=gpu: not a device"),
        (("ckpt=x.pt", "format=xml", "a.png"), "format=xml: needs text, json or csv"),
        (("ckpt=x.pt", "a.png", "--format"), "--format: needs a value"),
    ],
    ids=str,
)
def test_predict_usage(args: tuple[str, ...], problem: str, capsys: pytest.CaptureFixture) -> None:
    result = cnnforge(capsys, "predict", *args)
    assert result.code == 2
    first, *rest = result.err.splitlines()
    assert first.startswith(f"cnnforge predict: {problem or 'usage: cnnforge predict ckpt=PATH'}")
    assert (rest[-1] if rest else first).endswith("IMAGE_OR_FOLDER...")


@pytest.fixture(scope="module")
def image_tree(digit_images, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A folder of the digit images, two of them in nested subfolders, with files that are not images; and the
    image paths in sorted order."""
    root = tmp_path_factory.mktemp("tree")
    where = ["b.png", "a/z.png", "a/b/c.png", "c.png", "d.PNG"]
    for (path, _), name in zip(digit_images, where, strict=True):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(path.read_bytes())
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "labels.csv").write_text("file,label\n")
    return root, [root / name for name in ["a/b/c.png", "a/z.png", "b.png", "c.png", "d.PNG"]]


def test_predict_a_folder_finds_its_images_in_order(trained: Run, image_tree, capsys) -> None:
    root, expected = image_tree
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", str(root))
    assert result.code == 0, result.err
    assert [parse_predictions(line)[0] for line in result.out.splitlines()] == [str(p) for p in expected]
    assert result.err == f"{root}: note: skipped 2 files that are not images: a/labels.csv, notes.txt\n"


@pytest.mark.parametrize("how", [("format=json",), ("--format", "json"), ("--format=json",)], ids=" ".join)
def test_predict_json_is_a_list_of_objects(trained: Run, digit_images, image_tree, how, capsys) -> None:
    import json

    root, found = image_tree
    single = str(digit_images[0][0])
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", *how, "top_k=2", single, str(root))
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [row["file"] for row in rows] == [single, *map(str, found)]
    text = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", "top_k=2", single, str(root)).out
    for row, line in zip(rows, text.splitlines(), strict=True):
        assert list(row) == ["file", "top"] and [list(top) for top in row["top"]] == [["class", "probability"]] * 2
        name, top = parse_predictions(line)
        assert row["file"] == name
        assert [(t["class"], round(t["probability"], 3)) for t in row["top"]] == top  # as the text said
    # the original sample's class and probability
    (_, expected), first = digit_images[0], rows[0]["top"][0]
    assert first["class"] == str(int(expected.argmax()))
    assert first["probability"] == pytest.approx(float(expected.max()), abs=0.02)


def test_predict_csv_has_a_column_pair_per_class(trained: Run, digit_images, image_tree, tmp_path, capsys) -> None:
    import csv

    root, found = image_tree
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    args = (f"ckpt={trained.folder / 'last.pt'}", "top_k=3", str(bad), str(root))
    result = cnnforge(capsys, "predict", *args, "--format", "csv")
    assert result.code == 1  # as for text: the unreadable image on stderr, the others predicted
    note, error = result.err.splitlines()  # folders are searched first, then the images read
    assert note.startswith(f"{root}: note: skipped 2 files") and error.startswith(f"{bad}: error: cannot read image")
    header, *rows = list(csv.reader(result.out.splitlines()))
    assert header == ["file", "class1", "prob1", "class2", "prob2", "class3", "prob3"]
    assert [row[0] for row in rows] == [str(p) for p in found]
    text = cnnforge(capsys, "predict", *args).out.splitlines()
    for row, line in zip(rows, text, strict=True):
        assert [(row[i], round(float(row[i + 1]), 3)) for i in (1, 3, 5)] == parse_predictions(line)[1]


def test_predict_an_empty_folder_is_an_error(trained: Run, digit_images, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    good = str(digit_images[0][0])
    result = cnnforge(capsys, "predict", f"ckpt={trained.folder / 'last.pt'}", str(tmp_path / "empty"), good)
    assert result.code == 1
    assert [parse_predictions(line)[0] for line in result.out.splitlines()] == [good]
    assert result.err == f"{tmp_path / 'empty'}: error: no image files in this folder\n"


# -- checkpoints that load but do not hold a usable model -----------------------------------------------------


def _crafted(state: dict, kind: str) -> None:
    """Change a checkpoint's loaded state as a crafted or damaged file would hold it."""
    if kind.startswith("no-"):
        *parents, last = kind.removeprefix("no-").split(".")
        holder = state
        for parent in parents:
            holder = holder[parent]
        del holder[last]
    elif kind == "classes-a-number":
        state["data"]["classes"] = 10
    elif kind == "other-weights":
        state["model"]["conv0.weight"] = torch.zeros(2, 1, 3, 3)
    elif kind == "extra-weights":
        state["model"]["head.weight"] = torch.zeros(1)
    elif kind == "fewer-classes":
        state["data"]["classes"] = ["a", "b", "c"]
    elif kind == "other-input":
        state["prepare"]["target"] = [1, 16, 16]
    elif kind == "broken-spec":
        state["spec"]["text"] = "name: broken\ninput: [1, 8, 8]\nlayers:\n  - {type: conv, shape: [1, 4, 30, 30]}\n"
    elif kind == "tensor-as-classes":
        state["data"]["classes"] = [torch.zeros(1)]


CRAFTED = {
    "no-model": "not a complete cnnforge checkpoint: missing 'model'",
    "no-spec": "not a complete cnnforge checkpoint: missing 'spec'",
    "no-prepare": "not a complete cnnforge checkpoint: missing 'prepare'",
    "no-data.classes": "not a complete cnnforge checkpoint: missing 'data.classes'",
    "no-config.data": "not a complete cnnforge checkpoint: missing 'config.data'",
    "classes-a-number": "not a complete cnnforge checkpoint: 'data.classes' is a int, not a list",
    "tensor-as-classes": "not a complete cnnforge checkpoint: 'data.classes' holds other things than class names",
    "other-weights": "its weights do not fit its spec tiny: conv0.weight is [2, 1, 3, 3] in the file, [4, 1, 3, 3] "
    "in the spec",
    "extra-weights": "its weights do not fit its spec tiny: the file has head.weight, which the spec has not",
    "fewer-classes": "its spec tiny gives [10], not one score for each of its 3 classes",
    "other-input": "its 'prepare' makes inputs [1, 16, 16], but its spec tiny takes [1, 8, 8]",
    "broken-spec": "its spec does not compile: <checkpoint>",
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_an_incomplete_checkpoint_is_one_line(trained: Run, digit_images, tmp_path: Path, kind: str, capsys) -> None:
    state = torch.load(trained.folder / "last.pt", weights_only=True)
    _crafted(state, kind)
    path = tmp_path / "crafted.pt"
    torch.save(state, path)
    image = str(digit_images[0][0])
    for command, *args in (("predict", image), ("evaluate",), ("features", f"out={tmp_path}", image)):
        result = cnnforge(capsys, command, f"ckpt={path}", *args)
        assert (result.code, result.out) == (1, ""), (command, result.err)
        (line,) = result.err.splitlines()
        expected = f"cnnforge {command}: error: {path}: {CRAFTED[kind]}"
        assert line.startswith(expected.removesuffix("<checkpoint>")), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.pt"]


def test_a_report_says_what_its_checkpoint_lacks(trained: Run, tmp_path: Path) -> None:
    from cnnforge.report.page import write

    state = torch.load(trained.folder / "last.pt", weights_only=True)
    del state["progress"]
    (tmp_path / "config.yaml").write_text((trained.folder / "config.yaml").read_text())
    torch.save(state, tmp_path / "best.pt")
    text = write(tmp_path).read_text()
    assert (
        f"best.pt could not be evaluated: {tmp_path / 'best.pt'}: not a complete cnnforge checkpoint: missing " in text
    )


class Payload:
    """Unpickling this would run print: code in a file that claims to be a checkpoint."""

    def __reduce__(self) -> tuple:
        return print, ("ran",)


def test_a_checkpoint_holding_code_is_refused_without_advice_to_run_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "payload.pt"
    torch.save({"format": "cnnforge-checkpoint/1", "model": Payload()}, path)
    result = cnnforge(capsys, "predict", f"ckpt={path}", "x.png")
    assert result.code == 1 and result.out == ""
    assert result.err == (
        f"cnnforge predict: error: {path}: refused: the file holds Python code (a pickled object, print), "
        "which cnnforge never runs; only tensors and plain values are read\n"
    )


# -- the Python API ------------------------------------------------------------------------------------------------


def test_load_gives_the_model_its_spec_and_classes(trained: Run) -> None:
    from cnnforge import load

    net = load(trained.folder / "last.pt")
    assert load is load_trained
    assert net.classes == [str(d) for d in range(10)]
    assert net.compiled.spec.name == "tiny" and net.compiled.output == (10,)
    assert [name for name, _ in net.model.named_children()] == [layer.name for layer in net.compiled.layers]
    assert not net.model.training
    weights = torch.load(trained.folder / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(net.model.state_dict()[k], v) for k, v in weights.items())


def test_predict_from_python_takes_a_path_a_pil_image_or_pixels(trained: Run, digit_images) -> None:
    net = load_trained(trained.folder / "last.pt")
    path, expected = digit_images[2]
    with Image.open(path) as image:
        pixels = torch.from_numpy(np.asarray(image).copy())[None]  # uint8 [1, 8, 8]
        answers = [net.predict(path, top_k=2), net.predict(str(path), 2), net.predict(image, 2), net.predict(pixels, 2)]
    assert answers[1:] == answers[:-1]
    (first, p1), (second, p2) = answers[0]
    top = expected.topk(2)
    assert [first, second] == [str(int(i)) for i in top.indices]  # the original sample's answer
    assert p1 == pytest.approx(float(top.values[0]), abs=0.02) and p1 >= p2
    # pixels as floats in [0, 1], and a batch, give the same probabilities
    single = net.probabilities(pixels)
    assert single.shape == (10,) and float(single.sum()) == pytest.approx(1, abs=1e-5)
    assert torch.allclose(net.probabilities(pixels.float() / 255), single, atol=1e-6)
    batch = torch.stack([pixels, pixels.flip(-1)])  # [2, 1, 8, 8]
    assert net.probabilities(batch).shape == (2, 10)
    assert torch.allclose(net.probabilities(batch)[0], single, atol=1e-6)


def test_python_predict_says_what_it_takes(trained: Run) -> None:
    net = load_trained(trained.folder / "last.pt")
    with pytest.raises(ValueError, match=r"expected pixels \[C, H, W\] or \[N, C, H, W\], found a tensor \[8, 8\]"):
        net.predict(torch.zeros(8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="predict takes one image; probabilities takes a batch"):
        net.predict(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
