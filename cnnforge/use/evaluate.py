"""`cnnforge evaluate`: a trained checkpoint's loss, accuracy (and top-5 accuracy), confusion matrix and accuracy per
class on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..train.data import Split
from ..train.data import load as load_data
from ..train.scores import Scores, evaluate
from .command import UsageError, choice_option, count_option, device_option, split_args
from .model import Trained, load

USAGE = (
    "usage: cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train|test] "
    "[device=auto|cpu|cuda|mps] [batch_size=N] [FOLDER]"
)
SPLITS = ("val", "train", "test")


def command(argv: list[str]) -> int:
    """cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train|test] [device=auto] [FOLDER]"""
    options, rest = split_args(argv, ("ckpt", "data", "split", "device", "batch_size"), USAGE)
    if "ckpt" not in options or len(rest) > 1:
        raise UsageError(USAGE)
    split_name = choice_option(options, "split", SPLITS, USAGE)
    overrides = [f"{k}={v}" for k, v in options.items() if k.split(".")[0] == "data"]
    if rest and (overrides or "split" in options):
        raise UsageError(f"{rest[0]}: a folder is evaluated whole, without data or split options\n{USAGE}")
    batch = count_option(options, "batch_size", 256, USAGE)
    device = device_option(options, USAGE)
    trained = load(options.pop("ckpt"), device)
    if rest:
        name, (which, split, classes, scale) = "imagefolder", _folder("all", Path(rest[0]), trained, None)
    else:
        config = _data_config(trained.state, overrides)
        name, (which, split, classes, scale) = config.name, _split(config, split_name, trained)
    if classes != trained.classes:
        held = [part for part in SPLITS if rest and (Path(rest[0]) / part).is_dir()]
        hint = f"; {rest[0]} holds {'/, '.join(held)}/: give one of them, or data.root={rest[0]} split=NAME"
        raise UsageError(f"{name} ({which}) {_other_classes(classes, trained)}{hint if held else ''}")
    prepare = trained.prepare
    if tuple(split.shape) != tuple(prepare.source):
        prepare = prepare.for_source(split.shape, scale)
    batches = ((x.to(device), y.to(device)) for x, y in split.batches(batch))
    scores = evaluate(trained.model, batches, prepare, len(classes), device=device)
    print(f"{trained.name} on {name} ({which}, {len(split)} samples): {scores}")
    print(confusion_table(scores.confusion, classes))
    print()
    print(per_class_table(scores, classes))
    return 0


Chosen = tuple[str, Split, list[str], float]  # the split in words, its samples, its class names, a white pixel's value


def _split(config: Any, name: str, trained: Trained) -> Chosen:
    """Split `name` of the data `config` describes: train or val as `cnnforge train` makes them, or test, the
    folder ROOT/test/ of an image folder."""
    if name == "test":
        if config.name != "imagefolder":
            raise UsageError(
                f"split=test: {config.name} has train and val splits only; a test split is an image folder's "
                "ROOT/test/ (data=imagefolder data.root=ROOT), or give a folder of class folders as FOLDER"
            )
        from ..train.vision import data_root

        return _folder("test", data_root(config) / "test", trained, config)
    data = load_data(config, trained.prepare.target)
    split = data.val if name == "val" else data.train
    return name, split, data.classes, data.scale


def _folder(which: str, root: Path, trained: Trained, config: Any) -> Chosen:
    """Every image in root/<class>/."""
    from ..train.vision import labelled_folder

    classes, split = labelled_folder(root, trained.prepare.target, config)
    return f"{which}: {root}", split, classes, 255.0


def _other_classes(found: list[str], trained: Trained) -> str:
    """Why data with classes `found` cannot be scored by `trained`: both lists, and what differs."""
    only_data, only_model = sorted(set(found) - set(trained.classes)), sorted(set(trained.classes) - set(found))
    differ = (
        f" (only in the data: {only_data}; only in the checkpoint: {only_model})" if only_data or only_model else ""
    )
    return (
        f"has classes {found}, but {trained.name} was trained on {trained.state['data']['name']} with "
        f"classes {trained.classes}{differ}"
    )


def _data_config(state: dict, overrides: list[str]) -> Any:
    """The checkpoint's data config, or the one `data=NAME` composes, with `data.KEY=VALUE` overrides read and
    checked as `cnnforge train` reads and checks them."""
    from hydra.errors import HydraException

    from ..train.settings import SettingsError, compose, parse_overrides, validate_data

    try:
        if any(o.startswith("data=") for o in overrides):
            composed = OmegaConf.to_container(compose(overrides), resolve=True)  # data.num_workers: trainer's
            config = OmegaConf.create(composed["data"])  # type: ignore[index]
        else:
            config = OmegaConf.create(state["config"]["data"])
            for key, value in parse_overrides(overrides):
                OmegaConf.update(config, key.removeprefix("data."), value, force_add=True)
        validate_data(config)
    except (HydraException, SettingsError) as error:
        raise UsageError(str(error)) from None
    return config


def confusion_table(confusion: torch.Tensor, classes: list[str]) -> str:
    """Rows: true class; columns: predicted class."""
    width = max(len(str(int(confusion.max()))), *(len(c) for c in classes), 4)
    rows = [[str(int(v)) for v in row] for row in confusion]
    return _table(["true\\pred", *classes], rows, classes, [width] * len(classes))


def per_class_table(scores: Scores, classes: list[str]) -> str:
    """Each class's samples, those predicted right, and their share (its recall; '-' for a class without samples),
    in the rows of the confusion table."""
    shares = ["-" if share is None else f"{share:.4f}" for share in scores.per_class]
    rows = [[str(n), str(hit), share] for (n, hit), share in zip(scores.per_class_counts, shares, strict=True)]
    head = ["class", "samples", "correct", "accuracy"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) + 1 for i, h in enumerate(head[1:])]  # two spaces apart
    return _table(head, rows, classes, widths)


def _table(head: list[str], rows: list[list[str]], classes: list[str], widths: list[int]) -> str:
    """A row per class, its name first, then `rows`' cells right-aligned to `widths`; `head` names the columns."""
    first = max(10, *(len(c) + 1 for c in classes))

    def line(name: str, cells: list[str]) -> str:
        return name.ljust(first) + " ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join([line(head[0], head[1:]), *(line(c, row) for c, row in zip(classes, rows, strict=True))])
