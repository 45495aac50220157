"""The JSON Schema of the spec format: generated from the models, committed for editors, and true to the
checker: every shipped spec and README example validates, and schema-level mistakes are refused."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from cnnforge.layers import LAYERS
from cnnforge.spec import parse
from cnnforge.spec.schema import KINDS, json_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
SPECS = sorted((ROOT / "cnnforge" / "architectures").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_cnnforge_schema_prints_the_committed_schema() -> None:
    run = subprocess.run([sys.executable, "-m", "cnnforge", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == json_schema()
    assert (ROOT / "cnnforge" / "schema.json").read_text() == run.stdout, (
        "regenerate: cnnforge schema > cnnforge/schema.json"
    )
    assert (ROOT / "schema.json").resolve() == (ROOT / "cnnforge" / "schema.json").resolve()


def test_every_layer_kind_and_field_is_described() -> None:
    schema = json_schema()
    assert schema["description"]
    for entry in ("Entry", "EntryWithoutBlocks"):
        dispatch = schema["$defs"][entry]["allOf"]
        kinds = {
            branch["if"]["properties"]["type"]["const"]: branch["then"]["$ref"]
            for branch in dispatch
            if "const" in branch["if"]["properties"]["type"] and branch["then"]["$ref"].startswith(KINDS)
        }
        assert set(kinds) == set(LAYERS), entry
        for kind, ref in kinds.items():
            layer = schema["$defs"]["kinds"]["$defs"][ref.removeprefix(KINDS)]
            assert layer["description"], kind
            for field, spec in layer["properties"].items():
                assert spec.get("description") or list(spec) == ["$ref"], f"{kind}.{field}"  # the $ref's has one
    words = schema["$defs"]["EntryWithoutBlocks"]["properties"]["type"]["enum"]
    assert words == sorted([*LAYERS, "add", "concat", "multiply", "sequence"])
    for name, definition in schema["$defs"].items():
        assert definition.get("description"), name
        for field, spec in definition.get("properties", {}).items():
            assert spec.get("description") or list(spec) == ["$ref"], f"{name}.{field}"
    for field, spec in schema["properties"].items():
        assert spec.get("description"), field


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_validate_and_point_editors_at_the_schema(validator, path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema.json"
    assert (path.parent / "../schema.json").resolve() == (ROOT / "cnnforge" / "schema.json").resolve()
    validator.validate(parse(text).data)  # YAML 1.2, as editors read it: 1e-4 is a number


def test_readme_yaml_examples_validate(validator) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS, re.S)
    specs = [parse(block).data for block in blocks]
    specs = [s for s in specs if isinstance(s, dict) and "layers" in s]
    assert specs
    for spec in specs:
        validator.validate(spec)


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "cnv", "shape": [1, 6, 5, 5]},
        {"type": "conv", "shape": [1, 6, 5, 5], "strides": 2},
        {"type": "conv", "shape": [1, 6, 5]},
        {"type": "conv", "shape": [1, 0, 5, 5]},
        {"type": "dropout", "p": 1.5},
        {"type": "maxpool"},
        {"type": "relu", "name": "3x"},
        {"type": "conv", "shape": [1, 6, 5, 5], "padding": "full"},
    ],
)
def test_schema_refuses_what_the_checker_refuses(validator, layer: dict, tmp_path: Path) -> None:
    from cnnforge.spec import Source, validate

    spec = {"name": "s", "input": [1, 32, 32], "layers": [layer]}
    assert not validator.is_valid(spec)
    assert validate(Source(spec)).spec is None


def test_parameter_references_validate(validator) -> None:
    spec = {
        "name": "s",
        "params": {"k": 3},
        "input": [1, 8, 8],
        "layers": [{"type": "conv", "shape": [1, 4, "${k}", 3]}],
    }
    assert validator.is_valid(spec)
    spec["layers"][0]["shape"][2] = "3"
    assert not validator.is_valid(spec)


# --- the schema is standard JSON Schema, and real clients read it as the checker does ---------------------------

# Every keyword of JSON Schema draft 2020-12 (core, applicator, validation, unevaluated, format, content,
# meta-data): a validator in strict mode (ajv's default) refuses any other, such as OpenAPI's `discriminator`.
DRAFT_2020_12 = frozenset(
    """$schema $id $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
    allOf anyOf oneOf not if then else dependentSchemas prefixItems items contains properties patternProperties
    additionalProperties propertyNames unevaluatedItems unevaluatedProperties type const enum multipleOf maximum
    exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern maxItems minItems uniqueItems maxContains
    minContains maxProperties minProperties required dependentRequired format contentEncoding contentMediaType
    contentSchema title description default deprecated readOnly writeOnly examples""".split()
)
NAMES = ("properties", "patternProperties", "$defs", "dependentSchemas")  # their keys are names, not keywords
VALUES = ("const", "enum", "default", "examples", "required", "dependentRequired")  # their contents are data


def _keywords(node: object) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_keywords(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in NAMES:
            found |= set().union(*(_keywords(sub) for sub in value.values()))
        elif key not in VALUES:
            found |= _keywords(value)
    return found


def test_the_schema_uses_only_draft_2020_12_keywords() -> None:
    schema = json.loads((ROOT / "cnnforge" / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert _keywords(schema) <= DRAFT_2020_12, _keywords(schema) - DRAFT_2020_12


def _types(node: object) -> list[object]:
    if isinstance(node, list):
        return [t for item in node for t in _types(item)]
    if not isinstance(node, dict):
        return []
    found = [node["type"]] if isinstance(node.get("type"), (str, list)) else []
    return found + [t for key, value in node.items() if key not in VALUES for t in _types(value)]


def test_the_schema_names_one_type_at_a_time() -> None:
    """ajv in strict mode refuses `type: [integer, string]` (strictTypes): alternatives are anyOf or if/then."""
    schema = json.loads((ROOT / "cnnforge" / "schema.json").read_text())
    assert all(isinstance(t, str) for t in _types(schema))


def _check_jsonschema(files: list[Path]) -> dict[str, list[str]]:
    """check-jsonschema's messages per file name, for `files` validated against the shipped schema."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "-o",
            "json",
            "--schemafile",
            ROOT / "cnnforge" / "schema.json",
            *files,
        ],
        capture_output=True,
        text=True,
    )
    report = json.loads(run.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    assert run.returncode == (0 if report["status"] == "ok" else 1), run.stderr
    found: dict[str, list[str]] = {str(f): [] for f in files}
    for error in report.get("errors", []):
        found[error["filename"]].append(f"{error['path']}: {error['message']}")
    return found


def test_check_jsonschema_passes_every_shipped_and_readme_spec(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS, re.S)
    examples = [block for block in blocks if "layers" in (parse(block).data or {})]
    assert examples
    for i, block in enumerate(examples):
        (tmp_path / f"readme{i}.yaml").write_text(block)
    files = [*SPECS, *sorted(tmp_path.glob("*.yaml"))]
    assert _check_jsonschema(files) == {str(f): [] for f in files}


HEAD = "name: t\ninput: [1, 8, 8]\n"
MISTAKES = {  # YAML text -> a word that check-jsonschema's message has to hold
    "strides": HEAD + "layers:\n  - {type: conv, shape: [1, 2, 3, 3], strides: 2}\n",
    "wrong_type": HEAD + "layers:\n  - {type: dropout, p: high}\n",
    "negative_size": HEAD + "layers:\n  - {type: conv, shape: [1, -2, 3, 3]}\n",
    "huge_size": "name: t\ninput: [1, 8, 2147483648]\nlayers:\n  - {type: relu}\n",
    "unknown_type": HEAD + "layers:\n  - {type: covn, shape: [1, 2, 3, 3]}\n",
    "no_type": HEAD + "layers:\n  - {shape: [1, 2, 3, 3]}\n",
    "parameter_type": "name: t\nparams: {act: relu}\ninput: [1, 8, 8]\nlayers:\n  - {type: '${act}'}\n",
    "parameter_layer_name": "name: t\nparams: {n: a}\ninput: [1, 8, 8]\nlayers:\n  - {type: relu, name: '${n}'}\n",
    "parameter_name": "name: '${n}'\nparams: {n: a}\ninput: [1, 8, 8]\nlayers:\n  - {type: relu}\n",
    "parameter_description": HEAD + "params: {d: a}\ndescription: '${d}'\nlayers:\n  - {type: relu}\n",
    "parameter_name_bad": HEAD + "params: {1x: 3}\nlayers:\n  - {type: relu}\n",
    "underscore": HEAD + "layers:\n  - {type: flatten}\n  - {type: linear, shape: [64, 1_0]}\n",
    "padding_mode": HEAD + "layers:\n  - {type: conv, shape: [1, 2, 3, 3], padding_mode: mirror}\n",
    "infinite": HEAD + "layers:\n  - {type: batchnorm, eps: .inf}\n",
    "negative_infinite": HEAD + "layers:\n  - {type: leaky_relu, negative_slope: -.inf}\n",
}
WORDS = {"strides": "'strides' was unexpected", "unknown_type": "'covn' is not one of", "underscore": "'1_0'"}
# check-jsonschema reads YAML with ruamel.yaml, which still reads 1_0 as 10 as YAML 1.1 did; YAML 1.2 core, which
# cnnforge and editors follow, reads a string. So check-jsonschema gets that one as the JSON of what editors read.
AS_JSON = {"underscore"}


def test_mistakes_are_refused_by_check_jsonschema_and_check_alike(tmp_path: Path) -> None:
    from cnnforge.spec import read_text

    files = {}
    for name, text in MISTAKES.items():
        assert read_text(text).spec is None, name
        files[name] = tmp_path / f"{name}.yaml"
        if name in AS_JSON:
            files[name] = files[name].with_suffix(".json")
            files[name].write_text(json.dumps(parse(text).data))
        else:
            files[name].write_text(text)
    found = _check_jsonschema(list(files.values()))
    for name, file in files.items():
        assert found[str(file)], f"check-jsonschema accepts {name}"
        assert WORDS.get(name, "") in " ".join(found[str(file)]), found[str(file)]
    assert "type" not in " ".join(found[str(files["strides"])]).replace("'strides'", "")  # no other kind's name


PARAMETER_PLACES = {  # where a parameter may stand, and what it is bound to
    "shape item": ("{n: 2}", "{type: conv, shape: [1, '${n}', 3, 3]}"),
    "stride": ("{n: 2}", "{type: conv, shape: [1, 2, 3, 3], stride: '${n}'}"),
    "padding word": ("{n: same}", "{type: conv, shape: [1, 2, 3, 3], padding: '${n}'}"),
    "padding_mode": ("{n: reflect}", "{type: conv, shape: [1, 2, 3, 3], padding: 1, padding_mode: '${n}'}"),
    "bias": ("{n: false}", "{type: conv, shape: [1, 2, 3, 3], bias: '${n}'}"),
    "probability": ("{n: 0.25}", "{type: dropout, p: '${n}'}"),
    "momentum": ("{n: 0.5}", "{type: batchnorm, momentum: '${n}'}"),
}


def test_parameters_stand_where_both_schema_and_check_accept_them(validator, tmp_path: Path) -> None:
    from cnnforge.spec import read_text

    files = []
    for place, (params, layer) in PARAMETER_PLACES.items():
        text = f"name: t\nparams: {params}\ninput: [1, 8, 8]\nlayers:\n  - {layer}\n"
        assert read_text(text).spec is not None, place
        assert validator.is_valid(parse(text).data), place
        files.append(tmp_path / f"{place.replace(' ', '_')}.yaml")
        files[-1].write_text(text)
    assert _check_jsonschema(files) == {str(f): [] for f in files}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("parameter_type", "type"),
        ("parameter_layer_name", "name"),
        ("parameter_name", "name"),
        ("parameter_description", "description"),
    ],
)
def test_parameters_cannot_stand_for_type_or_names(validator, name: str, key: str) -> None:
    from cnnforge.spec import read_text

    text = MISTAKES[name]
    (diagnostic,) = read_text(text, "s.yaml").diagnostics
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "${" in row and not row.startswith("params"))
    assert (diagnostic.line, diagnostic.message.split(" (")[0]) == (line, f"'{key}' cannot be a parameter")
    assert not validator.is_valid(parse(text).data)


