"""YAML loading: core-schema scalars, source positions, and refusing unsafe or hostile documents quickly."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnforge.spec import SourceError, parse, read_text
from cnnforge.spec.source import MAX_BYTES, MAX_DEPTH, MAX_DIGITS, MAX_VALUES

ROOT = Path(__file__).resolve().parent.parent
# Seconds: hostile input is refused well within this, even on a busy 2-core machine. The largest documents
# refused are read up to MAX_VALUES (100,000) values first, about 1 s on such a machine when idle.
FAST = 4.0


def at(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of `needle` in `text`."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def refusal(raw: bytes | str) -> SourceError:
    """The error parsing `raw` raises, checking it comes quickly."""
    start = time.perf_counter()
    with pytest.raises(SourceError) as caught:
        parse(raw)
    assert time.perf_counter() - start < FAST
    return caught.value


# --- scalars: YAML 1.2 core schema, as people write numbers ---------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e-4", 0.0001),  # YAML 1.1 (PyYAML's default) reads this as a string
        ("1E3", 1000.0),
        ("2.5", 2.5),
        (".5", 0.5),
        ("-0.75", -0.75),
        ("5.0", 5.0),
        ("1e3", 1000.0),  # a float: the core schema's integers have no exponent
        ("1.", 1.0),
        ("+.5", 0.5),
        ("1_000", "1_000"),  # YAML 1.1 read this as 1000; the 1.2 core schema has no `_` in numbers
        ("1_0.5", "1_0.5"),
        ("0x1_F", "0x1_F"),
        ("0o1_7", "0o1_7"),
        ("-0o7", "-0o7"),  # octal and hex take no sign
        ("+0x1F", "+0x1F"),
        ("0o8", "0o8"),
        ("0xG", "0xG"),
        ("1e", "1e"),
        ("e3", "e3"),
        ("1e3.5", "1e3.5"),
        ("-.nan", "-.nan"),  # NaN takes no sign either
        ("TRUE", True),
        ("tRUE", "tRUE"),
        ("Null", None),
        ("NULL", None),
        ("nULL", "nULL"),
        ("3", 3),
        ("-3", -3),
        ("+3", 3),
        ("012", 12),  # decimal in YAML 1.2, not octal
        ("0o17", 15),
        ("0x1F", 31),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        ("yes", "yes"),  # YAML 1.1 booleans stay words
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("0b101", "0b101"),
        ("3:30", "3:30"),  # no base-60 numbers
        ("2001-01-01", "2001-01-01"),  # no timestamps
        ("'3'", "3"),
        ('"5.0"', "5.0"),
        ("!!str 3", "3"),
        ("!!float 1", 1.0),
        ("!!int '7'", 7),
    ],
)
def test_core_schema_scalars(written: str, value: object) -> None:
    parsed = parse(f"x: {written}\n").data["x"]
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("written", "check"),
    [
        (".inf", math.isinf),
        ("-.Inf", math.isinf),
        ("+.INF", math.isinf),
        (".nan", math.isnan),
        (".NaN", math.isnan),
        (".NAN", math.isnan),
    ],
)
def test_special_floats_parse(written: str, check) -> None:
    assert check(parse(f"x: {written}").data["x"])


def test_floats_too_large_become_inf() -> None:
    assert parse("x: 1e999").data["x"] == math.inf


@pytest.mark.parametrize("written", ["!!bool yes", "!!int abc", "!!float 1e", "!!null x", "!!int 0x"])
def test_explicit_core_tags_must_fit_their_text(written: str) -> None:
    error = refusal(f"a: 1\nx: {written}\n")
    assert "is not a valid" in error.message
    assert error.position == (2, 4)


def test_number_length_limit() -> None:
    assert parse("x: " + "9" * MAX_DIGITS).data["x"] == int("9" * MAX_DIGITS)
    error = refusal("name: t\nx: " + "9" * 5000 + "\n")
    assert error.position == (2, 4)
    assert "too long (5000 characters)" in error.message
    error = refusal("x: 1." + "5" * 5000 + "e10")
    assert "too long" in error.message


def test_keys_are_strings() -> None:
    assert parse("1: a\ntrue: b\n~: c\n1.5: d").data == {"1": "a", "true": "b", "~": "c", "1.5": "d"}


def test_string_and_bytes_input_agree() -> None:
    text = (ROOT / "architectures" / "alexnet2012.yaml").read_text()
    from_text, from_bytes = parse(text), parse(text.encode())
    assert from_text == from_bytes
    assert from_text.data["layers"][2] == {
        "name": "norm1",
        "type": "lrn",
        "size": 5,
        "alpha": 1e-4,
        "beta": 0.75,
        "k": 2,
    }


def test_byte_order_mark_is_skipped() -> None:
    source = parse(b"\xef\xbb\xbfname: t\ninput: [1, 2, 3]\n")
    assert source.data == {"name": "t", "input": [1, 2, 3]}
    assert source.positions[("name",)] == (1, 1)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n"])
def test_empty_documents_have_no_data(text: str) -> None:
    assert parse(text).data is None


def test_one_explicit_document_is_fine() -> None:
    assert parse("---\nname: t\n...\n").data == {"name": "t"}


# --- positions -------------------------------------------------------------------------------------------


BLOCK = """\
name: t
input: [1, 32, 32]
layers:
  - type: conv
    shape: [1, 6, 5, 5]
    stride: 2
  - {type: relu, name: r}
