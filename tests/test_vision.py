"""The torchvision data sets on small files written in each real format: idx (MNIST, Fashion-MNIST), pickled
batches (CIFAR-10) and image folders; what a missing file says; and `cnnforge train` on each, end to end (in this
process, as the training app's tests run it)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import train_helpers
from omegaconf import DictConfig, OmegaConf

from cnnforge.train.data import DataError, TensorSplit, load
from cnnforge.train.vision import FolderSplit

datasets = pytest.importorskip("torchvision.datasets")
Image = pytest.importorskip("PIL.Image")

CONF = Path(__file__).resolve().parent.parent / "cnnforge" / "conf"
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TINY = """name: tiny
params: {classes: 10}
input: [3, 16, 16]
layers:
  - {type: conv, shape: [3, 4, 3, 3]}
  - {type: relu}
  - {type: flatten}
  - {type: linear, shape: [784, '${classes}']}
"""


def data_config(name: str, **overrides: object) -> DictConfig:
    """The shipped data config `name` with `overrides`, under a root that also holds the trainer's keys."""
    data = OmegaConf.merge(OmegaConf.load(CONF / "data" / f"{name}.yaml"), overrides)
    return OmegaConf.create({"trainer": OmegaConf.load(CONF / "trainer" / "default.yaml"), "data": data}).data


# -- writing each format ------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An idx file: 0, 0, type 0x08 (ubyte), the number of dimensions, each size as big-endian int32, the data."""
    body = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes() + array.tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)


def mnist_files(root: Path, folder: str = "MNIST", train: int = 48, test: int = 16, gz: bool = True) -> dict:
    """Images and labels in <root>/<folder>/raw/ as torchvision's MNIST reads them; returns what was written."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", train), ("t10k", test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    for name, array in arrays.items():
        write_idx(raw / name, array, gz)
    return arrays


def cifar_files(root: Path, per_batch: int = 4, test: int = 8) -> dict[str, np.ndarray]:
    """Pickled batches and batches.meta in <root>/cifar-10-batches-py/; returns each batch's [N, 3072] data."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in CIFAR_FILES:
        n = test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # rows: 1024 red, 1024 green, 1024 blue
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {"batch_label": name, "labels": labels, "data": data, "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_CLASSES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return written


def cifar_checksums(root: Path) -> tuple[list, list, dict]:
    """CIFAR10's train_list, test_list and meta with the md5 sums of the files under `root`."""
    folder = root / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    return (
        [[name, md5(name)] for name in CIFAR_FILES[:5]],
        [["test_batch", md5("test_batch")]],
        {"filename": "batches.meta", "key": "label_names", "md5": md5("batches.meta")},
    )


@pytest.fixture
def cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Small CIFAR-10 files, and torchvision's checksums of the real ones swapped for theirs."""
    written = cifar_files(tmp_path)
    train_list, test_list, meta = cifar_checksums(tmp_path)
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(datasets.CIFAR10, "meta", meta)
    return written


def image_folder(root: Path, classes: dict[str, int]) -> None:
    """PNGs of varied sizes and modes (L, RGB, RGBA) in <root>/<class>/."""
    rng = np.random.default_rng(2)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            h, w = 9 + 3 * (i % 5), 20 - 2 * (i % 7)
            pixels = rng.integers(0, 256, (h, w, [3, 1, 4][i % 3]), dtype=np.uint8)  # RGB, L, RGBA
            Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image: left out")


# -- MNIST and Fashion-MNIST --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "unpacked"])
@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_as_uint8_tensors(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    written = mnist_files(tmp_path, folder, gz=gz)
    data = load(data_config(name, root=str(tmp_path)), (1, 32, 32))
    assert (data.name, data.scale, data.shape) == (name, 255.0, (1, 28, 28))
    assert isinstance(data.train, TensorSplit) and isinstance(data.val, TensorSplit)
    for split, prefix in ((data.train, "train"), (data.val, "t10k")):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert torch.equal(split.x[:, 0], torch.from_numpy(written[f"{prefix}-images-idx3-ubyte"]))
        assert torch.equal(split.y, torch.from_numpy(written[f"{prefix}-labels-idx1-ubyte"]).long())
    assert (len(data.train), len(data.val)) == (48, 16)
    expected = [str(d) for d in range(10)] if name == "mnist" else datasets.FashionMNIST.classes
    assert data.classes == expected
    assert "test set" in data.notes[0]


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_missing_idx_files_say_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, folder: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as error:
        load(data_config(name), (1, 28, 28))
    assert str(error.value) == (
        f"no {'MNIST' if name == 'mnist' else 'Fashion-MNIST'} files in data/{folder}/raw/: put "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz there (gzipped or not), or set data.download=true where a network is reachable"
    )


def test_a_missing_idx_file_is_named(tmp_path: Path) -> None:
    mnist_files(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"MNIST/raw/ lacks t10k-labels-idx1-ubyte.gz: put"):
        load(data_config("mnist", root=str(tmp_path)), (1, 28, 28))


def test_a_file_that_is_not_idx_is_refused(tmp_path: Path) -> None:
    mnist_files(tmp_path, gz=False)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"MNIST/raw/: the MNIST files are not idx files torchvision can read"):
        load(data_config("mnist", root=str(tmp_path)), (1, 28, 28))


def test_a_failed_download_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.MNIST, "mirrors", [(tmp_path / "nowhere").as_uri() + "/"])
    with pytest.raises(DataError, match=r"could not download MNIST into .*MNIST/raw/ \(.*\); where no network"):
        load(data_config("mnist", root=str(tmp_path), download=True), (1, 28, 28))


