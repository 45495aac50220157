"""Differential tests on spec graphs with torch as the oracle (tests/graph_oracle.py, which reads the spec dict
itself): a random graph passes the static check if and only if torch runs it, else cnnforge's first error is
at the node torch refuses; every node's path, inputs, shape, parameters and MACs are torch's; the groups are
the oracle's; cnnforge's builder names its parameters as the spec orders them and, given the oracle's weights
by position, computes the oracle's outputs."""

from __future__ import annotations

import re

import pytest
import torch
from agreement import as_yaml, compile_dict
from graph_oracle import GraphRun, interpret
from graph_strategies import Case, graphs
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cnnforge import Compiled
from cnnforge.builder import build
from cnnforge.spec import read_text

PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
SMALL = {"max_entries": 3, "max_channels": 3, "max_size": 8, "budget": 8}  # real tensors on the CPU
GUESS = "input is [C, H, W]: did you mean"
SUGGESTION = re.compile(r"give the shortcut a 1x1 conv(?: with stride (\d+))? to (\d+) channels")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def assert_graph_agrees(case: Case, device: str) -> tuple[Compiled, GraphRun]:
    """cnnforge accepts the graph iff torch runs it, else its first error is at the node torch refuses; when
    accepted, its nodes and groups are the oracle's, and so is what its builder makes of them."""
    compiled, ran = compile_dict(case.spec), interpret(case.spec, case.exprs, device)
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    if errors and errors[0].message.startswith(GUESS):  # as in agreement.py: checked as the guess says
        guess, *rest = compiled.diagnostics
        assert not ran.ok, f"{guess}; but torch runs the input as written"
        guessed = Case({**case.spec, "input": list(compiled.layers[0].input)}, case.exprs)
        assert_graph_agrees(guessed, device)
        assert [str(d) for d in rest] == [str(d) for d in compile_dict(guessed.spec).diagnostics]
        return compiled, ran
    if not ran.ok:
        why = "cnnforge is stricter here" if ran.stricter else f"torch refuses it: {ran.error}"
        assert errors, f"cnnforge accepts node {ran.failed} but {why}"
        assert errors[0].layer_path == ran.failed, f"{errors[0]}; but {why} (node {ran.failed})"
        return compiled, ran
    assert not errors, f"cnnforge refuses what torch runs: {errors[0]}"
    assert [n.path for n in compiled.layers] == [n.path for n in ran.nodes]
    for ours, theirs in zip(compiled.layers, ran.nodes, strict=True):
        assert (ours.type, ours.inputs) == (theirs.kind, theirs.inputs), ours.path
        assert ours.output == theirs.shape, f"{ours.path}: cnnforge {ours.output}, torch {theirs.shape}"
        assert (ours.params, ours.macs) == (theirs.params, theirs.macs), ours.path
    assert [(g.path, g.kind, g.first, g.last) for g in compiled.groups] == [
        (g.path, g.kind, g.first, g.last) for g in ran.groups
    ]
    assert_graph_builds(compiled, ran, device)
    return compiled, ran


def assert_graph_builds(compiled: Compiled, ran: GraphRun, device: str) -> None:
    """The built model's state_dict is the oracle's modules' in the order of the spec, each under its node's
    path; on the CPU, with the oracle's tensors copied in by position, it gives the oracle's output."""
    with torch.device(device):
        model = build(compiled).eval()
    expected = [f"{n.path}.{key}" for n in ran.nodes if n.module is not None for key in n.module.state_dict()]
    assert list(model.state_dict()) == expected
    assert [name for name, _ in model.named_parameters()] == [
        f"{n.path}.{key}" for n in ran.nodes if n.module is not None for key, _ in n.module.named_parameters()
    ]
    theirs = [t for m in ran.modules for t in m.state_dict().values()]
    assert [t.shape for t in model.state_dict().values()] == [t.shape for t in theirs]
    assert ran.input is not None and ran.output is not None
    with torch.no_grad():
        if device != "meta":
            model.load_state_dict(dict(zip(model.state_dict(), theirs, strict=True)))
        y = model(ran.input)
    assert y.shape == ran.output.shape
    if device != "meta":
        torch.testing.assert_close(y, ran.output)


