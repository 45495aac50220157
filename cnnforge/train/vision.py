"""torchvision's data sets: MNIST, Fashion-MNIST and CIFAR-10 held in memory as uint8 tensors, and a folder
of images per class (ImageFolder), decoded once into memory when it fits, otherwise read batch by batch."""

from __future__ import annotations

import math
import pickle
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from omegaconf.errors import MissingMandatoryValue
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .. import images
from ..extras import install_hint
from .data import Data, DataError, Split, TensorSplit, loader, shards, stratified_split

GIB = 2**30
# What torchvision raises on a file it cannot read: bad idx headers assert, bad pickles and archives raise
# their own errors, failed checksums and downloads raise RuntimeError or OSError.
UNREADABLE = (AssertionError, EOFError, KeyError, OSError, RuntimeError, ValueError, pickle.UnpicklingError)
UNPACKABLE = (EOFError, OSError, RuntimeError, tarfile.TarError)
UNDECODABLE = (OSError, RuntimeError, ValueError)  # PIL's errors, as such or re-raised by a DataLoader worker
NETWORK = "or set data.download=true where a network is reachable"


def _torchvision(name: str) -> ModuleType:
    """torchvision with its datasets and transforms, or a DataError saying how to install it."""
    try:
        import torchvision.datasets
        import torchvision.transforms
    except ImportError as error:
        raise DataError(
            f"data.name={name} needs torchvision, in the vision extra: {install_hint('vision')} ({error})"
        ) from None
    return torchvision


def data_root(config: Any) -> Path:
    """Where the data config says its files are: data.root, which must be set."""
    try:
        root = config.root
    except MissingMandatoryValue:
        root = None
    if not root:
        raise DataError(f"data.root is not set: say where the {config.name} files are with data.root=PATH")
    return Path(root)