def test_without_torchvision_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(DataError) as error:
        load(data_config("mnist", root=str(tmp_path)), (1, 28, 28))
    # torchvision with the installed torch, not the extra alone (which would replace torch with a CUDA build)
    version = importlib.metadata.version("torch")
    assert (
        f"needs torchvision, in the vision extra: pip install 'torch=={version}' torchvision (the torchvision built "
        "for that torch; on a CPU-only machine add --index-url https://download.pytorch.org/whl/cpu), then "
        "pip install 'cnnforge[vision]'"
    ) in str(error.value)


# -- CIFAR-10 -----------------------------------------------------------------------------------------------------


def test_cifar10_batches_load_as_uint8_tensors(tmp_path: Path, cifar: dict) -> None:
    data = load(data_config("cifar10", root=str(tmp_path)), (3, 32, 32))
    assert (data.name, data.scale, data.shape, data.classes) == ("cifar10", 255.0, (3, 32, 32), CIFAR_CLASSES)
    assert (len(data.train), len(data.val)) == (20, 8)
    for split, names in ((data.train, CIFAR_FILES[:5]), (data.val, ["test_batch"])):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64 and split.x.is_contiguous()
        rows = np.concatenate([cifar[name][0] for name in names])
        assert torch.equal(split.x, torch.from_numpy(rows).view(-1, 3, 32, 32))  # stored channel by channel
        assert split.y.tolist() == [label for name in names for label in cifar[name][1]]


def test_cifar10_archive_is_unpacked(tmp_path: Path, cifar: dict) -> None:
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "cifar-10-batches-py", "cifar-10-batches-py")
    for file in (tmp_path / "cifar-10-batches-py").iterdir():
        file.unlink()
    data = load(data_config("cifar10", root=str(tmp_path)), (3, 32, 32))
    assert (len(data.train), len(data.val)) == (20, 8)


def test_missing_cifar10_files_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as error:
        load(data_config("cifar10"), (3, 32, 32))
    assert str(error.value) == (
        "no CIFAR-10 files in data/cifar-10-batches-py/: put data_batch_1, data_batch_2, data_batch_3, "
        "data_batch_4, data_batch_5, test_batch, batches.meta there (extract cifar-10-python.tar.gz in data/, "
        "or just put it there), or set data.download=true where a network is reachable"
    )


def test_cifar10_files_of_another_data_set_are_refused(tmp_path: Path) -> None:
    cifar_files(tmp_path)  # torchvision's checksums of the real files left in place
    with pytest.raises(DataError, match=r"the files are not CIFAR-10's python version \(their checksums differ"):
        load(data_config("cifar10", root=str(tmp_path)), (3, 32, 32))


