"""Property-based tests: no input, however broken, makes reading or checking a spec raise.

Every problem comes back as a Diagnostic, and a diagnostic's line and column, when it has
them, lie inside the file (a column may be one past the end of its line, where YAML reports
what is missing).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from agreement import as_yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnforge import check_file, compile_spec
from cnnforge.diagnostics import Diagnostic
from cnnforge.layers import LAYERS
from cnnforge.spec import read_text

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"
SPECS = {path.name: path.read_text() for path in sorted(ARCHITECTURES.glob("*.yaml"))}
LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as the end of a line

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


def lines_of(raw: bytes | str) -> list[str]:
    """The file's lines as YAML counts them; bytes that are not UTF-8 count as one character each."""
    text = raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    return LINE_BREAK.split(text)


def assert_within(diagnostics: list[Diagnostic], raw: bytes | str) -> None:
    lines = lines_of(raw)
    for diagnostic in diagnostics:
        assert diagnostic.severity in ("error", "warning")
        assert isinstance(diagnostic.message, str) and diagnostic.message
        assert "\n" not in str(diagnostic)
        if diagnostic.line is None:
            assert diagnostic.column is None
            continue
        assert 1 <= diagnostic.line <= len(lines), (str(diagnostic), len(lines))
        assert 1 <= diagnostic.column <= len(lines[diagnostic.line - 1]) + 1, str(diagnostic)


def check_text(raw: bytes | str) -> list[Diagnostic]:
    """What `cnnforge check` reports for a file holding `raw`: reading, validation, then the compiler."""
    loaded = read_text(raw, "fuzz.yaml")
    if loaded.spec is None:
        assert loaded.diagnostics, "an unreadable spec must say why"
        return loaded.diagnostics
    compiled = compile_spec(loaded.spec, "fuzz.yaml", loaded.source)
    for layer in compiled.layers:
        assert layer.params >= 0 and layer.macs >= 0
    return compiled.diagnostics


# Edits a person (or a bad merge) makes to a spec file, as (operation, a, b, text) tuples.
NUMBERS = st.sampled_from(
    ["0", "-1", "1", "2", "3", "7", "4096", "1e-4", "5.0", "1_000", "0x10", "99999999999", ".inf"]
)
INJECTED = st.sampled_from(
    [
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a",
        "*a",
        "!!python/name:os.system ",
        "!",
        "|",
        ">",
        "'",
        '"',
        "#",
        "%",
        "@",
        "`",
        "?",
        "<<: ",
        "\t",
        "\x00",
        "\x07",
        "\n",
        "\r",
        " ",
        "  ",
        "é",
        "\ufeff",
        "\u2028",
        "---\n",
        "...",
    ]
)
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "duplicate", "swap", "number", "inject"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
        st.one_of(NUMBERS, INJECTED),
    ),
    min_size=1,
    max_size=6,
)


def mutate(text: str, edits: list[tuple[str, int, int, str]]) -> str:
    lines = text.split("\n")
    for operation, a, b, new in edits:
        i, j = a % len(lines), b % len(lines)
        if operation == "delete" and len(lines) > 1:
            del lines[i]
        elif operation == "duplicate":
            lines.insert(i, lines[i])
        elif operation == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "number":
            numbers = list(re.finditer(r"\d+", lines[i]))
            if numbers:
                found = numbers[j % len(numbers)]
                lines[i] = lines[i][: found.start()] + new + lines[i][found.end() :]
        elif operation == "inject":
            column = j % (len(lines[i]) + 1)
            lines[i] = lines[i][:column] + new + lines[i][column:]
    return "\n".join(lines)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_give_diagnostics(raw: bytes) -> None:
    assert_within(check_text(raw), raw)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=500))
def test_random_text_gives_diagnostics(text: str) -> None:
    assert_within(check_text(text), text)


@FUZZ
@given(st.sampled_from(sorted(SPECS)), EDITS)
def test_edited_specs_give_diagnostics(name: str, edits: list[tuple[str, int, int, str]]) -> None:
    text = mutate(SPECS[name], edits)
    assert_within(check_text(text), text)
    raw = text.encode()
    assert_within(check_text(raw), raw)


@FUZZ
@given(st.sampled_from(sorted(SPECS)), st.integers(0, 10_000), st.binary(min_size=1, max_size=8))
def test_spliced_bytes_give_diagnostics(name: str, at: int, junk: bytes) -> None:
    data = SPECS[name].encode()
    at %= len(data) + 1
    raw = data[:at] + junk + data[at:]
    assert_within(check_text(raw), raw)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "spec.yaml"


@settings(FUZZ, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SPECS)), edits=EDITS)
def test_check_file_on_edited_specs(spec_path: Path, name: str, edits: list[tuple[str, int, int, str]]) -> None:
    text = mutate(SPECS[name], edits)
    spec_path.write_bytes(text.encode())
    compiled = check_file(spec_path)
    assert all(d.file == str(spec_path) for d in compiled.diagnostics)
    assert_within(compiled.diagnostics, text)
    assert compiled.ok == (compiled.spec is not None and not any(d.severity == "error" for d in compiled.diagnostics))


# torchvision's SqueezeNet 1.1 (and 1.0) strides its first conv past the input's last row and column, and so does
# the spec that is equal to it: the checker says so, as it would of any network.
KNOWN_WARNINGS = {
    "squeezenet1_1.yaml": [
        "warning: layer 'features.conv1' (conv): stride [2, 2] leaves the last 1 row and 1 column of the input "
        "[3, 224, 224] unread; torch drops them silently"
    ]
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_shipped_specs_are_clean(name: str) -> None:
    diagnostics = check_file(ARCHITECTURES / name).diagnostics  # from its file: a spec may extend another
    found = [f"{d.severity}: {str(d).split(': ' + d.severity + ': ', 1)[1]}" for d in diagnostics]
    assert found == KNOWN_WARNINGS.get(name, [])


# Specs built from the registry: every layer kind, with its own keys set to plausible and implausible values.
SMALL = st.integers(-2, 40)
VALUES = st.one_of(
    SMALL,
    st.lists(SMALL, min_size=1, max_size=5),
    st.sampled_from(
        [True, False, None, 0.5, 1.0, -0.5, 1e-4, 2.5, "same", "valid", "zeros", "reflect", "circular", "x"]
    ),
)


@st.composite
def spec_data(draw: st.DrawFn) -> dict:
    layers = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(sorted(LAYERS)))
        keys = [k for k in LAYERS[kind].model_fields if k not in ("type", "name")]
        layer = {"type": kind}
        for key in draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []:
            layer[key] = draw(VALUES)
        if draw(st.booleans()):
            layer["name"] = draw(st.sampled_from(["a", "b", "conv0", "relu1", "forward", "x y"]))
        layers.append(layer)
    channels = draw(st.integers(1, 8))
    size = draw(st.integers(1, 40))
    return {"name": "fuzz", "input": [channels, size, draw(st.sampled_from([size, size + 1]))], "layers": layers}


@settings(FUZZ, max_examples=300)
@given(spec_data())
def test_registry_built_specs_give_diagnostics(data: dict) -> None:
    text = as_yaml(data)
    assert_within(check_text(text), text)
