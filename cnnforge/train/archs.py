"""Which spec file `arch=...` means: a path, ./architectures/NAME.yaml, or a spec shipped with cnnforge.
Pure Python: no torch, no Hydra."""

from __future__ import annotations

import re
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "architectures"


class ArchError(Exception):
    """An `arch=` value that names no spec file."""


def shipped() -> dict[str, Path]:
    """The specs that ship with cnnforge, by name."""
    return {path.stem: path for path in sorted(SHIPPED.glob("*.yaml"))}


def local(cwd: Path | None = None) -> dict[str, Path]:
    """The specs in ./architectures/ (of `cwd`), by name: what `arch=NAME` takes before a shipped spec."""
    folder = (cwd or Path.cwd()) / "architectures"
    if folder.resolve() == SHIPPED.resolve():  # cnnforge's own checkout: these are the shipped specs
        return {}
    found = sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and p.is_file())
    return {path.stem: path for path in reversed(found)}  # NAME.yaml before NAME.yml, as `resolve` takes them


def listing(cwd: Path | None = None) -> str:
    """Which specs `arch=` can name here, in a few lines for `cnnforge train --help`."""
    here, built_in = local(cwd), shipped()
    lines = ["== Specs (arch=NAME) ==", f"shipped: {', '.join(built_in)}"]
    if here:
        names = [f"{name} (before the shipped {name})" if name in built_in else name for name in sorted(here)]
        lines.append(f"in ./architectures/: {', '.join(names)}")
    else:
        lines.append("in ./architectures/: none (put NAME.yaml there to train it with arch=NAME)")
    lines.append("or a path: arch=path/to/spec.yaml")
    return "\n".join(lines) + "\n"


def looks_like_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value


def resolve(value: str, cwd: Path | None = None) -> Path:
    """The spec file for `arch=value`: a path as given, else ./architectures/NAME.yaml, else a shipped spec."""
    cwd = cwd or Path.cwd()
    if looks_like_path(value):
        path = Path(value).expanduser()  # kept as written, so messages name the file as the user did
        if (cwd / path).is_file():
            return path if cwd == Path.cwd() else cwd / path
        raise ArchError(f"arch={value}: no such file ({cwd / path})")
    for local in (Path("architectures", f"{value}.yaml"), Path("architectures", f"{value}.yml")):
        if (cwd / local).is_file():
            return local if cwd == Path.cwd() else cwd / local
    if value in shipped():
        return shipped()[value]
    raise ArchError(
        f"arch={value}: no ./architectures/{value}.yaml here and no shipped spec of that name "
        f"(shipped: {', '.join(shipped())}); or give a path: arch=path/to/spec.yaml"
    )


def option_name(value: str) -> str:
    """A Hydra config-group option name for an `arch=` value: a path becomes its file's stem."""
    stem = Path(value).stem if looks_like_path(value) else value
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "spec"
