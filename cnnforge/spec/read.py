"""Read a spec file into a validated Spec, turning every problem into a positioned Diagnostic."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..diagnostics import Diagnostic, has_errors
from ..layers import LAYERS, suggest
from ..layers.fields import _found
from ..layers.foreign import key_hint, type_hint
from ..layers.registry import closest
from .graph import STRUCTURE, Expander, Leaf, leaves, note
from .model import EXTENDING, SpecBase, layer_adapter
from .params import ParamError, Value, declared, substitute
from .source import MAX_BYTES, Source, SourceError, parse

MAX_REPORTED = 50  # schema errors listed per file; the rest are counted
MAX_EXTENDS = 8  # specs extending specs extending ...


@dataclass
class Loaded:
    """A spec file as far as it could be read: `spec` is None when it is not valid."""

    file: str
    spec: SpecBase | None = None
    source: Source | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    text: str | None = None
    """The spec's text standing alone: with `bindings`, read_text(text) gives this spec again (for a spec that
    extends another, the other's text, with the parameters it sets among the bindings)."""
    bindings: dict[str, Value] = field(default_factory=dict)


def read(path: str | Path, bindings: Mapping[str, Value] | None = None, _chain: tuple[str, ...] = ()) -> Loaded:
    """Read and validate the spec file at `path`, with `bindings` for its declared parameters."""
    raw = _raw(path)
    if isinstance(raw, Diagnostic):
        return Loaded(str(path), diagnostics=[raw])
    return read_text(raw, str(path), bindings, _chain)


def _raw(path: str | Path) -> bytes | Diagnostic:
    """The file's bytes (up to a byte past the most a spec may hold), or why they cannot be read."""
    try:
        if kind := _not_a_file(os.stat(path).st_mode):  # opening a FIFO would wait for a writer, forever
            return Diagnostic(str(path), f"cannot read file: it is {kind}")
        with open(path, "rb") as file:
            return file.read(MAX_BYTES + 1)  # enough to refuse a huge file without reading all of it
    except OSError as error:
        return Diagnostic(str(path), f"cannot read file: {error.strerror or error}")


def _declares(data: Any, file: str, depth: int = 0) -> dict[str, Any] | None:
    """The parameters the spec `data` (read from `file`) declares, through the specs it extends; None when that
    cannot be read (reading the spec itself says why)."""
    base = data.get("extends") if isinstance(data, dict) else None
    if not isinstance(base, str):
        return declared(data)
    inner = _raw(os.path.normpath(Path(file).parent / base))
    if isinstance(inner, Diagnostic) or depth >= MAX_EXTENDS:
        return None
    try:
        return _declares(parse(inner).data, os.path.normpath(Path(file).parent / base), depth + 1)
    except SourceError:
        return None


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


def read_text(
    raw: bytes | str, file: str = "<spec>", bindings: Mapping[str, Value] | None = None, _chain: tuple[str, ...] = ()
) -> Loaded:
    """Validate a spec given as YAML text; `file` names it in diagnostics (and is where `extends` is read from)."""
    try:
        source = parse(raw)
    except SourceError as error:
        line, column = error.position or (None, None)
        return Loaded(file, diagnostics=[Diagnostic(file, error.message, line=line, column=column)])
    return _read_source(source, raw, file, bindings, _chain)


def _read_source(
    source: Source, raw: bytes | str, file: str, bindings: Mapping[str, Value] | None, chain: tuple[str, ...]
) -> Loaded:
    """The spec parsed from `raw`: validated, or read through the spec it extends."""
    if isinstance(source.data, dict) and "extends" in source.data:
        return _extend(source, file, bindings or {}, chain)
    loaded = validate(source, file, bindings)
    loaded.text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    loaded.bindings = dict(bindings or {})
    return loaded