def _last_line(error: BaseException) -> str:
    """The telling line of an error; a DataLoader worker's error ends with the original one."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _unpack(archive: Path, into: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    try:
        extract_archive(archive, into)
    except UNPACKABLE as error:
        raise DataError(f"{archive}: cannot be unpacked ({_last_line(error)})") from None


# -- MNIST and Fashion-MNIST: idx files --------------------------------------------------------------------------


def _idx(config: Any, name: str, kind_name: str, title: str, classes: list[str] | None) -> Data:
    """An MNIST-like data set: the training files as the train split, the test (t10k) files as validation."""
    tv = _torchvision(name)
    kind = getattr(tv.datasets, kind_name)
    root = data_root(config)
    raw = root / kind.__name__ / "raw"  # torchvision reads <root>/<class name>/raw/
    archives = [file for file, _ in kind.resources]  # train-images-idx3-ubyte.gz, ...
    put = f"put {', '.join(archives)} there (gzipped or not), {NETWORK}"
    if not config.download:
        for archive in archives:  # torchvision reads the files unpacked: unpack those given gzipped
            if not (raw / archive.removesuffix(".gz")).exists() and (raw / archive).exists():
                _unpack(raw / archive, raw)
        missing = [archive for archive in archives if not (raw / archive.removesuffix(".gz")).exists()]
        if missing == archives:
            raise DataError(f"no {title} files in {raw}/: {put}")
        if missing:
            raise DataError(f"{raw}/ lacks {', '.join(missing)}: {put}")
    try:
        train, val = (kind(root, train=split, download=config.download) for split in (True, False))
    except UNREADABLE as error:
        if config.download:
            raise DataError(
                f"could not download {title} into {raw}/ ({_last_line(error)}); where no network is reachable, "
                f"put {', '.join(archives)} there and set data.download=false"
            ) from None
        raise DataError(f"{raw}/: the {title} files are not idx files torchvision can read; {put}") from None
    splits = []
    for dataset in (train, val):
        if len(dataset.data) != len(dataset.targets):
            raise DataError(f"{raw}/: {len(dataset.data)} images but {len(dataset.targets)} labels")
        splits.append(TensorSplit(dataset.data.unsqueeze(1), dataset.targets.long()))  # [N, 28, 28] -> [N, 1, 28, 28]
    note = f"{name}: validation is the test set (t10k-* in {raw}/)"
    return Data(name, classes or list(train.classes), *splits, scale=255.0, notes=[note])


@loader("mnist")
def mnist(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """MNIST from <root>/MNIST/raw/: 60,000 training and 10,000 test digits, 28x28 grayscale."""
    return _idx(config, "mnist", "MNIST", "MNIST", [str(d) for d in range(10)])  # named as the digits data set


@loader("fashion_mnist")
def fashion_mnist(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """Fashion-MNIST from <root>/FashionMNIST/raw/: 60,000 training and 10,000 test images, 28x28 grayscale."""
    return _idx(config, "fashion_mnist", "FashionMNIST", "Fashion-MNIST", None)


# -- CIFAR-10: pickled batches ------------------------------------------------------------------------------------


@loader("cifar10")
def cifar10(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """CIFAR-10 from <root>/cifar-10-batches-py/: 50,000 training and 10,000 test images, 32x32 colour."""
    tv = _torchvision("cifar10")
    kind = tv.datasets.CIFAR10
    root = data_root(config)
    folder = root / kind.base_folder
    files = [file for file, _ in kind.train_list + kind.test_list] + [kind.meta["filename"]]
    if not config.download:
        if not all((folder / file).exists() for file in files) and (root / kind.filename).exists():
            _unpack(root / kind.filename, root)
        missing = [file for file in files if not (folder / file).exists()]
        put = f"put {', '.join(files)} there (extract {kind.filename} in {root}/, or just put it there), {NETWORK}"
        if missing == files:
            raise DataError(f"no CIFAR-10 files in {folder}/: {put}")
        if missing:
            raise DataError(f"{folder}/ lacks {', '.join(missing)}: {put}")
    try:
        train, val = (kind(root, train=split, download=config.download) for split in (True, False))
    except UNREADABLE as error:
        if config.download:
            raise DataError(
                f"could not download CIFAR-10 into {folder}/ ({_last_line(error)}); where no network is reachable, "
                f"extract {kind.filename} in {root}/ and set data.download=false"
            ) from None
        raise DataError(
            f"{folder}/: the files are not CIFAR-10's python version (their checksums differ or they cannot be "
            f"read); extract a fresh {kind.filename} in {root}/, {NETWORK}"
        ) from None
    splits = [
        TensorSplit(
            torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous(),  # [N, 32, 32, 3] -> [N, 3, 32, 32]
            torch.tensor(dataset.targets, dtype=torch.long),
        )
        for dataset in (train, val)
    ]
    note = f"cifar10: validation is the test set (test_batch in {folder}/)"
    return Data("cifar10", list(train.classes), *splits, scale=255.0, notes=[note])


# -- ImageFolder: one folder of images per class -----------------------------------------------------------------


@dataclass
class FolderSplit:
    """Images decoded from disk batch by batch: x uint8 [B, C, H, W], y int64 [B]; shuffled as TensorSplit is."""

    dataset: Dataset  # yields (uint8 [C, H, W], label)
    shape: tuple[int, int, int]
    num_workers: int = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def labels(self) -> list[int]:
        """Every sample's label, in order, read from the folder names (no image is decoded)."""
        if isinstance(self.dataset, Subset):
            targets = self.dataset.dataset.targets  # type: ignore[attr-defined]
            return [targets[i] for i in self.dataset.indices]
        return list(self.dataset.targets)  # type: ignore[attr-defined]

    def subset(self, index: torch.Tensor) -> FolderSplit:
        return FolderSplit(Subset(self.dataset, index.tolist()), self.shape, self.num_workers)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        skip: int = 0,
        shard: tuple[int, int] = (0, 1),
        pin: bool = False,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """As Split.batches says; images are decoded by `num_workers` loader processes, which also `augment` each
        (uint8 [C, H, W] -> the same), seeded by its place in this order of the samples: the same augmentation
        for a given generator, whatever the number of processes or the batches skipped."""
        order = torch.arange(len(self)) if generator is None else torch.randperm(len(self), generator=generator)
        part, parts = shard
        index: list[Any] = order.tolist()
        dataset = self.dataset
        if augment is not None:
            seeds = torch.randint(2**62, (len(self),), generator=generator).tolist()
            index, dataset = list(zip(index, seeds, strict=True)), Augmented(self.dataset, augment)
        chunks = [
            shards(index[i : i + batch_size], parts)[part] for i in range(skip * batch_size, len(self), batch_size)
        ]
        loader = DataLoader(
            dataset, batch_sampler=[c for c in chunks if c], num_workers=self.num_workers, pin_memory=pin
        )
        try:
            yield from map(tuple, loader)
        except UNDECODABLE as error:
            raise DataError(f"an image cannot be read: {_last_line(error)}") from None
        if chunks and not chunks[-1]:  # a last batch smaller than the number of processes leaves this one none
            yield torch.empty(0, *self.shape, dtype=torch.uint8), torch.empty(0, dtype=torch.long)


@dataclass
class Augmented(Dataset):
    """`dataset`'s samples, each augmented with torch's generator seeded by the seed it is asked for with."""

    dataset: Dataset
    augment: Callable[[torch.Tensor], torch.Tensor]

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        x, y = self.dataset[index]
        with torch.random.fork_rng(devices=[]):  # the process's own draws (dropout, with no loader processes) go on
            torch.manual_seed(seed)
            return self.augment(x), y


def _folder(tv: ModuleType, path: Path, transform: Any, mode: str) -> Any:
    try:
        return tv.datasets.ImageFolder(path, transform=transform, loader=images.loader(mode))
    except (FileNotFoundError, ValueError) as error:
        raise DataError(f"{path}/: {_last_line(error)} (expected one folder of images per class)") from None


