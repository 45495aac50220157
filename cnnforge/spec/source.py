"""Safe YAML loading that remembers the line and column of every value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]  # ("layers", 3, "stride") addresses one value in the document
Position = tuple[int, int]  # 1-based (line, column)

MAX_BYTES = 4 * 1024 * 1024  # a spec is a few kB; anything near this is not a spec
MAX_DEPTH = 64  # nesting of sequences and mappings, aliases included
MAX_VALUES = 200_000  # values after expanding aliases: stops "billion laughs" documents
MAX_DIGITS = 64  # longer numbers are refused before Python parses them

_NULL, _BOOL, _INT, _FLOAT, _STR = (f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str"))
_SEQ, _MAP, _MERGE = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "tag:yaml.org,2002:merge"


class SourceError(Exception):
    """A document that cannot be read as YAML; carries where the problem is."""

    def __init__(self, message: str, position: Position | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass
class Source:
    """A parsed YAML document: plain Python data plus the position of every value."""

    data: Any
    positions: dict[Path, Position] = field(default_factory=dict)

    def where(self, path: Path) -> Position | None:
        """Position of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if (found := self.positions.get(tuple(path[:end]))) is not None:
                return found
        return None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe parser with YAML 1.2 core-schema scalars and a nesting limit.

    YAML 1.1 (PyYAML's default) reads `1e-4` as a string and `no` as false; the 1.2 core
    schema reads numbers as people write them and keeps words as words.
    """

    yaml_implicit_resolvers: dict = {}
    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", (mark.line + 1, mark.column + 1))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


for _tag, _pattern, _first in (
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_INT, r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$", list("-+0123456789")),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    (_MERGE, r"^<<$", ["<"]),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _scalar(node: ScalarNode) -> Any:
    text = node.value
    if node.tag == _STR:
        return text
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return text.lower() == "true"
    if len(text) > MAX_DIGITS:
        raise SourceError(f"number {text[:20]}... is too long ({len(text)} characters)", _position(node))
    digits = text.replace("_", "")
    if node.tag == _INT:
        try:
            return int(digits, 0) if digits[:2] in ("0x", "0o") else int(digits)
        except ValueError:
            raise SourceError(f"{text!r} is not an integer", _position(node)) from None
    if node.tag == _FLOAT:
        lowered = digits.lower()
        if lowered.endswith(("inf", "nan")):
            return float(lowered.replace(".", ""))
        try:
            return float(digits)
        except ValueError:
            raise SourceError(f"{text!r} is not a number", _position(node)) from None
    raise SourceError(f"tag {node.tag!r} is not allowed in a spec", _position(node))


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording positions as it goes."""

    def __init__(self) -> None:
        self.positions: dict[Path, Position] = {}
        self.values = 0

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise SourceError(f"document expands to more than {MAX_VALUES} values (aliases?)", _position(node))
        if depth > MAX_DEPTH:
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)", _position(node))
        self.positions.setdefault(path, _position(node))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self._mapping(node, path, depth)
        raise SourceError(f"tag {node.tag!r} is not allowed in a spec", _position(node))

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict:
        result: dict = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, ScalarNode):
                raise SourceError("a mapping key must be a plain word", _position(key_node))
            key = _scalar(key_node)
            if not isinstance(key, str):
                key = key_node.value  # `1: x` is a key named "1", reported later as unknown
            if key in result:
                raise SourceError(f"key {key!r} appears twice in the same mapping", _position(key_node))
            self.positions[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for source in merged:
            if not isinstance(source, MappingNode):
                raise SourceError("`<<` merges only mappings", _position(source))
            for key, value in self._mapping(source, path, depth + 1).items():
                result.setdefault(key, value)
        return result


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise SourceError(f"not UTF-8 text (byte 0x{raw[error.start]:02x})", (line, column)) from None


def _mark_position(text: str, error: yaml.YAMLError) -> Position | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        return mark.line + 1, mark.column + 1
    offset = getattr(error, "position", None)  # ReaderError: a character offset
    if offset is None:
        return None
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse(raw: bytes | str) -> Source:
    """Parse one YAML document safely; raise SourceError with a position on any problem.

    >>> parse("input: [1, 32, 32]\\nalpha: 1e-4").data
    {'input': [1, 32, 32], 'alpha': 0.0001}
    """
    if len(raw) > MAX_BYTES:
        raise SourceError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB; not a spec")
    text = _decode(raw) if isinstance(raw, bytes) else raw
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SourceError(f"invalid YAML: {problem}", _mark_position(text, error)) from None
    except RecursionError:
        raise SourceError(f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if node is None:
        return Source(None)
    builder = _Builder()
    data = builder.build(node, ())
    return Source(data, builder.positions)
