"""Output files, written safely: each first to a new hidden temporary file in the target's folder (created with
O_EXCL by tempfile.mkstemp, so a planted symlink is never followed), flushed to disk, then renamed over the target
(`replace`) or hard-linked to a free name (`write_new`, which never touches an existing file). A temporary file
is removed on any failure, Ctrl-C included; those a killed process left behind are removed by the next writer."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


class WriteError(OSError):
    """An output file that could not be written; the message names it and says why, in one line."""


def _failed(path: Path, error: OSError) -> WriteError:
    return WriteError(f"{path}: cannot write: {error.strerror or error}")


def _mode() -> int:
    """The permissions a plain open() gives a new file (mkstemp's own are 0600)."""
    umask = os.umask(0o022)  # read by setting it, then put back
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_name(path: Path) -> re.Pattern[str]:
    """The names of `path`'s temporary files: .NAME.PID.XXXXXXXX.tmp (and .NAME.PID.tmp, as older versions
    named them)."""
    return re.compile(re.escape(f".{path.name}.") + r"(\d+)(?:\.[a-z0-9_]+)?\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process; a number no process has
        return True
    return True


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporary files of `path` that processes no longer running left in its folder (a save
    killed mid-write); those of running processes are kept. Returns the files removed."""
    pattern = _temporary_name(path)
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _alive(int(match[1])):
            try:
                (path.parent / name).unlink()  # a symlink is removed itself, never what it points to
            except OSError:
                continue
            removed.append(path.parent / name)
    return removed


def _written(path: Path, write: Writer) -> Path:
    """A new hidden temporary file next to `path` holding what `write` writes, flushed to disk."""
    remove_stale(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _failed(path, error) from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, _mode())
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _failed(path, error) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace(path: Path, write: Writer) -> Path:
    """Write `path` atomically with what `write` writes: readers see the old file or the new one, never a part.

    >>> replace(Path("run/metrics.csv"), lambda file: file.write(b"epoch\\n1\\n"))  # doctest: +SKIP
    """
    tmp = _written(path, write)
    try:
        os.replace(tmp, path)
    except OSError as error:
        raise _failed(path, error) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _link_all(tmps: list[Path], paths: list[Path]) -> bool:
    """Hard-link each temporary file to its path; if any path exists already, undo and say so."""
    linked: list[Path] = []
    try:
        for tmp, path in zip(tmps, paths, strict=True):
            os.link(tmp, path)  # fails, rather than replacing, when the path exists (a symlink included)
            linked.append(path)
    except FileExistsError:
        for path in linked:
            path.unlink()
        return False
    except OSError as error:
        for path in linked:
            path.unlink()
        raise _failed(paths[len(linked)], error) from None
    return True


def write_new(folder: Path, stem: str, writers: dict[str, Writer]) -> list[Path]:
    """Write one file per suffix in `writers` as folder/NAME+suffix, NAME being `stem` or the first `stem-N`
    (N = 2, 3, ...) for which none of the files exists yet; existing files are never touched.

    >>> write_new(Path("out"), "digit", {".png": image.save, ".npy": heat.dump})  # doctest: +SKIP
    [PosixPath('out/digit-2.png'), PosixPath('out/digit-2.npy')]
    """
    tmps: list[Path] = []
    try:
        for suffix, write in writers.items():
            tmps.append(_written(folder / f"{stem}{suffix}", write))
        name, n = stem, 1
        while True:
            paths = [folder / f"{name}{suffix}" for suffix in writers]
            if not any(os.path.lexists(path) for path in paths) and _link_all(tmps, paths):
                return paths
            n += 1
            name = f"{stem}-{n}"
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
