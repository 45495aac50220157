"""`cnnforge evaluate`: a trained checkpoint's loss, accuracy and confusion matrix on labelled data."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf

from ..train.data import load as load_data
from ..train.loop import evaluate
from .command import UsageError, count_option, device_option, split_args
from .model import load

USAGE = (
    "usage: cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train] "
    "[device=auto|cpu|cuda|mps] [batch_size=N]"
)


def command(argv: list[str]) -> int:
    """cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train] [device=auto]"""
    options, rest = split_args(argv, ("ckpt", "data", "split", "device", "batch_size"), USAGE)
    if "ckpt" not in options or rest:
        raise UsageError(USAGE)
    split_name = options.get("split", "val")
    if split_name not in ("val", "train"):
        raise UsageError(f"split={split_name}: needs val or train\n{USAGE}")
    batch = count_option(options, "batch_size", 256, USAGE)
    device = device_option(options, USAGE)
    trained = load(options.pop("ckpt"), device)
    state, prepare = trained.state, trained.prepare
    data_config = _data_config(state, [f"{k}={v}" for k, v in options.items() if k.split(".")[0] == "data"])
    data = load_data(data_config, tuple(prepare.target))
    if data.classes != trained.classes:
        raise UsageError(
            f"data {data.name} has classes {data.classes}, but the model was trained on "
            f"{state['data']['name']} with classes {trained.classes}"
        )
    if tuple(data.shape) != tuple(prepare.source):
        prepare = prepare.for_source(data.shape, data.scale)
    split = {"val": data.val, "train": data.train}[split_name]
    batches = ((x.to(device), y.to(device)) for x, y in split.batches(batch))
    loss, accuracy, confusion = evaluate(trained.model, batches, prepare, len(data.classes), device=device)
    print(
        f"{trained.name} on {data.name} ({split_name}, {len(split)} samples): loss {loss:.4f}, accuracy {accuracy:.4f}"
    )
    print(confusion_table(confusion, data.classes))
    return 0


def _data_config(state: dict, overrides: list[str]) -> Any:
    """The checkpoint's data config, or the one `data=NAME` composes, with `data.KEY=VALUE` overrides read and
    checked as `cnnforge train` reads and checks them."""
    from hydra.errors import HydraException

    from ..train.settings import SettingsError, compose, parse_overrides, validate_data

    try:
        if any(o.startswith("data=") for o in overrides):
            config = compose(overrides).data
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
    head = "true\\pred".ljust(10) + " ".join(c.rjust(width) for c in classes)
    rows = [
        c.ljust(10) + " ".join(str(int(v)).rjust(width) for v in row) for c, row in zip(classes, confusion, strict=True)
    ]
    return "\n".join([head, *rows])
