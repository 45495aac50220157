"""The command-line pieces evaluate, predict, explain and features share: KEY=VALUE options, reading images with
a line on stderr for each that cannot be read, and one line and an exit status for every refusal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .. import images
from ..files import WriteError
from ..train.checkpoint import CheckpointError
from ..train.data import DataError
from ..train.loop import DeviceError, pick_device
from .model import as_tensor


class UsageError(Exception):
    """A command line that cannot be run."""


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


def read_image(name: str, mode: str) -> torch.Tensor | None:
    """The image file `name` in PIL's `mode` ("L" or "RGB") as uint8 [1, C, H, W]; None, said on stderr, when
    it cannot be read or is refused (images.read says which)."""
    try:
        return as_tensor(images.read(name, mode))
    except images.ImageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return None


def run(command: str, function: Callable[[list[str]], int], argv: list[str]) -> int:
    """`cnnforge COMMAND ARGV`: what `function` returns, or one line on stderr and status 2 for a command line
    that cannot be run, 1 for a checkpoint, data or file that cannot be used."""
    try:
        return function(argv)
    except UsageError as error:
        print(f"cnnforge {command}: {error}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError, WriteError, OSError) as error:  # OSError: e.g. out= a file
        print(f"cnnforge {command}: error: {error}", file=sys.stderr)
        return 1