def _extend(source: Source, file: str, bindings: Mapping[str, Value], chain: tuple[str, ...]) -> Loaded:
    """A spec that extends another (`extends: resnet50.yaml`, read from this file's folder): the other's layers
    with the parameters this one sets, under this one's name and description.

        extends: resnet50.yaml
        name: resnext50_32x4d
        params: {groups: 32, width_per_group: 4}
    """
    data = source.data

    def refuse(path: tuple, message: str) -> Loaded:
        line, column = source.where(path) or (None, None)
        return Loaded(file, source=source, diagnostics=[Diagnostic(file, message, line=line, column=column)])

    base = data["extends"]
    if not isinstance(base, str) or not base.endswith((".yaml", ".yml")):
        return refuse(("extends",), f"'extends' names a spec file (resnet50.yaml), found {_found(base)}")
    for key in data:
        if key not in EXTENDING:
            return refuse(
                (key,),
                f"'{key}': a spec that extends another says only {', '.join(EXTENDING)}; its {key} are {base}'s",
            )
    params = data.get("params") or {}
    if not isinstance(params, dict):
        return refuse(("params",), f"'params' maps the parameters of {base} to values, found {_found(params)}")
    for key in ("name", "description"):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            return refuse((key,), f"'{key}' is text, found {_found(data[key])}")
    base_file = os.path.normpath(Path(file).parent / base)
    if base_file in (*chain, file) or len(chain) >= MAX_EXTENDS:
        trail = " -> ".join(Path(f).name for f in (*chain, file, base_file))
        why = "extends itself" if base_file in (*chain, file) else f"extends more than {MAX_EXTENDS} specs deep"
        return refuse(("extends",), f"{why}: {trail}")
    raw = _raw(base_file)
    if isinstance(raw, Diagnostic):
        return refuse(("extends",), f"extends {base}: {raw.message} ({base_file})")
    try:
        based = parse(raw)
    except SourceError:
        return read_text(raw, base_file)  # the extended file's own error, at its place
    declares = _declares(based.data, base_file)
    for name, value in params.items():
        if declares is not None and name not in declares:
            known = ", ".join(declares) or "none"
            return refuse(("params", name), f"{base} declares no parameter '{name}' (declared: {known})")
        if not isinstance(value, Value) or value is None:
            return refuse(("params", name), f"parameter '{name}' is set to a number, true/false or a word")
    loaded = _read_source(based, raw, base_file, {**params, **bindings}, (*chain, file))
    if loaded.spec is not None:
        own = {key: data[key] for key in ("name", "description") if key in data}
        loaded.spec = loaded.spec.model_copy(update=own)
    return loaded


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
        top = SpecBase.model_validate(source.data)
    except ValidationError as error:
        top = None
        problems = error.errors(include_url=False, include_context=False)
        loaded.diagnostics += [_diagnostic(p, source, file) for p in problems]
    expander = Expander(source, file, {**declared(source.data), **(bindings or {})})
    entries = expander.expand(source.data, frozenset(LAYERS))
    loaded.diagnostics += expander.diagnostics
    problems_left = MAX_REPORTED - len(loaded.diagnostics)
    said: set[str] = set()
    for leaf in leaves(entries):
        found = [d for d in _validate_leaf(leaf, source, file, expander.blocks) if _first(d, said)]
        loaded.diagnostics += found[: max(problems_left, 0)]
        problems_left -= len(found)
    if problems_left < 0:
        loaded.diagnostics.append(Diagnostic(file, f"{-problems_left} more errors not shown"))
    if top is not None and not has_errors(loaded.diagnostics):
        if not entries:
            line, column = source.where(("layers",)) or (None, None)
            message = "no layers are left: every one has `when` false"
            loaded.diagnostics.append(Diagnostic(file, message, line=line, column=column))
        else:
            loaded.spec = top.model_copy(update={"layers": entries})
    return loaded


def _first(diagnostic: Diagnostic, said: set[str]) -> bool:
    """Whether this problem is new: a block's line is said once, however many uses meet it."""
    text = f"{diagnostic.line}:{diagnostic.column}:{diagnostic.message.split('; in block ')[0]}"
    if text in said:
        return False
    said.add(text)
    return True


