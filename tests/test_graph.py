"""Graph specs: blocks, repeats, `when`, branches and `${...}` expressions, read and checked with positioned
errors that name the path through the graph and, inside a block, the use that made it fail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnforge import check_file
from cnnforge.spec import read_text
from cnnforge.spec.expr import ExprError, evaluate
from cnnforge.spec.graph import MAX_NESTING, MAX_NODES, Group, Leaf, Merge

ROOT = Path(__file__).resolve().parent.parent


def errors(text: str, tmp_path: Path, **bindings: object) -> list[str]:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return [str(d).replace(f"{path}:", "") for d in check_file(path, bindings or None).diagnostics]


# -- expressions -------------------------------------------------------------------------------------------------


@st.composite
def arithmetic(draw: st.DrawFn, depth: int = 0) -> str:
    """An expression over a, b and small numbers (decimals too), written as Python writes it too."""
    if depth > 3 or draw(st.booleans()):
        return draw(st.sampled_from(["a", "b", "7", "0", "12", "1", "0.25", "2.5"]))
    kind = draw(st.sampled_from(["op", "op", "op", "neg", "call", "paren", "if"]))
    left = draw(arithmetic(depth + 1))
    if kind == "neg":
        return f"-{left}"
    if kind == "paren":
        return f"({left})"
    right = draw(arithmetic(depth + 1))
    if kind == "if":  # only the branch taken is evaluated: a division by zero in the other is no error
        compare = draw(st.sampled_from(["<", "<=", "==", "!=", ">", ">="]))
        return f"({left} if {draw(arithmetic(depth + 1))} {compare} {draw(arithmetic(depth + 1))} else {right})"
    if kind == "call":
        if draw(st.booleans()):
            return f"{draw(st.sampled_from(['int', 'round']))}({left})"
        return f"{draw(st.sampled_from(['min', 'max']))}({left}, {right})"
    return f"{left} {draw(st.sampled_from(['+', '-', '*', '/', '//', '%']))} {right}"


@settings(max_examples=400, derandomize=True, database=None)
@given(arithmetic())
def test_arithmetic_is_pythons_arithmetic(text: str) -> None:
    """Python is the oracle: the same text, its precedence, floor division and modulo of negative numbers, and
    its types (an integer stays one; `/` and a decimal give a decimal)."""
    scope = {"a": 5, "b": -3}
    try:
        expected = eval(text, {"__builtins__": {}, "min": min, "max": max, "int": int, "round": round}, scope)
    except ZeroDivisionError:
        with pytest.raises(ExprError, match="division by zero"):
            evaluate("${" + text + "}", scope)
        return
    found = evaluate("${" + text + "}", scope)
    assert found == expected and type(found) is type(expected)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${in != out or stride != 1}", True),
        ("${not (in < out) and stride >= 1}", False),
        ("${stride == 2}", False),
        ("${in if stride > 1 else out}", 128),
        ("${in // (stride - 1) if stride > 1 else in}", 64),  # the branch not taken is not evaluated
        ("${name}", "same"),  # a name alone keeps its value, whatever it is
        ("${p}", 0.5),
        ("${0.1 * in / 128}", 0.05),  # a stochastic depth's rate growing with the block's index
        ("${in / 64}", 1.0),
        ("${2.5e-1 + p}", 0.75),
    ],
)
def test_conditions_and_plain_names(text: str, value: object) -> None:
    assert evaluate(text, {"in": 64, "out": 128, "stride": 1, "name": "same", "p": 0.5}) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${a +}", "ends too early"),
        ("${(a + 1}", "expected ')'"),
        ("${a ** 2}", "expected a number, a name or '('"),
        ("${__import__('os')}", "unexpected character"),
        ("${pow(a, 2)}", "unknown function 'pow' (known: min, max, int, round, divisible)"),
        ("${min(a)}", "min() takes two or more numbers"),
        ("${int(a, b)}", "int() takes one number, found 2"),
        ("${a // (b - b)}", "division by zero"),
        ("${a / 0.0}", "division by zero"),
        ("${w * 2}", "arithmetic takes numbers, found 'same'"),
        ("${1e300 * 1e300}", "is too large"),
        ("${zz}", "unknown parameter 'zz'"),
        ("${" + "(" * 40 + "1" + ")" * 40 + "}", "nested deeper than"),
        ("${" + "-" * 5000 + "1}", "nested deeper than"),
        ("${" + " * ".join(["99999"] * 20) + "}", "is too large"),
        ("${}", "empty expression"),
    ],
)
def test_bad_expressions_say_why(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        evaluate(text, {"a": 5, "b": 3, "p": 0.5, "w": "same"})


# -- the format ------------------------------------------------------------------------------------------------

RESIDUAL = """\
name: r
input: [8, 16, 16]
blocks:
  res:
    params: {c: 8, out: 8, stride: 1}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, name: conv1, shape: ['${c}', '${out}', 3, 3], stride: '${stride}', padding: 1}
            - {type: relu, name: relu1}
          shortcut:
            - {type: conv, name: proj, shape: ['${c}', '${out}', 1, 1], stride: '${stride}', when: '${stride > 1}'}
      - {type: relu, name: relu}
