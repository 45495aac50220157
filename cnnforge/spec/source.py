"""Safe YAML loading that remembers the line and column of every value."""

from __future__ import annotations

import codecs
import contextlib
import copy
import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.resolver import Resolver

try:  # libyaml's parser, when PyYAML was built with it, is about ten times faster than the pure-Python one
    from yaml.cyaml import CParser as _Parser
except ImportError:
    from yaml.parser import Parser
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        """PyYAML's pure-Python parser, started the way CParser is."""

        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


Path = tuple[str | int, ...]  # ("layers", 3, "stride") addresses one value in the document
Position = tuple[int, int]  # 1-based (line, column)

MAX_BYTES = 4 * 1024 * 1024  # a spec is a few kB; anything near this is not a spec
MAX_DEPTH = 64  # nesting of sequences and mappings, aliases included
MAX_VALUES = 100_000  # keys and values, aliases expanded (10,000 layers or more): refuses "billion laughs" in < 1 s
MAX_DIGITS = 64  # longer numbers are refused before Python parses them

_NULL, _BOOL, _INT, _FLOAT, _STR = (f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str"))
_SEQ, _MAP, _MERGE = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "tag:yaml.org,2002:merge"
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as the end of a line


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
    anchored: dict[Path, Position] = field(default_factory=dict)
    """Values reached through an alias (`*c`): where the anchor (`&c`) wrote them. Their `positions` are the
    alias's, where the value is used."""

    def where(self, path: Path) -> Position | None:
        """Position of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if (found := self.positions.get(tuple(path[:end]))) is not None:
                return found
        return None

    def note(self, path: Path) -> str:
        """' (used through an alias; the anchor is at line L)' for a value reached through an alias, else ''."""
        for end in range(len(path), -1, -1):
            if tuple(path[:end]) in self.positions:
                anchored = self.anchored.get(tuple(path[:end]))
                return "" if anchored is None else f" (used through an alias; the anchor is at line {anchored[0]})"
        return ""


class _Loader(Composer, _Parser, Resolver):
    """A safe YAML parser with YAML 1.2 core-schema scalars, and limits on nesting and size.

    YAML 1.1 (PyYAML's default) reads `1e-4` as a string and `no` as false; the 1.2 core
    schema reads numbers as people write them and keeps words as words. Nothing here
    constructs Python objects: nodes become data in `_Builder`, which refuses unknown tags.
    """

    yaml_implicit_resolvers: ClassVar[dict] = {}  # only the core-schema resolvers added below

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self.depth += 1
        self.nodes += 1
        if self.depth > MAX_DEPTH or self.nodes > MAX_VALUES:  # checked as events arrive, before parsing the rest
            mark = self.peek_event().start_mark
            if self.depth > MAX_DEPTH:
                raise SourceError(f"nesting deeper than {MAX_DEPTH} levels", (mark.line + 1, mark.column + 1))
            raise SourceError(f"more than {MAX_VALUES} keys and values; not a spec", (mark.line + 1, mark.column + 1))
        try:
            if self.check_event(AliasEvent):  # the anchored node itself, marked with where this alias uses it
                mark = self.peek_event().start_mark
                used = copy.copy(super().compose_node(parent, index))
                used.alias_mark = mark
                return used
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# The YAML 1.2.2 core schema's regular expressions (section 10.3.2), exactly: no `_` in numbers, no sign on
# octal, hex or NaN. Editors' YAML servers read plain scalars this way too.
_CORE: dict[str, re.Pattern[str]] = {}  # tag: the text a plain scalar has to be to get that tag
for _tag, _pattern, _first in (
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    (_MERGE, r"^<<$", ["<"]),
):
    _CORE[_tag] = re.compile(_pattern)
    _Loader.add_implicit_resolver(_tag, _CORE[_tag], _first)


def _scalar(node: ScalarNode) -> Any:
    text, tag = node.value, node.tag
    if tag == _STR:
        return text
    if tag not in (_NULL, _BOOL, _INT, _FLOAT):
        raise SourceError(f"tag {tag!r} is not allowed in a spec", _position(node))
    if tag in (_INT, _FLOAT) and len(text) > MAX_DIGITS:
        raise SourceError(f"number {text[:20]}... is too long ({len(text)} characters)", _position(node))
    if not _CORE[tag].match(text):  # only with an explicit tag, such as `!!int abc`
        raise SourceError(f"{text[:40]!r} is not a valid {tag.rsplit(':', 1)[1]}", _position(node))
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return text.lower() == "true"
    if tag == _INT:
        return int(text, 0) if text[:2] in ("0x", "0o") else int(text)
    lowered = text.lower()
    return float(lowered.replace(".", "")) if lowered.endswith(("inf", "nan")) else float(text)


def _key(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise SourceError("a mapping key must be a plain word", _position(node))
    key = _scalar(node)
    return key if isinstance(key, str) else node.value  # `1: x` is a key named "1", reported later as unknown


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _alias(node: Node) -> Position | None:
    """Where `node` is used through an alias, if it is."""
    mark = getattr(node, "alias_mark", None)
    return None if mark is None else (mark.line + 1, mark.column + 1)


def _text_position(text: str, offset: int) -> Position:
    """1-based (line, column) of the character at `offset`, counting line breaks as YAML does."""
    line, start = 1, 0
    for end in _LINE_BREAK.finditer(text, 0, offset):
        line, start = line + 1, end.end()
    return line, offset - start + 1


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording positions as it goes: a value reached through
    an alias, and everything in it, at the alias (`at`), where it is used; where the anchor wrote it, apart."""

    def __init__(self) -> None:
        self.positions: dict[Path, Position] = {}
        self.anchored: dict[Path, Position] = {}
        self.values = 0

    def _step(self, node: Node, depth: int) -> None:
        """Count one more key or value, refusing documents that aliases blow up or loop."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise SourceError(f"document expands to more than {MAX_VALUES} keys and values (aliases?)", _position(node))
        if depth > MAX_DEPTH:
            raise SourceError(f"nesting deeper than {MAX_DEPTH} levels (recursive alias?)", _position(node))

    def _place(self, path: Path, node: Node, at: Position | None) -> None:
        self.positions[path] = at or _position(node)
        if at is not None:
            self.anchored[path] = _position(node)

    def build(self, node: Node, path: Path, depth: int = 0, at: Position | None = None) -> Any:
        self._step(node, depth)
        at = at or _alias(node)
        if path not in self.positions:
            self._place(path, node, at)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, i), depth + 1, at) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode) and node.tag == _MAP:
            return self._mapping(node, path, depth, at)
        raise SourceError(f"tag {node.tag!r} is not allowed in a spec", at or _position(node))

    def _mapping(self, node: MappingNode, path: Path, depth: int, at: Position | None) -> dict:
        result: dict = {}
        for key_node, value_node, merged, pair_at in self._pairs(node, depth, at):
            key = _key(key_node)
            if key in result:
                if merged:
                    continue  # a key written in the mapping itself, or merged earlier, wins
                raise SourceError(f"key {key!r} appears twice in the same mapping", pair_at or _position(key_node))
            self._place((*path, key), key_node, pair_at)
            result[key] = self.build(value_node, (*path, key), depth + 1, pair_at)
        return result

    def _pairs(self, node: MappingNode, depth: int, at: Position | None) -> list[tuple[Node, Node, bool, Any]]:
        """(key, value, merged, at) nodes: the mapping's own pairs, then those its `<<` keys merge in, with the
        alias position they are used at, if any."""
        own: list[tuple[Node, Node, bool, Any]] = []
        merged: list[tuple[Node, Node, bool, Any]] = []
        for key_node, value_node in node.value:
            self._step(key_node, depth + 1)
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, False, at))
                continue
            many = isinstance(value_node, SequenceNode) and value_node.tag == _SEQ
            for source in value_node.value if many else [value_node]:
                if not (isinstance(source, MappingNode) and source.tag == _MAP):
                    raise SourceError("`<<` merges only mappings", at or _alias(source) or _position(source))
                pairs = self._pairs(source, depth + 1, at or _alias(source) or _alias(value_node))
                merged += [(key, value, True, pair_at) for key, value, _, pair_at in pairs]
        return own + merged


def _decode(raw: bytes) -> str:
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start].decode("utf-8")
        position = _text_position(before, len(before))
        raise SourceError(f"not UTF-8 text (byte 0x{raw[error.start]:02x})", position) from None
    if bad := Reader.NON_PRINTABLE.search(text):
        character = f"U+{ord(bad.group()):04X}"
        raise SourceError(f"character {character} is not allowed in YAML", _text_position(text, bad.start()))
    return text


def _mark_position(text: str, error: yaml.YAMLError) -> Position | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is None:
        return None
    # libyaml puts the end of a stream without a final line break at the start of a line after it
    return min((mark.line + 1, mark.column + 1), _text_position(text, len(text)))


def _problem(error: yaml.YAMLError) -> str:
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    return ", ".join(p for p in parts if p) or str(error).splitlines()[0]


_FLOWS = {  # the parser's context -> what it was parsing, its opening and its closing bracket
    "while parsing a flow mapping": ("mapping", "{", "}"),
    "while parsing a flow sequence": ("sequence", "[", "]"),
}


def _unclosed(text: str, error: yaml.YAMLError) -> SourceError | None:
    """A flow mapping or sequence left open, reported where it opens, as editors do; None for other errors.

    The parser notices only at the next token that cannot continue it: on a later line, the next item or key
    (a line indented no deeper than the one the bracket opened on), or the end of the file; on the same line,
    the other kind of closing bracket. Other problems inside a flow (a missing comma) keep the parser's place.
    """
    flow = _FLOWS.get(getattr(error, "context", None) or "")
    opened, found = getattr(error, "context_mark", None), getattr(error, "problem_mark", None)
    if flow is None or opened is None or found is None:
        return None
    kind, opening, closing = flow
    lines = _LINE_BREAK.split(text)
    rest = "\n".join(lines[found.line :])[found.column :].split("\n")  # from where the parser stopped
    if all(not line.strip() or line.strip().startswith("#") for line in rest):
        why = "before the end of the file"
    elif found.line > opened.line and _indent(lines[found.line]) <= _indent(lines[opened.line]):
        why = f"before line {found.line + 1}"
    elif found.line == opened.line and (other := lines[found.line][found.column : found.column + 1]) in ("]", "}"):
        why = f"before the '{other}' at column {found.column + 1}"
    else:
        return None
    message = f"invalid YAML: this flow {kind} '{opening}' is not closed: no '{closing}' {why}"
    return SourceError(message, (opened.line + 1, opened.column + 1))


_PARAMETER = re.compile(r"(?<!['\"])\$\{[^}]*\}")


def _unquoted_parameter(text: str, error: yaml.YAMLError) -> str:
    """A hint when the line the parser stopped on uses a parameter unquoted: in a flow `[...]` or `{...}`, YAML
    reads `{` as the start of a mapping."""
    mark = getattr(error, "problem_mark", None)
    lines = _LINE_BREAK.split(text)
    if mark is None or mark.line >= len(lines) or not (found := _PARAMETER.search(lines[mark.line])):
        return ""
    return f"; a parameter is written quoted, '{found.group()}'"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse(raw: bytes | str) -> Source:
    """Parse one YAML document safely; raise SourceError with a position on any problem.

    >>> parse("input: [1, 32, 32]\\nalpha: 1e-4").data
    {'input': [1, 32, 32], 'alpha': 0.0001}
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")  # one path for files and strings; a lone surrogate is refused
    if len(raw) > MAX_BYTES:
        raise SourceError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB; not a spec")
    text = _decode(raw)
    with _no_cyclic_gc():
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as error:
            raise _unclosed(text, error) or SourceError(
                f"invalid YAML: {_problem(error)}{_unquoted_parameter(text, error)}", _mark_position(text, error)
            ) from None
        finally:
            loader.dispose()
        if node is None:
            return Source(None)
        builder = _Builder()
        data = builder.build(node, ())
    return Source(data, builder.positions, builder.anchored)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector: the nodes of a document are many young objects that live to its end, and
    collecting them over and over made reading grow faster than the document (10,000 layers: 1.5 s, not 0.9)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
