"""`cnnforge preview`: a grid of augmented training samples with their labels, what the network will see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

USAGE = (
    "usage: cnnforge preview [arch=NAME] [data=NAME] [augment=NAME] [recipe=NAME] [KEY=VALUE ...] [n=32] [seed=0] "
    "[out=preview.png]"
)
HELP = f"""{USAGE}

Writes n training samples as `cnnforge train` with the same settings would feed them to the network: at the
spec's input size, augmented as augment= says (and mixed, with MixUp or CutMix), each labelled with its class
(mixed samples with their two largest shares). Any key=value of `cnnforge train` may be given (arch=, data=,
data.root=, augment=, augment.padding=, recipe=, ...).
  n=      samples to show (default 32)
  seed=   the random draw of samples and augmentations (default 0; another seed shows others)
  out=    the picture to write (default preview.png; a new name, preview-2.png and so on, when it exists)"""
OWN = ("n", "seed", "out")


def command(argv: list[str]) -> int:
    """cnnforge preview [KEY=VALUE ...] [n=32] [seed=0] [out=preview.png]"""
    from .command import UsageError

    if "--help" in argv or "-h" in argv:
        print(HELP)
        return 0
    options, overrides = {}, []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            raise UsageError(f"{arg}: expected KEY=VALUE\n{USAGE}")
        if key in OWN:
            options[key] = value
        else:
            overrides.append(arg)
    n = _number(options, "n", 32, 1, 1024)
    seed = _number(options, "seed", 0, 0, 2**32 - 1)
    out = Path(options.get("out", "preview.png"))
    if out.suffix.lower() != ".png":
        raise UsageError(f"out={out}: the preview is a PNG picture; give a name ending in .png")
    tiles, labels, title = samples(_config(overrides), n, seed)
    from .. import files
    from . import grid

    folder = out.parent if str(out.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    (written,) = files.write_new(
        folder, out.stem, {".png": lambda file: grid.draw(file, tiles, labels, title, cmap="gray")}
    )
    print(f"wrote {written}: {len(labels)} training samples, {title}")
    return 0


def _number(options: dict[str, str], key: str, default: int, least: int, most: int) -> int:
    from .command import UsageError

    text = options.get(key, str(default))
    if not text.isdigit() or not least <= int(text) <= most:
        raise UsageError(f"{key}={text}: must be a whole number from {least} to {most}\n{USAGE}")
    return int(text)


def _config(overrides: list[str]) -> Any:
    """The training config `cnnforge train OVERRIDES` would run, validated; UsageError says what is wrong."""
    from hydra.errors import HydraException

    from ..train.app import register_archs
    from ..train.settings import SettingsError, compose, validate
    from .command import UsageError

    try:
        config = compose(register_archs(overrides))
        validate(config)
    except (HydraException, SettingsError) as error:
        raise UsageError(str(error)) from None
    return config


def samples(config: Any, n: int, seed: int) -> tuple[Any, list[str], str]:
    """Tiles [n, H, W] or [n, H, W, 3] in [0, 1] of `n` augmented training samples, their labels, and a title."""
    import torch

    from ..errors import Refused
    from ..train import augment
    from ..train.app import CONF, RunError, normalise, prepare_run
    from ..train.data import TensorSplit
    from .command import UsageError

    data_file = str(CONF / "data" / f"{config.data.name}.yaml")
    try:
        plan = prepare_run(config, data_file)
        normalise(plan.prepare, config, plan.data)
        augmentation = augment.build(config.augment, len(plan.data.classes), tuple(plan.prepare.target[1:]))
    except RunError as error:
        raise UsageError(str(error)) from None
    except Refused as error:
        raise UsageError(f"augment={config.augment.name}: {error}") from None
    data, prepare = plan.data, plan.prepare
    in_loader = not isinstance(data.train, TensorSplit)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    options = {"augment": augmentation.per_sample()} if in_loader and augmentation.per_sample() else {}
    x, y = next(iter(data.train.batches(min(n, len(data.train)), generator, **options)))
    x = prepare.unit(x)  # [N, C, H, W] in [0, 1]
    if not in_loader:
        x = augmentation.images(x)
    x, target = augmentation.normalised(prepare.normalise(x), y)
    shown = (x * prepare.std + prepare.mean).clamp(0, 1)  # back to [0, 1] to be seen
    tiles = shown[:, 0] if shown.shape[1] == 1 else shown.permute(0, 2, 3, 1)
    labels = [_label(t, data.classes) for t in target]
    title = f"{data.name} for {config.arch.name}: augment={augmentation.name}, seed {seed}"
    return tiles.numpy(), labels, title


def _label(target: Any, classes: list[str]) -> str:
    """A class name, or for mixed targets the two largest shares: `3 70% + 8 30%`."""
    if target.ndim == 0:
        return classes[int(target)]
    shares, which = target.topk(min(2, len(classes)))
    if shares[0] > 0.999:
        return classes[int(which[0])]
    return " + ".join(f"{classes[int(c)]} {float(s):.0%}" for s, c in zip(shares, which, strict=True) if s > 0.001)