# -- ImageFolder --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec_input", [(1, 16, 12), (3, 8, 20)])
def test_image_folder_is_resized_and_split_per_class(tmp_path: Path, spec_input: tuple[int, int, int]) -> None:
    image_folder(tmp_path, {"cats": 5, "dogs": 10})
    data = load(data_config("imagefolder", root=str(tmp_path)), spec_input)
    assert (data.name, data.classes, data.scale, data.shape) == ("imagefolder", ["cats", "dogs"], 255.0, spec_input)
    assert isinstance(data.train, TensorSplit) and data.train.x.dtype == torch.uint8
    assert sorted(data.train.y.tolist()) == [0] * 4 + [1] * 8 and sorted(data.val.y.tolist()) == [0, 1, 1]
    assert "held in memory" in data.notes[0]


def test_image_folder_pixels_are_torchvision_s(tmp_path: Path) -> None:
    image_folder(tmp_path / "train", {"a": 2, "b": 1})
    image_folder(tmp_path / "val", {"a": 1, "b": 1})
    data = load(data_config("imagefolder", root=str(tmp_path)), (1, 7, 9))
    assert (len(data.train), len(data.val), data.classes) == (3, 2, ["a", "b"])
    image = Image.open(tmp_path / "train" / "a" / "1.png").convert("RGB").convert("L").resize((9, 7), Image.BILINEAR)
    assert torch.equal(data.train.x[1, 0], torch.tensor(np.array(image)))


def test_images_too_big_for_memory_are_streamed_in_the_same_batches(tmp_path: Path) -> None:
    image_folder(tmp_path, {"cats": 5, "dogs": 10})
    held = load(data_config("imagefolder", root=str(tmp_path)), (3, 8, 8))
    streamed = load(data_config("imagefolder", root=str(tmp_path), memory_gb=0), (3, 8, 8))
    assert isinstance(streamed.train, FolderSplit) and "read from disk every epoch" in streamed.notes[0]
    assert (streamed.shape, len(streamed.train), len(streamed.val)) == ((3, 8, 8), 12, 3)
    for seed, skip in ((None, 0), (7, 1), (7, 2)):
        expected, found = draw(held.train, seed, skip), draw(streamed.train, seed, skip)
        assert len(expected) == len(found) == 3 - skip
        for (x, y), (x2, y2) in zip(expected, found, strict=True):
            assert x2.dtype == torch.uint8 and torch.equal(x, x2) and torch.equal(y, y2)


def draw(split: TensorSplit | FolderSplit, seed: int | None, skip: int) -> list:
    """The batches of 5 that `split` serves, shuffled by a generator seeded with `seed` (None: in order)."""
    return list(split.batches(5, None if seed is None else torch.Generator().manual_seed(seed), skip))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, r"imgs/: no such folder; make one folder of images per class in it"),
        (lambda root: root.mkdir(), r"imgs/: Couldn't find any class folder"),
        (lambda root: (root / "cats").mkdir(parents=True), r"Found no valid file for the classes cats"),
        (lambda root: image_folder(root / "train", {"a": 3}), r"imgs/ has train/ but no val/: add val/"),
        (
            lambda root: (image_folder(root / "train", {"a": 2, "b": 2}), image_folder(root / "val", {"a": 2})),
            r"must hold the same class folders; only in train/: \['b'\], only in val/: \[\]",
        ),
        (lambda root: image_folder(root, {"a": 1, "b": 2}), r"val_fraction=0.2 of 3 images leaves no validation"),
    ],
    ids=["no-root", "empty", "no-images", "train-only", "other-classes", "too-few"],
)
def test_image_folder_problems_are_said_plainly(tmp_path: Path, make: object, message: str) -> None:
    make(tmp_path / "imgs")
    with pytest.raises(DataError, match=message):
        load(data_config("imagefolder", root=str(tmp_path / "imgs")), (1, 8, 8))