def agrees(case: Case, device: str) -> Compiled:
    """assert_graph_agrees, counting in the statistics what torch did and what the spec holds."""
    compiled, ran = assert_graph_agrees(case, device)
    event("torch runs it" if ran.ok else "cnnforge is stricter" if ran.stricter else "torch refuses a node")
    if compiled.diagnostics and compiled.diagnostics[0].message.startswith(GUESS):
        event("cnnforge guesses the input is written channels last")
    for kind in ("blocks", "branches", "repeat", "first", "when", "sequence", "index"):
        if kind in str(case.spec):
            event(f"has {kind}")
    return compiled


@settings(max_examples=150, **PROFILE)
@given(graphs())
def test_graph_check_agrees_with_torch_on_meta(case: Case) -> None:
    agrees(case, "meta")


@settings(max_examples=60, **PROFILE)
@given(graphs(**SMALL))
def test_graph_check_agrees_with_torch_on_cpu(case: Case) -> None:
    agrees(case, "cpu")


# Merge shape rules, case by case: torch agrees, and a refusal's message names both shapes and a fix.


def conv(c_i: int, c_o: int, k: int = 1, **keys: object) -> dict:
    return {"type": "conv", "shape": [c_i, c_o, k, k], **keys}


def to_features(c: int, h: int, w: int, f: int) -> list[dict]:
    return [{"type": "flatten"}, {"type": "linear", "shape": [c * h * w, f]}]


FLAT = {"type": "flatten", "name": "flat"}


def graph(shape: list[int], *layers: dict) -> Case:
    return Case({"name": "merge", "input": shape, "layers": list(layers)}, {})


def merged(op: str, **branches: list) -> dict:
    return {"type": op, "branches": branches}


BROADCASTS = {
    "add [C,H,W] + [C,1,1]": ([4, 6, 6], merged("add", x=[], bias=[{"type": "adaptive_avgpool", "output": 1}])),
    "add [1,H,W] + [C,H,W]": ([4, 6, 6], merged("add", one=[conv(4, 1)], x=[])),
    "multiply by a gate [C,1,1]": (
        [4, 6, 6],
        merged("multiply", x=[], gate=[{"type": "adaptive_avgpool", "output": 1}, conv(4, 4), {"type": "sigmoid"}]),
    ),
    "multiply [C,H,1] * [C,1,W]": (
        [4, 6, 5],
        merged(
            "multiply",
            rows=[{"type": "adaptive_maxpool", "output": [6, 1]}],
            columns=[{"type": "adaptive_avgpool", "output": [1, 5]}],
        ),
    ),
    "add three: [1,H,W] + [C,H,W] + [C,1,1]": (
        [3, 5, 5],
        merged("add", a=[conv(3, 1)], b=[], c=[{"type": "adaptive_avgpool", "output": 1}]),
    ),
    "add features [F] + [1]": ([6, 1, 1], FLAT, merged("add", x=[], one=[{"type": "linear", "shape": [6, 1]}])),
    "concat features": ([6, 1, 1], FLAT, merged("concat", x=[], y=[{"type": "linear", "shape": [6, 3]}])),
    "concat one branch": ([2, 3, 3], merged("concat", x=[conv(2, 5)])),
    "concat of the input with itself": ([2, 3, 3], merged("concat", x=[], y=[], z=[])),
}


@pytest.mark.parametrize("name", sorted(BROADCASTS))
def test_merges_torch_runs(name: str) -> None:
    shape, *layers = BROADCASTS[name]
    compiled, _ = assert_graph_agrees(graph(shape, *layers), "cpu")
    assert compiled.ok, [str(d) for d in compiled.diagnostics]


def refusal(case: Case) -> tuple[str, bool]:
    """cnnforge's first error, which is at the merge torch refuses, and whether torch would run it."""
    compiled, ran = assert_graph_agrees(case, "meta")
    assert not ran.ok and ran.failed is not None and ran.failed.split(".")[-1].startswith(("add", "concat", "multiply"))
    return next(d.message for d in compiled.diagnostics if d.severity == "error"), ran.stricter