def _decode(dataset: Dataset, workers: int) -> TensorSplit:
    """Every image of `dataset`, decoded once: x uint8 [N, C, H, W], y int64 [N]."""
    batches = DataLoader(dataset, batch_size=256, num_workers=workers)
    try:
        pairs = list(tqdm(batches, desc="decoding images", leave=False, disable=not sys.stderr.isatty()))
    except UNDECODABLE as error:
        raise DataError(f"an image cannot be read: {_last_line(error)}") from None
    return TensorSplit(torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs]))


def _folders(
    tv: ModuleType, root: Path, transform: Any, mode: str, val_fraction: float
) -> tuple[list[str], str, Any, Any]:
    """Class names, how they were split, and the train and validation datasets of an image folder, its images read
    in PIL's `mode`."""
    given = [(root / part).is_dir() for part in ("train", "val")]
    if any(given) and not all(given):
        present, absent = ("train", "val") if given[0] else ("val", "train")
        raise DataError(
            f"{root}/ has {present}/ but no {absent}/: add {absent}/ with the same class folders, "
            f"or move the class folders up into {root}/ to hold out data.val_fraction of them"
        )
    if all(given):
        train, val = (_folder(tv, root / part, transform, mode) for part in ("train", "val"))
        if train.classes != val.classes:
            raise DataError(
                f"{root}/train/ and {root}/val/ must hold the same class folders; only in train/: "
                f"{sorted(set(train.classes) - set(val.classes))}, only in val/: "
                f"{sorted(set(val.classes) - set(train.classes))}"
            )
        return train.classes, "train/ and val/", train, val
    whole = _folder(tv, root, transform, mode)
    train_index, val_index = stratified_split(torch.tensor(whole.targets), val_fraction)
    if not len(train_index) or not len(val_index):
        raise DataError(
            f"{root}/: data.val_fraction={val_fraction} of {len(whole)} images leaves no "
            f"{'validation' if len(train_index) else 'training'} images; add images or change data.val_fraction"
        )
    held_out = f"{val_fraction:g} held out per class"
    return whole.classes, held_out, Subset(whole, train_index.tolist()), Subset(whole, val_index.tolist())


def _reading(spec_input: tuple[int, int, int]) -> tuple[tuple[int, int, int], str, Any]:
    """The shape [C, H, W] images of a folder are served at for a spec taking `spec_input`, their PIL mode, and the
    transform that makes them so: the spec's grayscale or colour (Prepare reports other counts), at its size."""
    transforms = _torchvision("imagefolder").transforms
    channels = 1 if spec_input[0] == 1 else 3
    shape = (channels, spec_input[1], spec_input[2])
    return (
        shape,
        "L" if channels == 1 else "RGB",
        transforms.Compose([transforms.Resize(shape[1:]), transforms.PILToTensor()]),
    )


def _held(datasets: list[Any], shape: tuple[int, int, int], config: Any) -> tuple[list[Any], str]:
    """The datasets decoded into memory when they fit in data.memory_gb, else read from disk batch by batch; and
    which, in words."""
    workers = getattr(config, "num_workers", 0)
    limit = getattr(config, "memory_gb", 2)
    size = sum(len(dataset) for dataset in datasets) * math.prod(shape)  # bytes as uint8 at the spec's size
    if size <= limit * GIB:
        return [_decode(dataset, workers) for dataset in datasets], f"held in memory ({size / 2**20:.3g} MiB)"
    kept = (
        f"read from disk every epoch by {workers} loader processes (trainer.num_workers): {size / GIB:.3g} GiB "
        f"at the spec's size is over data.memory_gb={limit}"
    )
    return [FolderSplit(dataset, shape, workers) for dataset in datasets], kept


@loader("imagefolder")
def imagefolder(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """Images in <root>/<class>/ (or <root>/train/<class>/ and <root>/val/<class>/), resized to the spec's input."""
    tv = _torchvision("imagefolder")
    root = data_root(config)
    if not root.is_dir():
        raise DataError(f"{root}/: no such folder; make one folder of images per class in it")
    shape, mode, transform = _reading(spec_input)
    classes, how, train, val = _folders(tv, root, transform, mode, config.val_fraction)
    splits, kept = _held([train, val], shape, config)
    described = f"{'grayscale' if shape[0] == 1 else 'RGB'}, resized to {shape[1]}x{shape[2]}"
    note = f"imagefolder: {len(classes)} classes in {root}/ ({how}); images {described}, {kept}"
    return Data("imagefolder", list(classes), *splits, scale=255.0, notes=[note])


def labelled_folder(root: Path, spec_input: tuple[int, int, int], config: Any = None) -> tuple[list[str], Split]:
    """Every image in <root>/<class>/, served as imagefolder serves its splits (a test set, say): the class names
    and the images with their labels. `config` may give num_workers and memory_gb, as a data config does."""
    tv = _torchvision("imagefolder")
    if not root.is_dir():
        raise DataError(f"{root}/: no such folder; it should hold one folder of images per class")
    shape, mode, transform = _reading(spec_input)
    dataset = _folder(tv, root, transform, mode)
    (split,), _ = _held([dataset], shape, config)
    return list(dataset.classes), split
