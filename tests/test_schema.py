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
from cnnforge.spec.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
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
    kinds = schema["properties"]["layers"]["items"]["discriminator"]["mapping"]
    assert set(kinds) == set(LAYERS)
    for kind, ref in kinds.items():
        layer = schema["$defs"][ref.rsplit("/", 1)[1]]
        assert layer["description"], kind
        for field, spec in layer["properties"].items():
            assert spec.get("description"), f"{kind}.{field}"
    for field, spec in schema["properties"].items():
        assert spec.get("description"), field


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_validate_and_point_editors_at_the_schema(validator, path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=../schema.json"
    assert (path.parent / "../schema.json").resolve() == (ROOT / "cnnforge" / "schema.json").resolve()
    validator.validate(parse(text).data)  # YAML 1.2, as editors read it: 1e-4 is a number


def test_readme_yaml_examples_validate(validator) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
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