@pytest.mark.parametrize("memory_gb", [2, 0], ids=["decoded", "streamed"])
def test_an_unreadable_image_is_named(tmp_path: Path, memory_gb: int) -> None:
    image_folder(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "b" / "3.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"an image cannot be read: .*cannot identify image file .*b/3.png"):
        data = load(data_config("imagefolder", root=str(tmp_path), memory_gb=memory_gb), (1, 8, 8))
        list(data.train.batches(4)) + list(data.val.batches(4))


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_reads_16_bit_images_as_their_8_bit_equivalent(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(3)
    for i, label in enumerate("aabbb"):
        levels = rng.integers(0, 256, (9 + i, 11), dtype=np.uint8)
        levels[0, :2] = 0, 255  # spanning 0..255, and at 16 bits 0..65535
        for depth, pixels in (("8", levels), ("16", levels.astype(np.uint16) * 257)):
            (tmp_path / depth / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / depth / label / f"{i}.png")
    assert Image.open(tmp_path / "16" / "a" / "0.png").mode == "I;16"
    eight, sixteen = (
        load(data_config("imagefolder", root=str(tmp_path / depth), val_fraction=0.4), (channels, 8, 8))
        for depth in ("8", "16")
    )
    for a, b in ((eight.train, sixteen.train), (eight.val, sixteen.val)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


@pytest.mark.parametrize("memory_gb", [2, 0], ids=["decoded", "streamed"])
def test_an_image_over_the_pixel_bound_is_named(tmp_path: Path, memory_gb: int, monkeypatch) -> None:
    image_folder(tmp_path, {"a": 5, "b": 5})  # images of at most 21 x 20 pixels
    Image.new("L", (30, 30)).save(tmp_path / "b" / "3.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # as a decompression bomb is to the default bound
    pattern = r"an image cannot be read: .*b/3.png: refused: Image size \(900 pixels\) exceeds limit of 600 pixels"
    with pytest.raises(DataError, match=pattern):
        data = load(data_config("imagefolder", root=str(tmp_path), memory_gb=memory_gb), (1, 8, 8))
        list(data.train.batches(4)) + list(data.val.batches(4))


def test_image_folder_root_is_required() -> None:
    with pytest.raises(DataError, match=r"data.root is not set: say where the imagefolder files are"):
        load(data_config("imagefolder"), (1, 8, 8))


# -- cnnforge train, end to end -------------------------------------------------------------------------------------


def train(cwd: Path, *args: str) -> train_helpers.Run:
    """`cnnforge train ARGS` for one epoch on the CPU, in this process working in `cwd`."""
    with train_helpers.app_folder(cwd):
        return train_helpers.train(*args, "trainer.epochs=1", "trainer.batch_size=16", "trainer.device=cpu")


def assert_trained(run: train_helpers.Run, *said: str) -> None:
    assert run.code == 0, run.output
    assert (run.folder / "metrics.csv").is_file(), run.output
    for line in said:
        assert line in run.output


def test_train_on_mnist_files(tmp_path: Path) -> None:
    mnist_files(tmp_path / "digits")
    run = train(tmp_path, "data=mnist", f"data.root={tmp_path / 'digits'}")
    assert_trained(run, "resized 28x28 -> 32x32", "48 train / 16 validation samples")


def test_train_on_an_image_folder(tmp_path: Path) -> None:
    image_folder(tmp_path / "images", {"circle": 5, "square": 6})
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = train(tmp_path, "arch=tiny.yaml", "data=imagefolder", f"data.root={tmp_path / 'images'}")
    assert_trained(run, "parameter classes bound to 2", "9 train / 2 validation samples")


def test_train_lenet_on_cifar10(tmp_path: Path, cifar: dict) -> None:
    run = train(tmp_path, "arch=lenet", "data=cifar10", f"data.root={tmp_path}")
    assert_trained(run, "colour turned to grayscale", "20 train / 8 validation samples")


def test_train_without_mnist_files_says_where_to_put_them(tmp_path: Path) -> None:
    run = train(tmp_path, "data=mnist")
    assert run.code == 1, run.output
    assert "no MNIST files in data/MNIST/raw/: put train-images-idx3-ubyte.gz" in run.output
    assert "Traceback" not in run.output
