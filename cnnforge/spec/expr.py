"""Expressions inside `${...}`: small arithmetic over parameters, parsed here (never `eval`).

    expr    := or ('if' or 'else' expr)?
    or      := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)?
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/' | '//' | '%') unary)*
    unary   := '-' unary | atom
    atom    := INTEGER | DECIMAL | 'true' | 'false' | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'

As in Python, `a if condition else b` evaluates only the branch it takes. `${name}` alone stands for the
parameter's value of any kind (a number, true/false, a word); every other
expression works on numbers (and true/false, from comparisons) and gives one. Integers stay integers, as in
Python: `/` (and a decimal such as 0.1) gives a decimal, which a field taking an integer refuses; `//` floors;
`int()` truncates a decimal to an integer and `round()` rounds it, halves to even; `divisible(v, 8)` rounds
channels scaled by a width multiplier as MobileNet does (`${divisible(c * width_mult, 8)}`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

MAX_MAGNITUDE = 2**62  # results past this are refused: no network needs them, and they grow without bound
MAX_NESTING = 32  # parentheses and calls inside each other
Number = int | float


def divisible(value: Number, divisor: Number) -> int:
    """`value` rounded to a multiple of `divisor`, at least `divisor` and never below 90% of `value`: the channel
    rounding of MobileNet, MnasNet and EfficientNet (torchvision's _make_divisible and _round_to_multiple_of).

    >>> divisible(32 * 0.75, 8), divisible(11, 8), divisible(1, 8)
    (24, 16, 8)
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * value else rounded)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "min": min,
    "max": max,
    "int": int,
    "round": round,
    "divisible": divisible,
}
ARITY = {"min": (2, None), "max": (2, None), "int": (1, 1), "round": (1, 1), "divisible": (2, 2)}  # least, most
EXPRESSION = re.compile(r"^\$\{(.*)\}$", re.DOTALL)
_WORDS = frozenset({"and", "or", "not", "true", "false", "if", "else"})
# a token: a number (an integer or a decimal), a name, or an operator; only a number starts with a digit
_TOKEN = re.compile(
    r"\s*(?:(\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|==|!=|<=|>=|[-+*/%()<>,]))"
)


