"""Messages that teach: each says what to write instead, and the fix it suggests is one the checker accepts.
Every test states the exact line a user sees, and that no knock-on error follows it."""

from __future__ import annotations

import pytest
from test_errors import HEAD, at

# --- an unclosed flow mapping or sequence is reported where it opens ------------------------------------------


@pytest.mark.parametrize(
    ("text", "opening", "expected"),
    [
        (
            HEAD + "  - {type: conv, shape: [1, 6, 5, 5]\n  - {type: relu}\n  - {type: flatten}\n",
            "{type: conv",
            "this flow mapping '{' is not closed: no '}' before line 5",
        ),
        (
            "name: t\ninput: [1, 32, 32\nlayers:\n  - {type: relu}\n",
            "[1, 32",
            "this flow sequence '[' is not closed: no ']' before line 3",
        ),
        (
            HEAD + "  - type: conv\n    shape: [1, 6, 5, 5\n    stride: 2\n",
            "[1, 6",
            "this flow sequence '[' is not closed: no ']' before line 6",
        ),
        (
            HEAD + "  - {type: relu}\n  - {type: conv,\n     shape: [1, 6, 5, 5]\n  - {type: relu}\n",
            "{type: conv",
            "this flow mapping '{' is not closed: no '}' before line 7",
        ),
        (HEAD + "  - {type: conv, shape: [1, 6, 5, 5]\n", "{type: conv", "no '}' before the end of the file"),
        (HEAD + "  - {type: conv, shape: [1, 6, 5, 5]", "{type: conv", "no '}' before the end of the file"),
        (HEAD + "  - {type: conv, shape: [1, 6, 5, 5]\n\n# end\n", "{type: conv", "no '}' before the end of the file"),
        (
            HEAD + "  - {type: conv, shape: [1, 6, 5, 5}\n",
            "[1, 6",
            "this flow sequence '[' is not closed: no ']' before the '}' at column 36",
        ),
    ],
)
def test_unclosed_flow_is_reported_where_it_opens(check, text: str, opening: str, expected: str) -> None:
    (line,) = check(text)
    assert line.startswith(f"{at(text, opening)}: error: invalid YAML: ")
    assert line.endswith(expected)


def test_unclosed_flow_message_exactly(check) -> None:
    text = HEAD + "  - {type: conv, shape: [1, 6, 5, 5]\n  - {type: relu}\n"
    assert check(text) == [
        "spec.yaml:4:5: error: invalid YAML: this flow mapping '{' is not closed: no '}' before line 5"
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (HEAD + "  - {type: conv,\n     shape: [1, 6, 5, 5] x}\n", "x}"),  # a missing comma, not a missing brace
        (HEAD + "  - {type: relu} {type: tanh}\n", "{type: tanh"),
        ("name: t\nlayers: [{type: relu} {type: tanh}]\n", "{type: tanh"),
    ],
)
def test_other_flow_errors_keep_the_parsers_place(check, text: str, needle: str) -> None:
    (line,) = check(text)
    assert line.startswith(f"{at(text, needle)}: error: invalid YAML: ")
    assert "is not closed" not in line