# --- the graph: blocks, branches, sequences, repeats ------------------------------------------------------------

DENSE = """\
name: dense
params: {growth: 32}
input: [64, 56, 56]
blocks:
  denselayer:                  # torchvision's _DenseLayer
    params: {in: 64, growth: 32, bn_size: 4}
    layers:
      - type: concat
        branches:
          input: []
          new:
            - {type: batchnorm, name: norm1}
            - {type: relu, name: relu1}
            - {type: conv, name: conv1, shape: ['${in}', '${bn_size * growth}', 1, 1], bias: false}
            - {type: batchnorm, name: norm2}
            - {type: relu, name: relu2}
            - {type: conv, name: conv2, shape: ['${bn_size * growth}', '${growth}', 3, 3], padding: 1, bias: false}
layers:
  - {type: denselayer, name: denseblock1, repeat: 6, in: '${64 + index * growth}'}
"""
TWO = "name: t\ninput: [2, 8, 8]\n"
BLOCK = TWO + "blocks:\n  b:\n    params: {c: 2}\n    layers:\n"  # a block, then its layers at 6 spaces
GRAPH_ACCEPTED = {
    "dense": DENSE,
    "repeat_first_when": TWO + "params: {deep: true}\nlayers:\n"
    "  - {type: conv, name: c, shape: [2, 2, 3, 3], padding: 1, repeat: 3, first: {stride: 2}, when: '${deep}'}\n"
    "  - {type: conv, shape: ['${2 + 2}', 4, 1, 1], bias: '${1 < 2}', repeat: '${1 + 1}',"
    " first: {shape: [2, 4, 1, 1]}}\n"
    "  - {type: relu, when: 0}\n",
    "sequence_and_merges": TWO + "layers:\n"
    "  - type: sequence\n    name: stem\n    repeat: 2\n    first: {layers: [{type: tanh}]}\n    layers:\n"
    "      - type: multiply\n        branches:\n          x: []\n          gate: [{type: sigmoid}]\n"
    "  - {type: add, name: sum, branches: {a: [{type: relu}], b: [], c: [{type: tanh}]}}\n"
    "  - {type: concat, branches: {only: [{type: relu}]}}\n",
    "block_arguments": TWO + "blocks:\n  b:\n    description: a block with every kind of argument\n"
    "    params: {c: 2, k: 3, pad: same, shape: [2, 2, 1, 1]}\n    layers:\n"
    "      - {type: conv, shape: ['${c}', '${c}', '${k}', '${k}'], padding: '${pad}'}\n"
    "      - {type: conv, shape: '${shape}'}\n"
    "layers:\n  - {type: b, name: one, k: 1, pad: 0}\n  - {type: b, shape: [2, 2, 3, 3], repeat: 2, first: {c: 2}}\n",
    "optional_branch": TWO + "params: {stride: 2}\nlayers:\n  - type: add\n    branches:\n"
    "      body: [{type: conv, shape: [2, 2, 3, 3], padding: 1, stride: '${stride}'}]\n"
    "      shortcut: {when: '${stride == 1}', layers: []}\n",
}
GRAPH_MISTAKES = {  # YAML text -> (the path, and a word of the message, that check-jsonschema gives)
    "branch_conv_unknown_key": (
        BLOCK + "      - type: add\n        branches:\n"
        "          x: [{type: conv, shape: [2, 2, 3, 3], padding: 1, strides: 1}]\n          y: []\n"
        "layers:\n  - {type: b}\n",
        "$.blocks.b.layers[0].branches.x[0]",
        "'strides' was unexpected",
    ),
    "optional_branch_unknown_key": (
        TWO + "layers:\n  - {type: add, branches: {a: [], b: {layers: [], if: true}}}\n",
        "$.layers[0].branches.b",
        "'if' was unexpected",
    ),
    "branches_not_a_mapping": (
        TWO + "layers:\n  - {type: add, branches: [[], [{type: relu}]]}\n",
        "$.layers[0].branches",
        "is not of type 'object'",
    ),
    "repeat_negative": (TWO + "layers:\n  - {type: relu, repeat: -1}\n", "$.layers[0].repeat", "minimum of 1"),
    "sequence_strides": (
        TWO + "layers:\n  - type: sequence\n    name: s\n    layers:\n      - {type: maxpool, kernel: 2, strides: 2}\n",
        "$.layers[0].layers[0]",
        "'strides' was unexpected",
    ),
    "add_one_branch": (
        TWO + "layers:\n  - {type: add, branches: {a: [{type: relu}]}}\n",
        "$.layers[0].branches",
        "enough properties",
    ),
    "merge_unknown_key": (
        TWO + "layers:\n  - {type: concat, branch: {a: []}}\n",
        "$.layers[0]",
        "'branches' is a required property",
    ),
    "sequence_without_layers": (TWO + "layers:\n  - {type: sequence, name: s}\n", "$.layers[0]", "'layers'"),
    "first_without_repeat": (
        TWO + "layers:\n  - {type: relu, first: {}}\n",
        "$.layers[0]",
        "'repeat' is a dependency of 'first'",
    ),
    "first_changes_name": (
        TWO + "layers:\n  - {type: relu, repeat: 2, first: {name: r}}\n",
        "$.layers[0].first",
        "'name' was unexpected",
    ),
    "first_typo": (
        TWO + "layers:\n  - {type: maxpool, kernel: 2, repeat: 2, first: {strid: 1}}\n",
        "$.layers[0].first",
        "'strid' was unexpected",
    ),
    "when_word": (TWO + "layers:\n  - {type: relu, when: sometimes}\n", "$.layers[0].when", "does not match"),
    "unknown_type_without_blocks": (
        TWO + "layers:\n  - {type: basic, in: 64}\n",
        "$.layers[0].type",
        "'basic' is not one of",
    ),
    "type_expression_with_blocks": (
        BLOCK + "      - {type: relu}\nlayers:\n  - {type: '${c}'}\n",
        "$.layers[0].type",
        "should not be valid",
    ),
    "block_named_like_a_kind": (
        TWO + "blocks:\n  conv:\n    layers: [{type: relu}]\nlayers:\n  - {type: conv, shape: [2, 2, 1, 1]}\n",
        "$.blocks",
        "'conv'",
    ),
    "block_key_typo": (
        TWO + "blocks:\n  b:\n    layer: [{type: relu}]\nlayers:\n  - {type: b}\n",
        "$.blocks.b",
        "'layers' is a required property",
    ),
    "block_parameter_repeat": (
        TWO + "blocks:\n  b:\n    params: {repeat: 2}\n    layers: [{type: relu}]\nlayers:\n  - {type: b}\n",
        "$.blocks.b.params",
        "'repeat'",
    ),
    "block_without_layers": (
        TWO + "blocks:\n  b:\n    params: {c: 2}\n    layers: []\nlayers:\n  - {type: b}\n",
        "$.blocks.b.layers",
        "should be non-empty",
    ),
}


