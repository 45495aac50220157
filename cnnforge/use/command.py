"""The command-line pieces evaluate, predict, explain and features share: KEY=VALUE options, reading images with
a line on stderr for each that cannot be read, and one line and an exit status for every refusal. Torch is imported
only by the helpers that make tensors, so that `predict model=FILE.onnx` runs without it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import images
from ..errors import Refused

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


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


def long_options(argv: list[str], names: tuple[str, ...], usage: str) -> list[str]:
    """argv with `--NAME VALUE` and `--NAME=VALUE` for each of `names` written as NAME=VALUE."""
    result, rest = [], iter(argv)
    for arg in rest:
        key, eq, value = arg.partition("=")
        if key.startswith("--") and key[2:] in names:
            value = value if eq else next(rest, None)
            if value is None:
                raise UsageError(f"{arg}: needs a value\n{usage}")
            arg = f"{key[2:]}={value}"
        result.append(arg)
    return result


def choice_option(options: dict[str, str], key: str, choices: tuple[str, ...], usage: str) -> str:
    """The option `key`, one of `choices`; the first when not given."""
    value = options.get(key, choices[0])
    if value not in choices:
        raise UsageError(f"{key}={value}: needs {', '.join(choices[:-1])} or {choices[-1]}\n{usage}")
    return value


def count_option(options: dict[str, str], key: str, default: int, usage: str, least: int = 1) -> int:
    """The whole-number option `key`, at least `least` (1 or 0)."""
    value = options.get(key, str(default))
    if not (value.isascii() and value.isdigit()) or int(value) < least:
        needs = "a positive whole number" if least else "a whole number, 0 or more"
        raise UsageError(f"{key}={value}: needs {needs}\n{usage}")
    return int(value)


def flag_option(options: dict[str, str], key: str, usage: str) -> bool:
    """The true/false option `key`; false when not given."""
    value = options.get(key, "false")
    if value.lower() not in ("true", "false"):
        raise UsageError(f"{key}={value}: needs true or false\n{usage}")
    return value.lower() == "true"


def device_option(options: dict[str, str], usage: str) -> torch.device:
    from ..train.loop import DeviceError, pick_device

    try:
        return pick_device(options.get("device", "auto"))
    except DeviceError as error:
        raise UsageError(f"device={error}\n{usage}") from None


def read_picture(name: str, mode: str) -> Image | None:
    """The image file `name` in PIL's `mode` ("L" or "RGB"); None, said on stderr, when it cannot be read or is
    refused (images.read says which)."""
    try:
        return images.read(name, mode)
    except images.ImageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return None


def read_image(name: str, mode: str) -> torch.Tensor | None:
    """The image file `name` in PIL's `mode` as uint8 [1, C, H, W]; None, said on stderr, as by read_picture."""
    from .model import as_tensor

    picture = read_picture(name, mode)
    return None if picture is None else as_tensor(picture)


def image_files(names: list[str]) -> tuple[list[str], bool]:
    """The files named, and for each folder named, the image files in it and its subfolders (by extension: those
    Pillow opens), sorted; a note on stderr for other files skipped, an error for a folder that cannot be read or
    holds no image. Returns the files and whether every folder could be read and held images."""
    suffixes, files, ok = images.extensions(), [], True
    for name in names:
        if not os.path.isdir(name):
            files.append(name)
            continue
        found, skipped, unreadable = [], [], []
        for folder, _, entries in os.walk(name, onerror=unreadable.append):
            for entry in entries:
                path = os.path.join(folder, entry)
                (found if Path(entry).suffix.lower() in suffixes else skipped).append(path)
        for error in unreadable:
            print(f"{error.filename}: error: cannot read folder: {error.strerror or error}", file=sys.stderr)
        if skipped:
            shown = sorted(os.path.relpath(path, name) for path in skipped)
            listed = ", ".join(shown[:5]) + (f", ... ({len(shown)} in all)" if len(shown) > 5 else "")
            what = "a file that is not an image" if len(skipped) == 1 else f"{len(skipped)} files that are not images"
            print(f"{name}: note: skipped {what}: {listed}", file=sys.stderr)
        if not found and not unreadable:
            print(f"{name}: error: no image files in this folder", file=sys.stderr)
        ok = ok and bool(found) and not unreadable
        files += sorted(found, key=lambda path: Path(path).parts)
    return files, ok


def run(command: str, function: Callable[[list[str]], int], argv: list[str]) -> int:
    """`cnnforge COMMAND ARGV`: what `function` returns, or one line on stderr and status 2 for a command line
    that cannot be run, 1 for a checkpoint, data or file that cannot be used."""
    try:
        return function(argv)
    except UsageError as error:
        print(f"cnnforge {command}: {error}", file=sys.stderr)
        return 2
    except (Refused, OSError) as error:  # OSError: e.g. out= a file; WriteError is one
        print(f"cnnforge {command}: error: {error}", file=sys.stderr)
        return 1