REFUSED = {
    "a ResNet shortcut left out": (
        [64, 56, 56],
        merged("add", body=[conv(64, 128, 3, stride=2, padding=1)], shortcut=[]),
        "the body gives [128, 28, 28], the shortcut [64, 56, 56]: give the shortcut a 1x1 conv with stride 2 to "
        "128 channels",
    ),
    "an odd map's shortcut left out": (
        [3, 7, 7],
        merged("add", body=[conv(3, 6, 3, stride=2, padding=1)], shortcut=[]),
        "the body gives [6, 4, 4], the shortcut [3, 7, 7]: give the shortcut a 1x1 conv with stride 2 to 6 channels",
    ),
    "channels that differ": (
        [3, 5, 5],
        merged("add", a=[conv(3, 4)], b=[]),
        "the a gives [4, 5, 5], the b [3, 5, 5]: give the b a 1x1 conv to 4 channels",
    ),
    "three that broadcast in pairs with the first, not together": (
        [3, 4, 4],
        merged("add", a=[conv(3, 1)], b=[], c=[conv(3, 2)]),
        "the b gives [3, 4, 4], the c [2, 4, 4]: give the c a 1x1 conv to 3 channels",
    ),
    "rows no stride makes": (
        [2, 6, 6],
        merged("add", a=[conv(2, 2, 3)], b=[]),
        "the a gives [2, 4, 4], the b [2, 6, 6]: the b is 2 rows more and 2 columns more off",
    ),
    "features and a map added": (
        [2, 3, 3],
        merged("add", x=[], f=to_features(2, 3, 3, 3)),
        "the x gives [2, 3, 3], the f [3]: one is features and the other a feature map: flatten both or neither",
    ),
    "features of different sizes": (
        [6, 1, 1],
        FLAT,
        merged("add", x=[], f=[{"type": "linear", "shape": [6, 4]}]),
        "the x gives [6], the f [4]: give the f a linear layer to 6 features",
    ),
    "a gate of the wrong channels": (
        [4, 6, 6],
        merged("multiply", x=[], gate=[{"type": "adaptive_avgpool", "output": 1}, conv(4, 3)]),
        "the x [4, 6, 6], the gate [3, 1, 1]: these cannot be multiplied, as each axis must be equal or 1 in all "
        "but one (a gate gives [C, 1, 1] for a [C, H, W] input)",
    ),
    "features added to a map, which torch broadcasts along its rows": (
        [2, 2, 3],
        merged("add", x=[], f=to_features(2, 2, 3, 3)),
        "the x gives [2, 2, 3], the f [3]: one is features and the other a feature map: flatten both or neither",
    ),
    "concat of features and a map": (
        [2, 3, 3],
        merged("concat", x=[], f=to_features(2, 3, 3, 5)),
        "the x gives [2, 3, 3], the f [5]: features and feature maps cannot be joined; flatten both or neither",
    ),
    "concat of maps whose rows differ": (
        [2, 6, 6],
        merged("concat", x=[], y=[conv(2, 3, 3)]),
        "the y gives [3, 4, 4], 2 rows fewer and 2 columns fewer than the x [2, 6, 6]: concat joins channels, so "
        "rows and columns must agree",
    ),
    "concat of maps a stride apart": (
        [2, 6, 6],
        merged("concat", x=[], y=[{"type": "maxpool", "kernel": 2}]),
        "the y gives [2, 3, 3], 3 rows fewer and 3 columns fewer than the x [2, 6, 6]: concat joins channels, so "
        "rows and columns must agree",
    ),
    "concat of the larger map after": (
        [2, 6, 6],
        merged("concat", small=[{"type": "maxpool", "kernel": 2}], x=[]),
        "the x gives [2, 6, 6], 3 rows more and 3 columns more than the small [2, 3, 3]: concat joins channels, so "
        "rows and columns must agree; a 1x1 conv or pool with stride 2 in the x would make them agree",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_merge_refusals_name_both_shapes_and_a_fix(name: str) -> None:
    shape, *layers, message = REFUSED[name]
    assert refusal(graph(shape, *layers)) == (message, "torch broadcasts" in name)


@pytest.mark.parametrize("op", ["add", "multiply"])
def test_an_add_or_multiply_of_one_branch_is_taken_for_a_mistake(op: str) -> None:
    spec = {"name": "one", "input": [2, 3, 3], "layers": [merged(op, x=[conv(2, 2)])]}
    loaded = read_text(as_yaml(spec), "spec.yaml")
    assert [d.message for d in loaded.diagnostics] == [
        f"'branches': {op} takes a mapping of two or more branches, each a list of layers ([] for the input "
        "itself), e.g. {body: [...], shortcut: []}"
    ]


@settings(max_examples=60, **PROFILE)
@given(
    st.integers(1, 4),
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(0, 2),
)
def test_a_suggested_shortcut_works(c: int, h: int, w: int, c_o: int, stride: int, k: int, padding: int) -> None:
    """Where the message says to give the shortcut a 1x1 conv, doing so makes a spec torch runs and cnnforge
    accepts; and it says so wherever a 1x1 conv would do."""
    body = [conv(c, c_o, k, stride=stride, padding=padding)]
    compiled, ran = assert_graph_agrees(graph([c, h, w], merged("add", body=body, shortcut=[])), "meta")
    y = compiled.layers[0].output
    assume(y is not None and not ran.ok)
    message = next(d.message for d in compiled.diagnostics if d.severity == "error")
    suggested = SUGGESTION.search(message)
    works = [s for s in range(1, max(h, w) + 1) if (-(-h // s), -(-w // s)) == y[1:]]
    assert bool(suggested) == bool(works), message
    if suggested:
        shortcut = [conv(c, int(suggested[2]), stride=int(suggested[1] or 1))]
        compiled, ran = assert_graph_agrees(graph([c, h, w], merged("add", body=body, shortcut=shortcut)), "meta")
        assert compiled.ok and ran.ok, [str(d) for d in compiled.diagnostics]


# Names: a repeated merge's repetitions, groups' names, and names a torch module may hold.


def test_a_repeated_merge_has_names_of_its_own_each_time() -> None:
    """Each repetition is a group holding the merge, as a block holding only the merge would be."""
    body = [conv(2, 2, name="c"), {"type": "relu"}]
    case = graph([2, 4, 4], {"type": "add", "name": "stage", "repeat": 2, "branches": {"body": body, "x": []}})
    compiled, ran = assert_graph_agrees(case, "cpu")
    assert compiled.ok and ran.ok
    paths = ["stage.0.c", "stage.0.relu2", "stage.0.add0", "stage.1.c", "stage.1.relu2", "stage.1.add0"]
    assert [node.path for node in compiled.layers] == paths
    assert [(g.path, g.kind) for g in compiled.groups] == [
        ("stage", "repeat"),
        ("stage.0", "sequence"),
        ("stage.1", "sequence"),
    ]


BLOCKS = {"plain": {"layers": [{"type": "relu"}]}}
GROUPS = {
    "sequence": {"type": "sequence", "layers": [{"type": "relu"}]},
    "block used": {"type": "plain"},
    "merge": merged("add", x=[], y=[]),
    "repeated layer": {"type": "relu", "repeat": 2},
}
BAD_NAMES = {
    "forward": "'name': 'forward' is reserved by torch.nn.Module; choose another name",
    "a.b": "'name': string should match pattern '^[A-Za-z][A-Za-z0-9_]*$', found 'a.b'",
    "": "'name': string should match pattern '^[A-Za-z][A-Za-z0-9_]*$', found ''",
    3: "'name': input should be a valid string, found 3",
}


@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("name", list(BAD_NAMES), ids=repr)
def test_a_group_is_named_as_a_layer_is(group: str, name: object) -> None:
    """A group's name is a submodule's name: the names torch cannot add are refused at the name."""
    spec = {"name": "names", "input": [2, 3, 3], "blocks": BLOCKS, "layers": [{"name": name, **GROUPS[group]}]}
    loaded = read_text(as_yaml(spec), "spec.yaml")
    assert loaded.spec is None
    assert [(d.line, d.column, d.message) for d in loaded.diagnostics] == [(11, 3, BAD_NAMES[name])]  # `- name:`


def test_a_layer_in_branches_may_be_named_program() -> None:
    case = graph([2, 3, 3], merged("add", x=[], y=[conv(2, 2, name="program")]))
    compiled, _ = assert_graph_agrees(case, "cpu")
    assert compiled.ok


def test_a_repeated_layers_problem_names_its_repetition_once() -> None:
    spec = {"name": "names", "input": [2, 3, 3], "layers": [{"type": "conv", "shape": [2, 2, 1], "repeat": 2}]}
    loaded = read_text(as_yaml(spec), "spec.yaml")
    assert [d.layer_path for d in loaded.diagnostics] == ["conv0.0"]  # one line in the file: said once
