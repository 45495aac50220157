"""Data for training. In-memory data sets are served as whole batches of tensors (index a tensor, not a
Python object per sample); each data config names a loader registered here or in vision.py."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..errors import Refused
from ..images import LUMA

DIGITS = Path(__file__).resolve().parent.parent / "data" / "digits.csv.gz"


class DataError(Refused):
    """A data config that cannot be served: missing files, bad sizes, and the like."""


class Split(Protocol):
    """Samples served in batches: `shape` is one sample's [C, H, W], values in [0, scale]."""

    shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        skip: int = 0,
        shard: tuple[int, int] = (0, 1),
        pin: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of `batch_size` in order, or shuffled by `generator`, leaving out the first `skip`. With
        `shard` (i, n) only the i-th of n near-equal parts of each batch is served (process i's share of the
        global batch); `pin` serves batches in pinned memory for asynchronous copies to a GPU."""
        ...


@dataclass
class TensorSplit:
    """A split held in memory as two tensors: x [N, C, H, W] and integer labels y [N]."""

    x: torch.Tensor
    y: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device))

    def subset(self, index: torch.Tensor) -> TensorSplit:
        return TensorSplit(self.x[index], self.y[index])

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        skip: int = 0,
        shard: tuple[int, int] = (0, 1),
        pin: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """As Split.batches says."""
        order = None if generator is None else torch.randperm(len(self), generator=generator).to(self.y.device)
        part, parts = shard
        for start in range(skip * batch_size, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if parts > 1:
                start, stop = start + _cut(stop - start, parts, part), start + _cut(stop - start, parts, part + 1)
            index = slice(start, stop) if order is None else order[start:stop]
            x, y = self.x[index], self.y[index]
            yield (x.pin_memory(), y.pin_memory()) if pin and x.device.type == "cpu" else (x, y)


def _cut(size: int, parts: int, part: int) -> int:
    """Where part `part` of `size` items cut into `parts` near-equal parts begins (as torch.tensor_split cuts)."""
    small, extra = divmod(size, parts)
    return part * small + min(part, extra)


def shards(index: list[int], parts: int) -> list[list[int]]:
    """`index` cut into `parts` near-equal consecutive parts."""
    return [index[_cut(len(index), parts, p) : _cut(len(index), parts, p + 1)] for p in range(parts)]


@dataclass
class Data:
    """A data set ready to train on: its splits, class names, and the value of a white pixel."""

    name: str
    classes: list[str]
    train: Split
    val: Split
    scale: float = 1.0  # raw value of full intensity: 16 for digits, 255 for 8-bit images
    notes: list[str] = field(default_factory=list)  # what the loader did, said once before training

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.shape


Loader = Callable[[Any, tuple[int, int, int]], Data]
LOADERS: dict[str, Loader] = {}


def loader(name: str) -> Callable[[Loader], Loader]:
    """Register a function (data config, the spec's [C, H, W]) -> Data under a data config's `name`."""

    def add(function: Loader) -> Loader:
        LOADERS[name] = function
        return function

    return add


def load(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """The data set a data config describes."""
    if config.name not in LOADERS:
        from . import vision  # noqa: F401  (registers the torchvision data sets)
    if config.name not in LOADERS:
        raise DataError(f"data.name={config.name}: no such data set (known: {', '.join(sorted(LOADERS))})")
    data = LOADERS[config.name](config, spec_input)
    fraction = config.get("train_fraction", 1.0)
    if fraction < 1:
        data.train = data.train.subset(subset(labels(data.train), fraction))
        data.notes.append(f"{data.name}: training on {len(data.train):,} samples, data.train_fraction={fraction:g}")
    for split, other in ((data.train, data.val), (data.val, data.train)):
        if not len(split):
            which = "training" if split is data.train else "validation"
            fraction = getattr(config, "val_fraction", None)
            cause = f"data.val_fraction={fraction} leaves" if fraction is not None else "it has"
            raise DataError(
                f"{data.name}: {cause} an empty {which} split ({len(other):,} samples in the other); "
                "training and validation need at least one sample each"
            )
    return data


def labels(split: Split) -> torch.Tensor:
    """Every label of `split`, in order, without reading its samples where it can say them."""
    if isinstance(split, TensorSplit):
        return split.y.cpu()
    return torch.as_tensor(split.labels())  # type: ignore[attr-defined]


def subset(y: torch.Tensor, fraction: float, seed: int = 1) -> torch.Tensor:
    """Indices of `fraction` of each class of labels `y`, at least one per class; the same for a given seed."""
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label in torch.unique(y):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        kept.append(members[: max(1, round(len(members) * fraction))])
    return torch.cat(kept).sort().values


def stratified_split(y: torch.Tensor, val_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices holding `val_fraction` of each class out; the same for a given seed."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, found {val_fraction}")
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for label in torch.unique(y):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = round(len(members) * val_fraction)
        val.append(members[:cut])
        train.append(members[cut:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


@loader("digits")
def digits(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """UCI optical digits, shipped with cnnforge: 1,797 8x8 images with pixel values 0..16."""
    with gzip.open(DIGITS, "rt") as file:
        rows = [[int(v) for v in row] for row in csv.reader(file)]
    table = torch.tensor(rows, dtype=torch.uint8)  # [1797, 65]: 64 pixels, then the label
    x, y = table[:, :64].reshape(-1, 1, 8, 8), table[:, 64].long()
    train, val = stratified_split(y, config.val_fraction)
    return Data(
        "digits", [str(d) for d in range(10)], TensorSplit(x[train], y[train]), TensorSplit(x[val], y[val]), scale=16.0
    )


@loader("synthetic")
def synthetic(config: Any, spec_input: tuple[int, int, int]) -> Data:
    """Uniform random images and labels, of the spec's input shape unless `shape` is given."""
    shape = tuple(config.shape) if config.shape else spec_input
    if len(shape) != 3 or min(shape) < 1 or config.classes < 1:
        raise DataError(f"synthetic data needs shape [C, H, W] and classes >= 1, found {list(shape)}, {config.classes}")
    generator = torch.Generator().manual_seed(config.seed)

    def split(n: int) -> TensorSplit:
        return TensorSplit(
            torch.rand(n, *shape, generator=generator), torch.randint(config.classes, (n,), generator=generator)
        )

    return Data("synthetic", [str(c) for c in range(config.classes)], split(config.train_size), split(config.val_size))


class Prepare:
    """Turns a raw batch into the spec's input: scale to [0, 1], match channels and size, normalise.

    The mean and standard deviation per channel come from the training split, so a checkpoint can
    prepare images the same way at prediction time.
    """

    def __init__(
        self,
        source: tuple[int, int, int],
        target: tuple[int, int, int],
        scale: float,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        self.source, self.target, self.scale = tuple(source), tuple(target), scale
        if self.source[0] != self.target[0] and (self.source[0], self.target[0]) not in ((1, 3), (3, 1)):
            raise DataError(
                f"the data has {self.source[0]}-channel samples {list(self.source)} but the spec "
                f"takes {self.target[0]} channels {list(self.target)}; cnnforge converts only "
                "between grayscale (1) and colour (3)"
            )
        self._set(torch.tensor(mean or [0.0] * target[0]).view(1, -1, 1, 1), torch.tensor(std or [1.0] * target[0]))

    def _set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Normalise by `mean` and `std` per channel of [0, 1] samples: raw samples are shifted by mean * scale
        and divided by std * scale, one subtraction and one division per batch."""
        self.mean, self.std = mean.reshape(1, -1, 1, 1).cpu(), std.reshape(1, -1, 1, 1).cpu()
        self._shift, self._divisor = self.mean * self.scale, self.std * self.scale

    def normalise_with(self, mean: list[float], std: list[float]) -> Prepare:
        """Set the mean and standard deviation per channel to these (ImageNet's, for pretrained weights)."""
        self._set(torch.tensor(mean), torch.tensor(std))
        return self

    def fit(self, split: Split, limit: int = 4096) -> Prepare:
        """Set the mean and standard deviation per channel from (up to `limit` samples of) `split`."""
        x = torch.cat([x for x, _ in _take(split, limit)])
        x = self.adapt(x.float() / self.scale)
        self._set(x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-6))
        return self

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Match the spec's channels and size; [N, c, h, w] -> [N, C, H, W]."""
        c, h, w = self.target
        if x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        if tuple(x.shape[2:]) != (h, w):
            smaller = h < x.shape[2] or w < x.shape[3]
            if 1 in (h, w, *x.shape[2:]):  # torch's antialiased resize errs where a side is or becomes 1 pixel and
                # the other changes: a 1-pixel side made 2 equal pixels, then one side resized, then the other (the
                # same sums, as the filter is separable)
                x = x.expand(-1, -1, max(x.shape[2], 2), max(x.shape[3], 2))
                x = F.interpolate(x, size=(h, x.shape[3]), mode="bilinear", align_corners=False, antialias=smaller)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=smaller)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A raw batch as the network takes it: the same as normalise(unit(x)), in fewer steps."""
        self._on(x.device)
        return (self.adapt(x.float()) - self._shift) / self._divisor  # adapt is linear: scaling can come after

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """A raw batch at the spec's channels and size, in [0, 1] (as augmentation takes it)."""
        return self.adapt(x.float() / self.scale)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in [0, 1] at the spec's shape, normalised by the mean and standard deviation per channel."""
        self._on(x.device)
        return (x - self._shift / self.scale) / (self._divisor / self.scale)

    def _on(self, device: torch.device) -> None:
        if self._shift.device != device:  # moved once, not copied to the device on every batch
            self._shift, self._divisor = self._shift.to(device), self._divisor.to(device)

    def describe(self) -> str | None:
        """One line on what is converted, or None when the data already matches the spec."""
        if self.source == self.target:
            return None
        changes = []
        if self.source[0] != self.target[0]:
            changes.append("grayscale copied to 3 channels" if self.target[0] == 3 else "colour turned to grayscale")
        if self.source[1:] != self.target[1:]:
            changes.append(f"resized {self.source[1]}x{self.source[2]} -> {self.target[1]}x{self.target[2]} (bilinear)")
        return f"samples {list(self.source)} -> the spec's input {list(self.target)}: {', '.join(changes)}"

    def for_source(self, source: tuple[int, int, int], scale: float) -> Prepare:
        """The same preparation (target shape, normalisation) for samples of another shape and scale."""
        return Prepare(source, self.target, scale, self.mean.flatten().tolist(), self.std.flatten().tolist())

    def state(self) -> dict:
        return {
            "source": list(self.source),
            "target": list(self.target),
            "scale": self.scale,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> Prepare:
        return cls(state["source"], state["target"], state["scale"], state["mean"], state["std"])


def _take(split: Split, limit: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of about `limit` samples: all of `split`, or a fixed random draw when it is larger (a data set
    stored class by class, as ImageFolder's is, would otherwise be measured on its first classes only)."""
    generator = torch.Generator().manual_seed(0) if len(split) > limit else None
    seen = 0
    for x, y in split.batches(min(limit, 256), generator):
        yield x, y
        seen += len(y)
        if seen >= limit:
            return
