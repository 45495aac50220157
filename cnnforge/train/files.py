"""New output files, written atomically (a temporary file, then a hard link) and never over an existing file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


def _written(path: Path, write: Writer) -> Path:
    """A hidden temporary file next to `path` holding what `write` writes, flushed to disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    return tmp


def _link_all(tmps: list[Path], paths: list[Path]) -> bool:
    """Hard-link each temporary file to its path; if any path exists already, undo and say so."""
    linked: list[Path] = []
    try:
        for tmp, path in zip(tmps, paths, strict=True):
            os.link(tmp, path)  # fails, rather than replacing, when the path exists
            linked.append(path)
    except FileExistsError:
        for path in linked:
            path.unlink()
        return False
    return True


def write_new(folder: Path, stem: str, writers: dict[str, Writer]) -> list[Path]:
    """Write one file per suffix in `writers` as folder/NAME+suffix, NAME being `stem` or the first `stem-N`
    (N = 2, 3, ...) for which none of the files exists yet; existing files are never touched.

    >>> write_new(Path("out"), "digit", {".png": image.save, ".npy": heat.dump})  # doctest: +SKIP
    [PosixPath('out/digit-2.png'), PosixPath('out/digit-2.npy')]
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmps = [_written(folder / f"{stem}{suffix}", write) for suffix, write in writers.items()]
    try:
        name, n = stem, 1
        while True:
            paths = [folder / f"{name}{suffix}" for suffix in writers]
            if not any(path.exists() for path in paths) and _link_all(tmps, paths):
                return paths
            n += 1
            name = f"{stem}-{n}"
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
