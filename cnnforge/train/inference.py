"""`cnnforge evaluate` and `cnnforge predict`: a trained checkpoint on a data set, or on image files; and the
command-line pieces `cnnforge explain` and `cnnforge features` share with them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..builder import build
from ..compiler import Compiled, compile_spec
from ..files import WriteError
from ..spec import read_text
from . import checkpoint, images
from .data import DataError, Prepare, load
from .loop import DeviceError, evaluate, pick_device


class UsageError(Exception):
    """A command line that cannot be run."""


def compiled_spec(state: dict[str, Any]) -> Compiled:
    """The spec stored in a loaded checkpoint, compiled: its layers' names, kinds and shapes."""
    spec = state["spec"]
    loaded = read_text(spec["text"], spec["file"], spec["bindings"])
    compiled = None if loaded.spec is None else compile_spec(loaded.spec, loaded.file, loaded.source)
    if compiled is None or not compiled.ok:
        errors = [d for d in (loaded if compiled is None else compiled).diagnostics if d.severity == "error"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise checkpoint.CheckpointError(f"its spec does not compile: {errors[0]}{more}")
    return compiled


def load_model(path: str | Path) -> tuple[torch.nn.Module, Prepare, dict[str, Any]]:
    """The trained model in a checkpoint, rebuilt from the spec text stored in it, and how it prepares input.
    A checkpoint that lacks a part (checkpoint.REQUIRED), or whose parts do not fit together, is a CheckpointError
    naming it."""
    state = checkpoint.load(path)
    if problem := checkpoint.incomplete(state):
        raise checkpoint.CheckpointError(f"{path}: not a complete cnnforge checkpoint: {problem}")
    try:
        compiled = compiled_spec(state)
    except checkpoint.CheckpointError as error:
        raise checkpoint.CheckpointError(f"{path}: {error}") from None
    name, spec = compiled.spec.name, compiled.spec  # type: ignore[union-attr]
    model = build(compiled)
    if problem := checkpoint.mismatch(model.state_dict(), state["model"]):
        raise checkpoint.CheckpointError(f"{path}: its weights do not fit its spec {name}: {problem}")
    model.load_state_dict(state["model"])
    classes = len(state["data"]["classes"])
    if compiled.output != (classes,):
        raise checkpoint.CheckpointError(
            f"{path}: its spec {name} gives {list(compiled.output or ())}, not one score for each of its {classes} "
            "classes"
        )
    try:
        prepare = Prepare.from_state(state["prepare"])
    except DataError as error:
        raise checkpoint.CheckpointError(f"{path}: its 'prepare' cannot be used: {error}") from None
    if prepare.target != tuple(spec.input):
        raise checkpoint.CheckpointError(
            f"{path}: its 'prepare' makes inputs {list(prepare.target)}, but its spec {name} takes {list(spec.input)}"
        )
    return model.eval(), prepare, state


def split_args(
    argv: list[str], known: tuple[str, ...], usage: str, flags: tuple[str, ...] = ()
) -> tuple[dict[str, str], list[str]]:
    """KEY=VALUE options (`known` keys, and data.KEY when "data" is known) apart from the other arguments;
    `--KEY` for a key in `flags` is KEY=true."""
    options, rest = {}, []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if arg.startswith("--") and arg[2:] in flags:
            options[arg[2:]] = "true"
        elif eq and not Path(arg).exists():
            if key not in known and not ("data" in known and key.startswith("data.")):
                raise UsageError(f"unknown option {key!r} (options: {', '.join(known)})\n{usage}")
            options[key] = value
        else:
            rest.append(arg)
    return options, rest


def count_option(options: dict[str, str], key: str, default: int, usage: str) -> int:
    """The positive integer option `key`."""
    value = options.get(key, str(default))
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"{key}={value}: needs a positive whole number\n{usage}")
    return int(value)


def flag_option(options: dict[str, str], key: str, usage: str) -> bool:
    """The true/false option `key`; false when not given."""
    value = options.get(key, "false")
    if value.lower() not in ("true", "false"):
        raise UsageError(f"{key}={value}: needs true or false\n{usage}")
    return value.lower() == "true"


def device_option(options: dict[str, str], usage: str) -> torch.device:
    try:
        return pick_device(options.get("device", "auto"))
    except DeviceError as error:
        raise UsageError(f"device={error}\n{usage}") from None