"""


def test_positions_of_keys_values_and_items() -> None:
    source = parse(BLOCK)
    assert source.positions[()] == (1, 1)
    assert source.positions[("name",)] == (1, 1)
    assert source.positions[("input",)] == at(BLOCK, "input")
    assert source.positions[("input", 2)] == at(BLOCK, "32", 1)
    assert source.positions[("layers",)] == at(BLOCK, "layers")
    assert source.positions[("layers", 0)] == at(BLOCK, "type: conv")  # a block mapping starts at its first key
    assert source.positions[("layers", 0, "stride")] == at(BLOCK, "stride")
    assert source.positions[("layers", 0, "shape", 1)] == at(BLOCK, "6")
    assert source.positions[("layers", 1)] == at(BLOCK, "{")  # a flow mapping starts at its brace
    assert source.positions[("layers", 1, "name")] == at(BLOCK, "name: r")


def test_where_falls_back_to_the_closest_ancestor() -> None:
    source = parse(BLOCK)
    assert source.where(("layers", 0, "padding")) == at(BLOCK, "type: conv")
    assert source.where(("layers", 7, "stride")) == at(BLOCK, "layers")
    assert source.where(("nothing",)) == (1, 1)


def test_columns_count_characters_not_bytes() -> None:
    text = "name: ééé\nnote: 'ü'\nx: [1, 2]\n"
    source = parse(text.encode())
    assert source.positions[("x", 1)] == (3, 8)
    assert source.positions[("note",)] == (2, 1)


def test_crlf_line_breaks() -> None:
    source = parse(b"name: t\r\ninput: [1, 2, 3]\r\nlayers: []\r\n")
    assert source.positions[("layers",)] == (3, 1)
    assert source.positions[("input", 1)] == (2, 12)


# --- merge keys, aliases, duplicates ----------------------------------------------------------------------


MERGED = """\
base: &base {type: conv, shape: [1, 6, 5, 5], stride: 2}
extra: &extra {stride: 9, padding: 1}
layers:
  - <<: *base
    stride: 3
  - <<: [*base, *extra]
    name: c