def test_graph_specs_pass_check_jsonschema_and_check_alike(validator, tmp_path: Path) -> None:
    from cnnforge import compile_spec
    from cnnforge.spec import read_text

    files = []
    for name, text in GRAPH_ACCEPTED.items():
        loaded = read_text(text, name)
        assert loaded.spec is not None, loaded.diagnostics
        assert compile_spec(loaded.spec).ok, name
        assert validator.is_valid(parse(text).data), name
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(text)
    assert _check_jsonschema(files) == {str(f): [] for f in files}


def test_graph_mistakes_are_refused_by_check_jsonschema_and_check_alike(tmp_path: Path) -> None:
    from cnnforge.spec import read_text

    files = {}
    for name, (text, _, _) in GRAPH_MISTAKES.items():
        assert read_text(text).spec is None, name
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    found = _check_jsonschema(list(files.values()))
    for name, (_, path, word) in GRAPH_MISTAKES.items():
        messages = found[str(files[name])]
        assert any(m.startswith(f"{path}: ") and word in m for m in messages), (name, messages)


def test_a_kind_registered_now_is_an_entry_everywhere(validator) -> None:
    from typing import Literal

    from cnnforge.layers import Layer, register
    from cnnforge.layers.fields import Size

    class Shuffle(Layer):
        """Channel shuffle in groups."""

        type: Literal["shuffle"]
        groups: Size
        """How many groups."""

    register(Shuffle)
    try:
        schema = jsonschema.Draft202012Validator(json_schema())
    finally:
        del LAYERS["shuffle"]
    layers = [{"type": "add", "branches": {"a": [{"type": "shuffle", "groups": 2, "repeat": 2}], "b": []}}]
    spec = {"name": "s", "input": [4, 8, 8], "layers": layers}
    assert schema.is_valid(spec)
    assert not validator.is_valid(spec)  # the schema of the kinds registered before
    layers[0]["branches"]["a"][0]["group"] = 2
    assert [e.message for e in schema.iter_errors(spec)] == [
        "Additional properties are not allowed ('group' was unexpected)"
    ]
