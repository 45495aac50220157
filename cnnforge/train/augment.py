"""Data augmentation for training, as the `augment` config group describes it, built from torchvision.transforms.v2.

A training batch goes through three steps, after it is scaled to [0, 1] at the spec's input size and before the
network sees it:

1. image stages (crop, flip, resized crop, shift and rotation, an AutoAugment-style policy), each sample drawn
   its own parameters. In-memory data is augmented on the training device, a whole batch at a time: crop_flip by
   one batched gather (the same distribution as v2.RandomCrop with padding and v2.RandomHorizontalFlip, which the
   tests hold it to), the others sample by sample with v2. Images read from disk are augmented by the loader
   processes, sample by sample with v2, each sample seeded from (trainer.seed, epoch, its place in the epoch).
2. normalisation (Prepare), then random erasing, as torchvision's reference recipes order them (an erased patch is
   the mean colour).
3. MixUp or CutMix over the batch, which turns the labels into class probabilities (soft targets).

Random parameters come from torch's global generators, which checkpoints hold, so a run is the same for a given
trainer.seed and a resumed run continues exactly. Validation is never augmented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

Images = Callable[[torch.Tensor], torch.Tensor]


def _v2() -> Any:
    from ..train.vision import _torchvision

    _torchvision("augment")  # torchvision, or a DataError saying which extra installs it
    from torchvision.transforms import v2

    return v2


@dataclass
class Stage:
    """One image augmentation: `sample` on one image [C, H, W] (a v2 transform), and `batch`, where there is one,
    the same on a whole batch [N, C, H, W] at once, each sample with its own parameters."""

    sample: Images
    batch: Images | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """A batch [N, C, H, W], augmented sample by sample."""
        if self.batch is not None:
            return self.batch(x)
        return torch.stack([self.sample(image) for image in x]) if len(x) else x


def crop_flip(x: torch.Tensor, padding: int, flip: float) -> torch.Tensor:
    """Each sample of `x` [N, C, H, W] cropped at a random place after `padding` zeros on every side, then flipped
    left to right with probability `flip`: v2.RandomCrop(padding=padding) and v2.RandomHorizontalFlip(flip) on
    every sample, in one gather. Offsets and flips are drawn on the CPU generator."""
    n, _, h, w = x.shape
    if padding:
        windows = F.pad(x, [padding] * 4).unfold(2, h, 1).unfold(3, w, 1)  # [N, C, 2p + 1, 2p + 1, H, W], a view
        top = torch.randint(0, 2 * padding + 1, (n,)).to(x.device)
        left = torch.randint(0, 2 * padding + 1, (n,)).to(x.device)
        x = windows[torch.arange(n, device=x.device), :, top, left]  # [N, C, H, W]: each sample's own window
    if flip:
        flipped = (torch.rand(n) < flip).to(x.device)[:, None, None, None]
        x = torch.where(flipped, x.flip(-1), x)
    return x


@dataclass
class Augmentation:
    """The augmentation of an `augment` config: image stages, random erasing and batch mixing (see the module's
    docstring for the order)."""

    name: str
    stages: list[Stage] = field(default_factory=list)
    erasing: Images | None = None  # one normalised image
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def __bool__(self) -> bool:
        return bool(self.stages or self.erasing or self.mix)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Step 1 on a batch [N, C, H, W] of [0, 1] images at the spec's size."""
        for stage in self.stages:
            x = stage(x)
        return x

    def per_sample(self) -> Images | None:
        """Step 1 for one image, as loader processes apply it; None when there are no image stages."""
        if not self.stages:
            return None
        samples = [stage.sample for stage in self.stages]

        def apply(image: torch.Tensor) -> torch.Tensor:
            for sample in samples:
                image = sample(image)
            return image

        return apply

    def normalised(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 2 and 3 on a normalised batch and its labels [N]: the batch and its targets, labels [N] or, with
        mixing, class probabilities [N, classes]."""
        if self.erasing is not None and len(x):
            x = torch.stack([self.erasing(image) for image in x])
        if self.mix is not None and len(x):
            x, y = self.mix(x, y)
        return x, y


def build(config: Any, classes: int, size: tuple[int, int]) -> Augmentation:
    """The Augmentation an `augment` config describes, for `classes` classes and images of `size` (H, W)."""
    name = config.name
    if name == "none" and not (config.erasing or config.mixup or config.cutmix):
        return Augmentation(name)
    v2 = _v2()
    stages: list[Stage] = []
    padding, flip = config.get("padding", 0), config.get("flip", 0.0)
    if padding > min(size):
        from .data import DataError

        raise DataError(
            f"augment.padding={padding} is more than the spec's input side ({min(size)} pixels): its crops would be "
            "mostly padding; 4 is usual for 32x32 images, about an eighth of the side"
        )
    if name in ("crop_flip", *POLICIES) and (padding or flip):
        pieces = ([v2.RandomCrop(list(size), padding=padding)] if padding else []) + (
            [v2.RandomHorizontalFlip(flip)] if flip else []
        )
        stages.append(Stage(v2.Compose(pieces), lambda x: crop_flip(x, padding, flip)))
    if name == "imagenet":
        crop = v2.RandomResizedCrop(list(size), scale=tuple(config.scale), ratio=tuple(config.ratio), antialias=True)
        stages.append(Stage(v2.Compose([crop, *([v2.RandomHorizontalFlip(flip)] if flip else [])])))
    if name == "shift_rotate":
        stages.append(Stage(v2.RandomAffine(config.degrees, translate=[config.translate] * 2)))
    if name in POLICIES:
        stages.append(Stage(POLICIES[name](v2, config)))
    erasing = v2.RandomErasing(config.erasing) if config.erasing else None
    mixes = [
        kind(alpha=alpha, num_classes=classes)
        for kind, alpha in ((v2.MixUp, config.mixup), (v2.CutMix, config.cutmix))
        if alpha
    ]
    mix = (mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)) if mixes else None
    return Augmentation(name, stages, erasing, mix)


POLICIES: dict[str, Callable[[Any, Any], Images]] = {
    "trivialaugment": lambda v2, c: v2.TrivialAugmentWide(num_magnitude_bins=c.num_magnitude_bins),
    "randaugment": lambda v2, c: v2.RandAugment(c.num_ops, c.magnitude, c.num_magnitude_bins),
    "autoaugment": lambda v2, c: v2.AutoAugment(v2.AutoAugmentPolicy(c.policy)),
}  # the automatic policies, applied after crop_flip's crop and flip


def describe(augmentation: Augmentation, in_loader: bool) -> str | None:
    """One line on what augments the training batches and where, or None without augmentation."""
    if not augmentation:
        return None
    parts = []
    if augmentation.stages:
        where = "in the loader processes" if in_loader else "on the training device"
        parts.append(f"images augmented {where}")
    if augmentation.erasing:
        parts.append("random erasing after normalisation")
    if augmentation.mix:
        parts.append("batches mixed (soft targets)")
    return f"augment={augmentation.name}: {', '.join(parts)}; validation is not augmented"