layers:
  - {type: res, name: stage, repeat: 3, c: 16, out: 16, first: {c: 8, stride: 2}}
  - {type: flatten}
"""


def test_repeats_first_and_when_unroll_into_named_groups() -> None:
    spec = read_text(RESIDUAL).spec
    assert spec is not None
    (stage, flatten) = spec.layers
    assert isinstance(stage, Group) and stage.kind == "repeat" and [g.name for g in stage.entries] == ["0", "1", "2"]
    first, second = stage.entries[0].entries[0], stage.entries[1].entries[0]
    assert isinstance(first, Merge) and [label for label, _ in first.branches] == ["body", "shortcut"]
    assert [leaf.dotted for leaf in first.branches[1][1]] == ["stage.0.proj"]  # stride 2: projected
    assert first.branches[1][1][0].layer.stride == (2, 2)
    assert second.branches[1][1] == []  # stride 1: the identity
    assert isinstance(flatten, Leaf) and flatten.name == "flatten1"


def test_compiled_nodes_read_their_inputs(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RESIDUAL)
    compiled = check_file(path)
    assert compiled.ok, compiled.diagnostics
    nodes = {node.path: node for node in compiled.layers}
    add = nodes["stage.0.add0"]
    assert [compiled.layers[i].path for i in add.inputs] == ["stage.0.relu1", "stage.0.proj"]
    assert nodes["stage.1.add0"].inputs[1] == nodes["stage.0.relu"].index  # the identity shortcut
    assert nodes["stage.0.conv1"].inputs == (-1,)
    assert compiled.output == (16 * 8 * 8,)
    assert [(g.path, g.kind, g.repetitions) for g in compiled.groups[:2]] == [
        ("stage", "repeat", 3),
        ("stage.0", "block", None),
    ]


def test_an_error_in_a_block_names_its_line_and_the_use(tmp_path: Path) -> None:
    text = RESIDUAL.replace("first: {c: 8, stride: 2}", "first: {c: 4, stride: 2}")
    body, shortcut = errors(text, tmp_path)  # both branches' convs take c=4 channels
    assert body == (
        "10:15: error: layer 'stage.0.conv1' (conv): shape says C_i=4 but the incoming tensor has 8 channels "
        "[8, 16, 16]; in block 'res' used as stage.0 at line 16 (c=4, out=16, stride=2)"
    )
    assert shortcut.startswith("13:15: error: layer 'stage.0.proj' (conv): shape says C_i=4")


def test_a_problem_met_by_every_use_is_said_once(tmp_path: Path) -> None:
    text = RESIDUAL.replace("{type: relu, name: relu1}", "{type: batchnorm, name: bn1, channels: 3}")
    (error,) = errors(text, tmp_path)
    assert error == (
        "11:15: error: layer 'stage.0.bn1' (batchnorm): channels=3 but the incoming tensor has 16 channels "
        "[16, 8, 8]; in block 'res' used as stage.0 at line 16 (c=8, out=16, stride=2) (and 2 more uses of the block)"
    )


def test_a_mismatched_shortcut_says_what_would_fix_it(tmp_path: Path) -> None:
    text = RESIDUAL.replace("when: '${stride > 1}'", "when: false")
    (error,) = errors(text, tmp_path)
    assert error == (  # at the shortcut, the branch that is off
        "12:11: error: layer 'stage.0.add0' (add): the body gives [16, 8, 8], the shortcut [8, 16, 16]: give the "
        "shortcut a 1x1 conv with stride 2 to 16 channels; in block 'res' used as stage.0 at line 16 (c=8, out=16, "
        "stride=2)"
    )


CONCAT = """\
name: c
input: [4, 9, 9]
layers:
  - type: concat
    branches:
      a: [{type: conv, shape: [4, 2, 1, 1]}]
      b: [{type: conv, shape: [4, 3, 3, 3]}]
      c: []