def _validate_leaf(leaf: Leaf, source: Source, file: str, blocks: Mapping[str, Any]) -> list[Diagnostic]:
    """Validate one layer's keys as its kind's model, setting `leaf.layer`; the problems, positioned."""
    try:
        leaf.layer = layer_adapter().validate_python(leaf.data)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False)
        replaced = {key for p in problems if (key := _stands_for(p))}
        problems = [p for p in problems if not (p["type"] == "missing" and p["loc"][-1] in replaced)]
        return [_leaf_diagnostic(p, leaf, source, file, blocks) for p in problems]
    leaf.name = leaf.name or f"{leaf.layer.kind}{leaf.index}"
    return []


def _leaf_diagnostic(problem: dict, leaf: Leaf, source: Source, file: str, blocks: Mapping[str, Any]) -> Diagnostic:
    loc = list(problem["loc"])
    raw = leaf.data if isinstance(leaf.data, dict) else {}
    kind = raw.get("type")
    kind = kind if isinstance(kind, str) and len(kind) <= 40 else None
    if loc and loc[0] == kind:
        del loc[0]  # pydantic puts the union's tag in the location
    if problem["type"] == "union_tag_invalid":
        loc.append("type")  # point at the unknown type, not at the layer
    name = leaf.name or raw.get("name")  # a repetition's name is its number
    name = name if isinstance(name, str) and len(name) <= 64 else f"{kind}{leaf.index}"
    fields = LAYERS[kind].model_fields if kind in LAYERS else {}
    where = (*leaf.keys[loc[0]], *loc[1:]) if loc and loc[0] in leaf.keys else (*leaf.where, *loc)
    line, column = source.where(where) or (None, None)
    message = _message(problem, loc, fields, kind, blocks) + source.note(where) + note(leaf.uses, source)
    last = name if leaf.path[-1] in ("", raw.get("name")) else leaf.path[-1]  # a repetition's number stays
    path = ".".join((*leaf.path[:-1], last)) if kind else None
    return Diagnostic(file, message, "error", line, column, leaf.index, name if kind else None, kind, path)


def _diagnostic(problem: dict, source: Source, file: str) -> Diagnostic:
    """A problem with the top-level keys (name, input, params...)."""
    loc = list(problem["loc"])
    line, column = source.where(tuple(loc)) or (None, None)
    message = _message(problem, loc, SpecBase.model_fields, None) + source.note(tuple(loc))
    return Diagnostic(file, message, line=line, column=column)


def _message(problem: dict, key: list, fields: dict, layer: str | None, blocks: Mapping[str, Any] = {}) -> str:
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
        tag, known = problem["input"].get("type"), ", ".join(sorted([*LAYERS, *STRUCTURE]))
        if not isinstance(tag, str):
            return f"'type': expected the name of a layer type, found {_found(tag)}; known types: {known}"
        if hint := type_hint(tag):
            return f"unknown layer type '{_short(tag)}': {hint}"
        blocks_known = f"; blocks: {', '.join(blocks)}" if blocks else ""
        close = suggest(tag, [*LAYERS, *STRUCTURE, *blocks])
        return f"unknown layer type '{_short(tag)}'{close}; known types: {known}{blocks_known}"
    if kind == "union_tag_not_found":
        keys = [k for k in found if isinstance(k, str) and len(k) <= 40] if isinstance(found, dict) else []
        typo = next((f"; found '{k}' (did you mean 'type'?)" for k in keys if suggest("type", [k])), "")
        return f"missing required key 'type' (one of: {', '.join(sorted([*LAYERS, *STRUCTURE]))}){typo}"
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
    if problem["type"] != "extra_forbidden" or len(loc) != 2 or loc[0] not in LAYERS:
        return None
    kind, key = loc[0], str(loc[1])
    if found := key_hint(kind, key):
        return found[0]
    return closest(key, [f for f in LAYERS[kind].model_fields if f != "type"])


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