"""


def test_merge_keys_supply_keys_and_written_keys_win() -> None:
    source = parse(MERGED)
    first, second = source.data["layers"]
    assert first == {"type": "conv", "shape": [1, 6, 5, 5], "stride": 3}
    assert second == {"type": "conv", "shape": [1, 6, 5, 5], "stride": 2, "padding": 1, "name": "c"}  # earlier wins
    assert source.positions[("layers", 0, "stride")] == at(MERGED, "stride: 3")  # the key written here
    assert source.positions[("layers", 0, "type")] == at(MERGED, "*base")  # where it is merged in, through *base
    assert source.positions[("layers", 1, "padding")] == at(MERGED, "*extra")
    assert source.anchored[("layers", 1, "padding")] == at(MERGED, "padding")  # and where it is written
    inline = parse("a:\n  <<: {b: 1}\n  c: 2\n")
    assert inline.positions[("a", "b")] == (2, 8)  # merged without an alias: where it is written


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a:\n  <<: 3\n", "3"),
        ("a:\n  <<: [{b: 1}, [2]]\n", "[2]"),
        ("x: &x [1]\na:\n  <<: *x\n", "1]"),  # a list of things to merge, and 1 is not a mapping
    ],
)
def test_merging_something_other_than_a_mapping(text: str, needle: str) -> None:
    error = refusal(text)
    assert error.message == "`<<` merges only mappings"
    assert error.position == at(text, needle)


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse("a:\n  '<<': {b: 1}\n").data == {"a": {"<<": {"b": 1}}}


def test_aliases_repeat_values() -> None:
    assert parse("k: &k [3, 3]\nstride: *k\n").data == {"k": [3, 3], "stride": [3, 3]}


ALIASED = (
    "name: t\ninput: [3, 32, 32]\nlayers:\n  - &c {type: conv, shape: [3, 6, 5, 5]}\n  - *c\n  - {<<: *c, stride: 2}\n"
)


def test_values_reached_through_an_alias_are_placed_where_it_is_used() -> None:
    source = parse(ALIASED)
    use, merge = at(ALIASED, "*c"), at(ALIASED, "*c", 1)
    assert source.where(("layers", 1)) == source.where(("layers", 1, "shape", 0)) == use
    assert source.where(("layers", 2, "shape")) == source.where(("layers", 2, "type")) == merge
    assert source.where(("layers", 2, "stride")) == at(ALIASED, "stride")  # written there, not merged
    assert source.where(("layers", 0, "shape", 0)) == at(ALIASED, "3, 6")  # the anchor's own values stay put
    anchor = at(ALIASED, "shape")[0]
    assert source.note(("layers", 1, "shape")) == f" (used through an alias; the anchor is at line {anchor})"
    assert source.note(("layers", 2, "stride")) == source.note(("layers", 0, "shape")) == ""


def test_errors_in_aliased_values_are_reported_where_they_are_used() -> None:
    from cnnforge.compiler import compile_spec

    loaded = read_text(ALIASED, "a.yaml")
    lines = [str(d) for d in compile_spec(loaded.spec, "a.yaml", loaded.source).diagnostics]
    use = at(ALIASED, "*c")
    assert lines[0].startswith(f"a.yaml:{use[0]}:{use[1]}: error: layer 1 'conv1' (conv): shape says C_i=3 but")
    assert lines[0].endswith(f"(used through an alias; the anchor is at line {at(ALIASED, '&c')[0]})")
    text = ALIASED.replace("3, 6, 5, 5]}", "3, 6, 5, 5], strides: 1}")
    found = [str(d) for d in read_text(text, "a.yaml").diagnostics]
    assert [line.split(": error:")[0] for line in found] == [
        f"a.yaml:{r}:{c}" for r, c in (at(text, "strides"), at(text, "*c"), at(text, "*c", 1))
    ]


def test_undefined_alias() -> None:
    text = "a: 1\nb: *nowhere\n"
    error = refusal(text)
    assert error.message.startswith("invalid YAML:") and "nowhere" in error.message
    assert error.position == at(text, "*nowhere")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: a\ninput: [1, 2, 3]\nname: b\n", "name: b"),
        ("layers:\n  - {type: relu, type: tanh}\n", "type: tanh"),
        ("layers:\n  - type: relu\n    name: a\n    name: b\n", "name: b"),
        ("a: {1: x, '1': y}\n", "'1'"),
    ],
)
def test_duplicate_keys_are_refused(text: str, needle: str) -> None:
    error = refusal(text)
    assert "appears twice in the same mapping" in error.message
    assert error.position == at(text, needle)


def test_complex_keys_are_refused() -> None:
    text = "name: t\n? [a, b]\n: 1\n"
    error = refusal(text)
    assert error.message == "a mapping key must be a plain word"
    assert error.position == at(text, "[a")


# --- safety: only plain data, and nothing hostile gets through ------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!!python/object:os.system ls",
        "!!python/object/apply:os.system ['echo unsafe']",
        "!!python/object/new:os.system ['echo unsafe']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/tuple [1, 2]",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!timestamp 2001-01-01",
        "!custom thing",
        "!<tag:example.com,2000:x> 1",
    ],
)
def test_tags_outside_the_core_schema_are_refused(value: str) -> None:
    text = f"name: t\nlayers:\n  - type: relu\n    x: {value}\n"
    error = refusal(text)
    assert error.message.startswith("tag ") and error.message.endswith("is not allowed in a spec")
    assert error.position == at(text, value)


def test_explicit_standard_map_tag_is_plain_data() -> None:
    assert parse("x: !!map {a: 1}\n").data == {"x": {"a": 1}}


def test_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    refusal(text)
    assert not marker.exists()


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_billion_laughs_is_refused() -> None:
    error = refusal(BILLION_LAUGHS)
    assert f"more than {MAX_VALUES} keys and values" in error.message
    assert error.position is not None


def test_merge_key_laughs_are_refused() -> None:
    keys = ", ".join(f"k{i}: {i}" for i in range(50))
    text = f"a: &a {{{keys}}}\n" + "".join(
        f"{b}: &{b} {{<<: [{', '.join([f'*{a}'] * 30)}]}}\n" for a, b in zip("abcde", "bcdef", strict=True)
    )
    assert f"more than {MAX_VALUES} keys and values" in refusal(text).message


@pytest.mark.parametrize(
    "text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a\n  b:\n    c: *a\n", "a: &a {<<: *a}\n", "a: &a [{<<: *a}]\n"]
)
def test_recursive_aliases_are_refused(text: str) -> None:
    error = refusal(text)
    assert f"nesting deeper than {MAX_DEPTH} levels" in error.message
    assert error.position is not None


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        "{a: " * 100_000,
        "x: " + "[" * 100_000,
        "- " * 100_000,
        "".join("  " * i + "a:\n" for i in range(200)),
        "".join("  " * i + "-\n" for i in range(200)),
    ],
)
def test_deep_nesting_is_refused(text: str) -> None:
    error = refusal(text)
    assert "nesting" in error.message
    assert error.position is not None and error.position[0] >= 1


def test_nesting_up_to_the_limit_is_fine() -> None:
    depth = MAX_DEPTH - 1
    assert parse("[" * depth + "]" * depth).data is not None


def test_files_over_the_size_limit_are_refused() -> None:
    error = refusal(b"# " + b"x" * MAX_BYTES + b"\n")
    assert "larger than" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "x: [" + "1, " * 500_000 + "]",
        "".join(f"k{i}: {i}\n" for i in range(100_000)),
        "name: t\ninput: [1, 2, 3]\nlayers:\n" + "  - {type: relu}\n" * 100_000,
        "a: &a 1\nb: [" + "*a, " * 400_000 + "]",
    ],
)
def test_documents_with_too_many_values_are_refused_quickly(text: str) -> None:
    error = refusal(text)
    assert f"more than {MAX_VALUES} keys and values" in error.message
    assert error.position is not None


@pytest.mark.parametrize("length", [1_000_000, 3_000_000])
def test_long_scalars_are_read_quickly(length: int) -> None:
    start = time.perf_counter()
    assert len(parse("x: '" + "a" * length + "'").data["x"]) == length
    assert time.perf_counter() - start < FAST


@pytest.mark.parametrize(
    ("raw", "position", "byte"),
    [
        (b"name: t\ninput: \xff\n", (2, 8), "0xff"),
        (b"\xc3", (1, 1), "0xc3"),  # cut in the middle of a character
        ("name: 'ééé'\nnote: ü".encode() + b"\xfe", (2, 8), "0xfe"),  # columns in characters
        (b"\xef\xbb\xbfab\x80", (1, 3), "0x80"),  # after a byte-order mark
        (b"a: 1\r\nb: 2\r\nc: x\xc0\xaf", (3, 5), "0xc0"),
        ("name: t\n".encode("utf-16"), (1, 1), "0xff"),
    ],
)
def test_non_utf8_bytes_are_refused_with_their_position(raw: bytes, position: tuple[int, int], byte: str) -> None:
    error = refusal(raw)
    assert error.message == f"not UTF-8 text (byte {byte})"
    assert error.position == position


@pytest.mark.parametrize(
    "character", ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x9b", "\ufffe"]
)
def test_control_characters_are_refused_with_their_position(character: str) -> None:
    text = f"name: t\ninput: [1, 2, 3]\nlayers: [{{type: relu, name: ré{character}lu}}]\n"
    for raw in (text, text.encode()):
        error = refusal(raw)
        assert error.message == f"character U+{ord(character):04X} is not allowed in YAML"
        assert error.position == at(text, character)


def test_lone_surrogates_in_strings_are_refused() -> None:
    error = refusal("name: t\nx: a\ud800b\n")
    assert error.message.startswith("not UTF-8 text")
    assert error.position == (2, 5)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: t\nlayers:\n\t- {type: relu}\n", "\t"),  # a tab cannot indent
        ("name: [t\ninput: [1, 2, 3]\n", "[t"),  # not closed: reported where it opens
        ("name: t\n  input: [1, 2, 3]\n", ":"),
        ("name: t\nlayers:\n  - {type: relu\n  - {type: tanh}\n", "{type: relu"),
        ("name: 'unterminated\n", None),
        ("name: t\n---\nname: u\n", "---"),  # one document per file
        ("name: t\n- a\n", "- a"),
        ("a: b: c\n", ": c"),
        ("%YAML 1.1\n%YAML 1.1\n---\na: 1\n", "%YAML 1.1\n---"),
    ],
)
def test_yaml_syntax_errors_have_positions(text: str, needle: str | None) -> None:
    error = refusal(text)
    assert error.message.startswith("invalid YAML: ")
    assert error.position is not None
    line, column = error.position
    lines = text.split("\n")
    assert 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]) + 1
    if needle is not None:
        assert line == at(text, needle, text.count(needle) - 1)[0]


def test_second_document_is_named() -> None:
    error = refusal("name: t\n---\nname: u\n")
    assert "single document" in error.message and error.position == (2, 1)


def test_error_at_end_of_file_without_final_line_break_stays_inside_the_file() -> None:
    error = refusal("name: t\nlayers: 'relu")
    assert error.position == (2, 14)
    error = refusal("name: t\nlayers: [{type: relu}")  # not closed: reported where it opens
    assert error.position == (2, 9)


def test_read_text_turns_errors_into_one_positioned_diagnostic() -> None:
    loaded = read_text(BILLION_LAUGHS, "bomb.yaml")
    assert loaded.spec is None and loaded.source is None
    (diagnostic,) = loaded.diagnostics
    assert diagnostic.severity == "error" and diagnostic.line is not None
    assert str(diagnostic).startswith(f"bomb.yaml:{diagnostic.line}:{diagnostic.column}: error: document expands")


# --- without libyaml: PyYAML's pure-Python parser gives the same data and positions -------------------------

SAME_EITHER_WAY = {
    "alexnet": (ROOT / "architectures" / "alexnet.yaml").read_text(),
    "block": BLOCK,
    "merged": MERGED,
    "scalars": "a: 1e-4\nb: 1_000\nc: yes\nd: 0x1F\ne: ~\nf: 'é'\n",
    "bomb": BILLION_LAUGHS,
    "recursive": "a: &a [*a]\n",
    "duplicate": "a: 1\na: 2\n",
    "tag": "x: !!python/name:os.system\n",
    "control": "a: b\x07\n",
    "syntax": "name: [t\ninput: [1, 2, 3]\n",
    "unclosed at the end": "layers:\n  - {type: conv, shape: [1, 6, 5, 5]",
    "unclosed before a bracket": "layers:\n  - {type: conv, shape: [1, 6, 5, 5}\n",
    "missing comma": "layers:\n  - {type: conv,\n     shape: [1, 6, 5, 5] x}\n",
    "second document": "a: 1\n---\nb: 2\n",
    "deep": "{a: " * 200,
}

OUTCOMES = """
import json, sys
from cnnforge.spec import SourceError, parse
def outcome(text):
    try:
        source = parse(text)
    except SourceError as error:
        return ["error", error.message.split(":")[0], error.position]
    return ["ok", source.data, {json.dumps(path): position for path, position in source.positions.items()}]
print(json.dumps({name: outcome(text) for name, text in json.load(sys.stdin).items()}))
"""


def outcomes(*, libyaml: bool) -> dict:
    block = "" if libyaml else "import sys; sys.modules['yaml._yaml'] = None\n"  # as if PyYAML had no libyaml
    script = (
        block
        + OUTCOMES
        + ("" if libyaml else "from cnnforge.spec import source; assert 'CParser' not in repr(source._Parser)\n")
    )
    run = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(SAME_EITHER_WAY), capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


def test_pure_python_parser_agrees_with_libyaml() -> None:
    with_libyaml, without = outcomes(libyaml=True), outcomes(libyaml=False)
    for name in SAME_EITHER_WAY:
        assert with_libyaml[name] == without[name], name
    assert with_libyaml["alexnet"][0] == "ok"
    expanded = f"document expands to more than {MAX_VALUES} keys and values (aliases?)"
    assert with_libyaml["bomb"][:2] == ["error", expanded]