"""


def test_a_concat_names_the_branch_that_is_off(tmp_path: Path) -> None:
    (error,) = errors(CONCAT, tmp_path)
    assert error == (
        "7:7: error: layer 0 'concat0' (concat): the b gives [3, 7, 7], 2 rows fewer and 2 columns fewer than "
        "the a [2, 9, 9]: concat joins channels, so rows and columns must agree"
    )
    fixed = CONCAT.replace("[4, 3, 3, 3]}", "[4, 3, 3, 3], padding: 1}")
    path = tmp_path / "ok.yaml"
    path.write_text(fixed)
    assert check_file(path).output == (9, 9, 9)


def test_a_gate_that_cannot_broadcast_says_both_shapes(tmp_path: Path) -> None:
    text = """\
name: se
input: [8, 6, 6]
layers:
  - type: multiply
    branches:
      input: []
      gate: [{type: adaptive_avgpool, output: 2}, {type: sigmoid}]
"""
    (error,) = errors(text, tmp_path)
    assert "the input [8, 6, 6], the gate [8, 2, 2]: these cannot be multiplied" in error


# Line 16 uses the block: `- {type: res, name: stage, repeat: 3, c: 16, ...}`; line 13 is its shortcut's conv.
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("type: res, name", "type: rez, name"),
            "16:6: error: layer 'stage.0' (rez): unknown layer type 'rez' (did you mean 'res'?)",
        ),
        (("c: 16, out: 16,", "cc: 16, out: 16,"), "16:41: error: block 'res' has no parameter 'cc' (did you mean"),
        (("repeat: 3", "repeat: 0"), "16:30: error: 'repeat': expected an integer >= 1, found 0"),
        (("stride: 2}", "stride: '${2 // 0}'}"), "16:71: error: division by zero (2 // 0)"),
        (
            ("'${stride > 1}'", "'${strid > 1}'"),
            "13:94: error: unknown parameter 'strid' (block 'res' declares: c, out, stride; the spec: none); "
            "in block 'res' used as stage.0 at line 16",
        ),
        (
            ("name: proj,", "name: conv1,"),
            "13:28: error: layer 'stage.0.conv1' (conv): name 'conv1' is already used by layer 1",
        ),
    ],
)
def test_mistakes_in_graphs_are_positioned(change: tuple[str, str], expected: str, tmp_path: Path) -> None:
    found = errors(RESIDUAL.replace(*change), tmp_path)
    assert any(e.startswith(expected) for e in found), found


def test_a_refused_block_is_said_once_not_again_at_its_uses(tmp_path: Path) -> None:
    text = (
        "name: x\ninput: [1, 4, 4]\nblocks:\n  b: {params: {repeat: 1}, layers: [{type: relu}]}\nlayers: [{type: b}]\n"
    )
    assert errors(text, tmp_path) == ["4:16: error: block 'b': 'repeat' cannot be a parameter name"]


def test_block_names_cannot_be_layer_kinds(tmp_path: Path) -> None:
    text = "name: x\ninput: [1, 4, 4]\nblocks:\n  conv: {layers: [{type: relu}]}\nlayers: [{type: relu}]\n"
    assert errors(text, tmp_path) == ["4:3: error: block 'conv' has the name of a layer type; call it something else"]


# -- hostile graphs ----------------------------------------------------------------------------------------------

HOSTILE = {
    "itself": "blocks:\n  a: {layers: [{type: b}]}\n  b: {layers: [{type: a}]}\nlayers: [{type: a}]\n",
    "huge repeat": "layers: [{type: relu, repeat: 1000000000000}]\n",
    "nested repeats": "blocks:\n  a: {layers: [{type: relu, repeat: 1000}]}\n  b: {layers: [{type: a, repeat: 1000}]}\n"
    "layers: [{type: b, repeat: 1000}]\n",
    "deep": "blocks:\n"
    + "".join(f"  b{i}: {{layers: [{{type: b{i + 1}}}]}}\n" for i in range(MAX_NESTING + 5))
    + f"  b{MAX_NESTING + 5}: {{layers: [{{type: relu}}]}}\nlayers: [{{type: b0}}]\n",
    "huge number": "layers: [{type: conv, shape: [1, '${" + " * ".join(["999999"] * 12) + "}', 1, 1]}]\n",
    "wide": "blocks:\n  a: {layers: [{type: add, branches: {x: [{type: relu, repeat: 400}], "
    "y: [{type: relu, repeat: 400}]}}]}\nlayers: [{type: a, repeat: 400}]\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_graphs_are_refused_quickly_with_a_position(name: str, tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    path.write_text("name: h\ninput: [1, 4, 4]\n" + HOSTILE[name])
    start = time.perf_counter()
    compiled = check_file(path)
    elapsed = time.perf_counter() - start
    assert not compiled.ok
    assert all(d.line is not None for d in compiled.diagnostics), compiled.diagnostics
    assert elapsed < 1.0, elapsed
    said = str(compiled.diagnostics[0])
    assert any(word in said for word in ("uses itself", f"{MAX_NODES:,}", "nested deeper", "is too large")), said


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("3x", "'name': string should match pattern '^[A-Za-z][A-Za-z0-9_]*$', found '3x'"),
        ("a.b", "'name': string should match pattern '^[A-Za-z][A-Za-z0-9_]*$', found 'a.b'"),
        ("train", "'name': 'train' is reserved by torch.nn.Module; choose another name"),
        ("'${n}'", "'name': string should match pattern '^[A-Za-z][A-Za-z0-9_]*$', found '${n}'"),
    ],
)
@pytest.mark.parametrize(
    "entry", ["{type: sequence, name: %s, layers: [{type: relu}]}", "{type: relu, name: %s, repeat: 2}"]
)
def test_group_names_are_checked_as_layer_names(name: str, message: str, entry: str, tmp_path: Path) -> None:
    """A group's name becomes a submodule's, as a layer's does: torch would refuse it when building."""
    text = "name: x\nparams: {n: 1}\ninput: [1, 4, 4]\nlayers:\n  - " + entry % name + "\n"
    (error,) = errors(text, tmp_path)
    assert error.split(": error: ")[1] == message