def evaluate_command(argv: list[str]) -> int:
    """cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train] [device=auto]"""
    usage = (
        "usage: cnnforge evaluate ckpt=PATH [data=NAME] [data.KEY=VALUE ...] [split=val|train] "
        "[device=auto|cpu|cuda|mps] [batch_size=N]"
    )
    options, rest = split_args(argv, ("ckpt", "data", "split", "device", "batch_size"), usage)
    if "ckpt" not in options or rest:
        raise UsageError(usage)
    split_name = options.get("split", "val")
    if split_name not in ("val", "train"):
        raise UsageError(f"split={split_name}: needs val or train\n{usage}")
    batch = count_option(options, "batch_size", 256, usage)
    device = device_option(options, usage)
    model, prepare, state = load_model(options.pop("ckpt"))
    data_config = _data_config(state, [f"{k}={v}" for k, v in options.items() if k.split(".")[0] == "data"])
    data = load(data_config, tuple(prepare.target))
    if data.classes != state["data"]["classes"]:
        raise UsageError(
            f"data {data.name} has classes {data.classes}, but the model was trained on "
            f"{state['data']['name']} with classes {state['data']['classes']}"
        )
    if tuple(data.shape) != tuple(prepare.source):
        prepare = prepare.for_source(data.shape, data.scale)
    split = {"val": data.val, "train": data.train}[split_name]
    batches = ((x.to(device), y.to(device)) for x, y in split.batches(batch))
    loss, accuracy, confusion = evaluate(model.to(device), batches, prepare, len(data.classes), device=device)
    print(
        f"{state['spec']['name']} on {data.name} ({split_name}, {len(split)} samples): "
        f"loss {loss:.4f}, accuracy {accuracy:.4f}"
    )
    print(confusion_table(confusion, data.classes))
    return 0


def _data_config(state: dict, overrides: list[str]) -> Any:
    """The checkpoint's data config, or the one `data=NAME` composes, with `data.KEY=VALUE` overrides read and
    checked as `cnnforge train` reads and checks them."""
    from hydra.errors import HydraException

    from .settings import SettingsError, compose, parse_overrides, validate_data

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


def predict_command(argv: list[str]) -> int:
    """cnnforge predict ckpt=PATH [top_k=3] [device=auto] IMAGE..."""
    usage = "usage: cnnforge predict ckpt=PATH [top_k=3] [device=auto|cpu|cuda|mps] IMAGE..."
    options, images = split_args(argv, ("ckpt", "top_k", "device"), usage)
    if "ckpt" not in options or not images:
        raise UsageError(usage)
    top_k = count_option(options, "top_k", 3, usage)
    device = device_option(options, usage)
    model, prepare, state = load_model(options["ckpt"])
    classes = state["data"]["classes"]
    k = min(top_k, len(classes))
    model = model.to(device)
    channels = prepare.source[0]
    status = 0
    for name in images:
        x = read_image(name, "L" if channels == 1 else "RGB")
        if x is None:
            status = 1
            continue
        image_prepare = prepare.for_source(tuple(x.shape[1:]), 255.0)
        with torch.no_grad():
            p = model(image_prepare(x.to(device))).softmax(dim=1)[0].cpu()
        top = p.topk(k)
        print(f"{name}: " + ", ".join(f"{classes[i]} ({v:.3f})" for v, i in zip(top.values, top.indices, strict=True)))
    return status


def read_image(name: str, mode: str) -> torch.Tensor | None:
    """The image file `name` in PIL's `mode` ("L" or "RGB") as uint8 [1, C, H, W]; None, said on stderr, when
    it cannot be read or is refused (images.read says which)."""
    try:
        pixels = images.read(name, mode)
    except images.ImageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return None
    x = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8)
    return x.view(pixels.height, pixels.width, -1).permute(2, 0, 1)[None]  # [1, C, H, W]


def _command(name: str) -> Any:
    """The function behind `cnnforge NAME`."""
    if name == "explain":
        from .explain import explain_command

        return explain_command
    if name == "features":
        from .features import features_command

        return features_command
    return {"evaluate": evaluate_command, "predict": predict_command}[name]


def main(command: str, argv: list[str]) -> int:
    run = _command(command)
    try:
        return run(argv)
    except UsageError as error:
        print(f"cnnforge {command}: {error}", file=sys.stderr)
        return 2
    except (checkpoint.CheckpointError, DataError, WriteError, OSError) as error:  # OSError: e.g. out= a file
        print(f"cnnforge {command}: error: {error}", file=sys.stderr)
        return 1