class ExprError(Exception):
    """An expression that cannot be evaluated; `offset` is where in the text between the braces."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message, self.offset = message, offset


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and EXPRESSION.match(value) is not None


def names(text: str) -> list[str]:
    """The parameter names an expression reads (function names aside)."""
    found = []
    for match in _TOKEN.finditer(text):
        word = match[2]
        if word and word not in FUNCTIONS and word not in _WORDS:
            found.append(word)
    return found


def evaluate(value: str, scope: Mapping[str, Any], describe: Callable[[str], str] | None = None) -> Any:
    """The value of `${...}` in `scope`; `describe(name)` says which names there are, for an unknown one.

    >>> evaluate("${c0 + i * growth}", {"c0": 64, "i": 2, "growth": 32})
    128
    >>> evaluate("${max(1, c // 4)}", {"c": 2})
    1
    >>> evaluate("${0.1 * i / 17}", {"i": 17})
    0.1
    """
    match = EXPRESSION.match(value)
    assert match is not None
    parser = _parsed(match[1])
    if isinstance(parser, ExprError):
        raise ExprError(parser.message, parser.offset)
    parser.scope, parser.describe = scope, describe  # read by the thunks as they run, one evaluation at a time
    try:
        return parser.root()
    finally:
        parser.scope, parser.describe = {}, None


@lru_cache(maxsize=4096)
def _parsed(text: str) -> _Parser | ExprError:
    """The text between the braces parsed once, however often a block's or a repetition's values use it."""
    try:
        return _Parser(text)
    except ExprError as error:
        return error


Thunk = Callable[[], Any]  # a parsed expression: evaluating it may raise ExprError


class _Parser:
    """Parses the text between the braces into a thunk, `root`, which evaluates it in `scope`: a conditional
    evaluates only the branch it takes, as Python does (`${c // n if n > 0 else c}`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.scope: Mapping[str, Any] = {}
        self.describe: Callable[[str], str] | None = None
        self.tokens: list[tuple[str, int]] = []  # (token, offset)
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                if not text[position:].strip():
                    break
                offset = len(text) - len(text[position:].lstrip())
                raise ExprError(f"unexpected character {text[offset]!r}", offset)
            if match.lastindex is None:
                break
            self.tokens.append((match[match.lastindex], match.start(match.lastindex)))
            position = match.end()
        self.at = 0
        self.depth = 0
        self.root = self._parse()

    def _parse(self) -> Thunk:
        if not self.tokens:
            raise ExprError("empty expression: write a parameter's name or an arithmetic expression", 0)
        token = self.tokens[0][0]
        if len(self.tokens) == 1 and self._name(token) and token not in _WORDS:  # `${name}`: the value as it is
            return lambda: self._lookup(*self.tokens[0])
        result = self._conditional()
        if self.at < len(self.tokens):
            token, offset = self.tokens[self.at]
            raise ExprError(f"unexpected {token!r}", offset)
        return result

    # -- the grammar, one method per rule; each returns a thunk ---------------------------------------------

    def _conditional(self) -> Thunk:
        value = self._or()
        if not self._take("if"):
            return value
        with self._nested(self.tokens[self.at - 1][1]):
            condition = self._or()
            self._expect("else", "after the condition of 'if'")
            other = self._conditional()
        return lambda: value() if self._truth(condition()) else other()

    def _or(self) -> Thunk:
        left = self._and()
        while self._take("or"):
            right = self._and()
            left = (lambda a, b: lambda: self._truth(a()) or self._truth(b()))(left, right)
        return left

    def _and(self) -> Thunk:
        left = self._not()
        while self._take("and"):
            right = self._not()
            left = (lambda a, b: lambda: self._truth(a()) and self._truth(b()))(left, right)
        return left

    def _not(self) -> Thunk:
        if self._take("not"):
            with self._nested(self.tokens[self.at - 1][1]):
                operand = self._not()
            return lambda: not self._truth(operand())
        return self._compare()

    def _compare(self) -> Thunk:
        left = self._sum()
        for operator in ("==", "!=", "<=", ">=", "<", ">"):
            if self._take(operator):
                offset = self.tokens[self.at - 1][1]
                right = self._sum()
                return lambda: self._comparison(operator, left(), right(), offset)
        return left

    def _comparison(self, operator: str, left: Any, right: Any, offset: int) -> bool:
        if operator in ("==", "!="):
            return (left == right) == (operator == "==")
        a, b = self._number(left, offset), self._number(right, offset)
        return {"<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[operator]

    def _sum(self) -> Thunk:
        left = self._product()
        while self._peek() in ("+", "-"):
            operator, offset = self.tokens[self.at]
            self.at += 1
            left = self._arithmetic(operator, offset, left, self._product())
        return left

    def _product(self) -> Thunk:
        left = self._unary()
        while self._peek() in ("*", "/", "//", "%"):
            operator, offset = self.tokens[self.at]
            self.at += 1
            left = self._arithmetic(operator, offset, left, self._unary())
        return left

    def _arithmetic(self, operator: str, offset: int, left: Thunk, right: Thunk) -> Thunk:
        def value() -> Number:
            a, b = self._number(left(), offset), self._number(right(), offset)
            if operator in ("/", "//", "%") and b == 0:
                raise ExprError(f"division by zero ({a} {operator} 0)", offset)
            return self._bound(_OPERATORS[operator](a, b), offset)

        return value

    def _unary(self) -> Thunk:
        if self._peek() == "-":
            offset = self.tokens[self.at][1]
            self.at += 1
            with self._nested(offset):
                operand = self._unary()
            return lambda: -self._number(operand(), offset)
        return self._atom()

    def _atom(self) -> Thunk:
        if self.at >= len(self.tokens):
            raise ExprError("the expression ends too early: a number, a name or '(' is missing", len(self.text))
        token, offset = self.tokens[self.at]
        self.at += 1
        if token[0].isdigit():
            number = self._bound(int(token) if token.isdigit() else float(token), offset)
            return lambda: number
        if token in ("true", "false"):
            return lambda: token == "true"
        if token == "(":
            with self._nested(offset):
                value = self._conditional()
            self._expect(")", "to close the '(' at character " + str(offset + 1))
            return value
        if self._name(token) and token not in _WORDS:
            if self._peek() == "(":
                return self._call(token, offset)
            return lambda: self._lookup(token, offset)
        raise ExprError(f"unexpected {token!r}: expected a number, a name or '('", offset)

    def _call(self, function: str, offset: int) -> Thunk:
        if function not in FUNCTIONS:
            raise ExprError(f"unknown function '{function}' (known: {', '.join(FUNCTIONS)})", offset)
        self.at += 1  # the '('
        arguments = []
        with self._nested(offset):
            arguments.append(self._conditional())
            while self._take(","):
                arguments.append(self._conditional())
        self._expect(")", f"to close {function}(")
        least, most = ARITY[function]
        if len(arguments) < least or (most is not None and len(arguments) > most):
            wanted = {1: "one number", 2: "two numbers"}.get(most, "two or more numbers")
            raise ExprError(f"{function}() takes {wanted}, found {len(arguments)}", offset)

        def call() -> Number:  # int() truncates toward zero, round() rounds halves to even: Python's own
            numbers = [self._number(argument(), offset) for argument in arguments]
            if function == "divisible" and numbers[1] <= 0:
                raise ExprError(f"divisible() takes a divisor above 0, found {numbers[1]}", offset)
            return self._bound(FUNCTIONS[function](*numbers), offset)

        return call

    # -- helpers ---------------------------------------------------------------------------------------------

    def _lookup(self, name: str, offset: int) -> Any:
        if name not in self.scope:
            known = self.describe(name) if self.describe else ", ".join(self.scope) or "none"
            raise ExprError(f"unknown parameter '{name}' ({known})")  # the name says where
        return self.scope[name]

    def _number(self, value: Any, offset: int) -> Number:
        if type(value) not in (int, float):
            found = "true/false" if isinstance(value, bool) else f"{value!r}"
            raise ExprError(f"arithmetic takes numbers, found {found}", offset)
        return value

    def _truth(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if type(value) in (int, float):
            return value != 0
        raise ExprError(f"a condition takes true/false or a number, found {value!r}", 0)

    def _bound(self, value: Number, offset: int) -> Number:
        if not abs(value) <= MAX_MAGNITUDE:  # a decimal past it, too (never nan or inf)
            raise ExprError(f"result {str(value)[:20]}{'...' if len(str(value)) > 20 else ''} is too large", offset)
        return value

    def _name(self, token: str) -> bool:
        return token[0].isalpha() or token[0] == "_"

    def _peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def _take(self, token: str) -> bool:
        if self._peek() == token:
            self.at += 1
            return True
        return False

    def _expect(self, token: str, why: str) -> None:
        if not self._take(token):
            offset = self.tokens[self.at][1] if self.at < len(self.tokens) else len(self.text)
            raise ExprError(f"expected '{token}' {why}", offset)

    def _nested(self, offset: int) -> _Depth:
        return _Depth(self, offset)


_OPERATORS: dict[str, Callable[[Number, Number], Number]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}


class _Depth:
    def __init__(self, parser: _Parser, offset: int) -> None:
        self.parser, self.offset = parser, offset

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_NESTING:
            raise ExprError(f"nested deeper than {MAX_NESTING} levels", self.offset)

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1
