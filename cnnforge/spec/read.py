"""Read a spec file into a validated Spec, turning every problem into a positioned Diagnostic."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..diagnostics import Diagnostic
from ..layers import LAYERS, suggest
from ..layers.fields import _found
from ..layers.foreign import key_hint, type_hint
from ..layers.registry import closest
from .model import SpecBase, spec_model
from .params import ParamError, Value, substitute
from .source import MAX_BYTES, Source, SourceError, parse

MAX_REPORTED = 50  # schema errors listed per file; the rest are counted


@dataclass
class Loaded:
    """A spec file as far as it could be read: `spec` is None when it is not valid."""

    file: str
    spec: SpecBase | None = None
    source: Source | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def read(path: str | Path, bindings: Mapping[str, Value] | None = None) -> Loaded:
    """Read and validate the spec file at `path`, with `bindings` for its declared parameters."""
    try:
        if kind := _not_a_file(os.stat(path).st_mode):  # opening a FIFO would wait for a writer, forever
            return Loaded(str(path), diagnostics=[Diagnostic(str(path), f"cannot read file: it is {kind}")])
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)  # enough to refuse a huge file without reading all of it
    except OSError as error:
        return Loaded(str(path), diagnostics=[Diagnostic(str(path), f"cannot read file: {error.strerror or error}")])
    return read_text(raw, str(path), bindings)


def _not_a_file(mode: int) -> str | None:
    """What a path with this `st_mode` is, when it is not a regular file (a link is followed first)."""
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file"),
        (stat.S_ISCHR, "a character device, not a regular file"),
        (stat.S_ISBLK, "a block device, not a regular file"),
        (stat.S_ISSOCK, "a socket, not a regular file"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_text(raw: bytes | str, file: str = "<spec>", bindings: Mapping[str, Value] | None = None) -> Loaded:
    """Validate a spec given as YAML text; `file` names it in diagnostics."""
    try:
        source = parse(raw)
    except SourceError as error:
        line, column = error.position or (None, None)
        return Loaded(file, diagnostics=[Diagnostic(file, error.message, line=line, column=column)])
    return validate(source, file, bindings)


def validate(source: Source, file: str = "<spec>", bindings: Mapping[str, Value] | None = None) -> Loaded:
    """Validate parsed data, its parameters substituted, against the Spec model of the registered layer kinds."""
    loaded = Loaded(file, source=source)
    if not isinstance(source.data, dict):
        found = "an empty file" if source.data is None else f"{type(source.data).__name__} {_found(source.data)}"
        loaded.diagnostics.append(
            Diagnostic(file, f"a spec is a mapping with keys name, input and layers; found {found}", line=1, column=1)
        )
        return loaded
    try:
        source = loaded.source = substitute(source, bindings)
    except ParamError as error:
        line, column = source.where(error.path) or (None, None)
        message = error.message + source.note(error.path)
        loaded.diagnostics.append(Diagnostic(file, message, line=line, column=column))
        return loaded
    try:
        loaded.spec = spec_model().model_validate(source.data)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False)
        replaced = {(p["loc"][:3], key) for p in problems if (key := _stands_for(p))}
        problems = [p for p in problems if not (p["type"] == "missing" and (p["loc"][:3], p["loc"][-1]) in replaced)]
        loaded.diagnostics += [_diagnostic(p, source, file) for p in problems[:MAX_REPORTED]]
        if len(problems) > MAX_REPORTED:
            loaded.diagnostics.append(Diagnostic(file, f"{len(problems) - MAX_REPORTED} more errors not shown"))
    return loaded


def _diagnostic(problem: dict, source: Source, file: str) -> Diagnostic:
    loc = list(problem["loc"])
    layer: dict[str, Any] = {}
    fields = SpecBase.model_fields
    if len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int):
        raw = source.data["layers"][loc[1]]
        kind = raw.get("type") if isinstance(raw, dict) else None
        kind = kind if isinstance(kind, str) and len(kind) <= 40 else None
        if len(loc) >= 3 and loc[2] == kind:
            del loc[2]  # pydantic puts the union's tag in the location
        if problem["type"] == "union_tag_invalid":
            loc.append("type")  # point at the unknown type, not at the layer
        name = raw.get("name") if isinstance(raw, dict) else None
        name = name if isinstance(name, str) and len(name) <= 64 else f"{kind}{loc[1]}"
        layer = {"layer_index": loc[1], "layer_name": name if kind else None, "layer_type": kind}
        fields = LAYERS[kind].model_fields if kind in LAYERS else {}
        key = loc[2:]
    else:
        key, kind = loc, None
    line, column = source.where(tuple(loc)) or (None, None)
    message = _message(problem, key, fields, kind) + source.note(tuple(loc))
    return Diagnostic(file, message, line=line, column=column, **layer)


def _message(problem: dict, key: list, fields: dict, layer: str | None) -> str:
    kind, found = problem["type"], problem.get("input")
    where = _short(".".join(str(k) for k in key))
    if kind == "extra_forbidden":
        if layer is not None and (hint := key_hint(layer, str(key[-1]))):
            return f"unknown key '{where}' ({hint[1]})"
        return f"unknown key '{where}'{suggest(str(key[-1]), [f for f in fields if f != 'type'])}"
    if kind == "too_short":
        return f"'{where}': needs at least one item, found {_found(found)}"
    if kind == "missing":
        return f"missing required key '{where}'"
    if kind == "union_tag_invalid":
        tag, known = problem["input"].get("type"), ", ".join(sorted(LAYERS))
        if not isinstance(tag, str):
            return f"'type': expected the name of a layer type, found {_found(tag)}; known types: {known}"
        if hint := type_hint(tag):
            return f"unknown layer type '{_short(tag)}': {hint}"
        return f"unknown layer type '{_short(tag)}'{suggest(tag, LAYERS)}; known types: {known}"
    if kind == "union_tag_not_found":
        keys = [k for k in found if isinstance(k, str) and len(k) <= 40] if isinstance(found, dict) else []
        typo = next((f"; found '{k}' (did you mean 'type'?)" for k in keys if suggest("type", [k])), "")
        return f"missing required key 'type' (one of: {', '.join(sorted(LAYERS))}){typo}"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        return f"{where + ': ' if where else ''}expected a mapping of keys, found {_found(found)}"
    if kind in ("ints", "pair", "padding", "reserved"):
        return f"'{where}': {problem['msg']}"
    message = problem["msg"]
    message = message[0].lower() + message[1:]
    return f"'{where}': {message}, found {_found(found)}"


def _stands_for(problem: dict) -> str | None:
    """The key an unknown key of a layer stands for (`filters` for conv's `shape`, `strid` for `stride`), if any:
    that key's absence is no second error."""
    loc = problem["loc"]
    if problem["type"] != "extra_forbidden" or len(loc) != 4 or loc[0] != "layers" or loc[2] not in LAYERS:
        return None
    kind, key = loc[2], str(loc[3])
    if found := key_hint(kind, key):
        return found[0]
    return closest(key, [f for f in LAYERS[kind].model_fields if f != "type"])


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