# -- branches that are there only when a condition holds ----------------------------------------------------------

OPTIONAL = """\
name: optional
input: [8, 16, 16]
blocks:
  ir:
    params: {in: 8, out: 8, stride: 1}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, name: conv, shape: ['${in}', '${out}', 3, 3], stride: '${stride}', padding: 1}
          shortcut: {when: '${stride == 1 and in == out}', layers: []}
layers:
  - {type: ir, name: a}
  - {type: ir, name: b, out: 16, stride: 2}
  - {type: ir, name: c, repeat: 2, in: 16, out: 16}
"""


def test_a_branch_with_when_false_is_left_out_and_one_left_is_the_branch(tmp_path: Path) -> None:
    """MobileNetV2's inverted residual: a shortcut only where the shape stays."""
    path = tmp_path / "o.yaml"
    path.write_text(OPTIONAL)
    compiled = check_file(path)
    assert compiled.ok, compiled.diagnostics
    assert [(layer.path, layer.layer.type) for layer in compiled.layers] == [
        ("a.conv", "conv"),
        ("a.add0", "add"),
        ("b.conv", "conv"),  # no shortcut: the block is its body alone, named as it would be with one
        ("c.0.conv", "conv"),
        ("c.0.add0", "add"),
        ("c.1.conv", "conv"),
        ("c.1.add0", "add"),
    ]
    torch = pytest.importorskip("torch")
    from cnnforge.builder import build

    model = build(compiled).eval()
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        a = model.a.conv(x) + x
        b = model.b.conv(a)
        c0 = model.c[0].conv(b) + b
        expected = model.c[1].conv(c0) + c0
        assert torch.equal(model(x), expected)


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        (
            "{body: {when: false, layers: [{type: relu}]}, shortcut: {when: false, layers: []}}",
            "every branch of this add has 'when' false: none is left",
        ),
        ("{body: [{type: relu}], shortcut: {when: '${nope}', layers: []}}", "unknown parameter 'nope'"),
        ("{body: [{type: relu}], shortcut: {layers: [], if: true}}", "branch 'shortcut': expected a list of layers"),
        ("{body: [{type: relu}], shortcut: {when: 3.5, layers: []}}", "'when': expected true/false"),
    ],
)
def test_optional_branch_mistakes_are_said(branches: str, message: str, tmp_path: Path) -> None:
    text = f"name: o\ninput: [4, 8, 8]\nlayers:\n  - {{type: add, branches: {branches}}}\n"
    found = errors(text, tmp_path)
    assert found and message in found[0], found


@settings(max_examples=300, derandomize=True, database=None, deadline=None)  # the first imports torchvision
@given(st.floats(0.01, 5000, allow_nan=False), st.sampled_from([1, 4, 8, 16]))
def test_divisible_is_torchvisions_make_divisible(value: float, divisor: int) -> None:
    """torchvision is the oracle: MobileNet's _make_divisible and MnasNet's _round_to_multiple_of."""
    utils = pytest.importorskip("torchvision.models._utils")
    mnasnet = pytest.importorskip("torchvision.models.mnasnet")
    found = evaluate("${divisible(v, d)}", {"v": value, "d": divisor})
    assert found == utils._make_divisible(value, divisor) == mnasnet._round_to_multiple_of(value, divisor)
    assert type(found) is int


def test_divisible_refuses_a_divisor_of_zero() -> None:
    with pytest.raises(ExprError, match="divisible\\(\\) takes a divisor above 0, found 0"):
        evaluate("${divisible(32, 0)}", {})
