"""The JSON Schema of the spec format, generated from the pydantic models, for editors and other tools."""

from __future__ import annotations

import json
from typing import Any

from .model import spec_model
from .params import REFERENCE

PARAMETER = {
    "type": "string",
    "pattern": REFERENCE.pattern,
    "description": "A parameter declared under `params`, e.g. '${classes}'; quote it in YAML flow style.",
}


def json_schema() -> dict[str, Any]:
    """The schema of a spec file: every layer kind registered now, every field described, and '${name}'
    parameter references accepted wherever a number or true/false is."""
    schema = spec_model().model_json_schema()
    definitions = schema.setdefault("$defs", {})
    for layer in definitions.values():
        properties = layer.get("properties", {})
        if "type" in properties:
            kind = properties["type"]["const"]
            properties["type"]["description"] = f"The layer kind: {kind}."
        if "name" in properties:
            properties["name"]["description"] = properties["name"]["anyOf"][0].pop("description")
    schema = _accept_parameters(schema, inside_params=False)
    definitions = schema["$defs"]
    definitions["Parameter"] = PARAMETER
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cnnforge spec", **schema}


def _accept_parameters(node: Any, inside_params: bool) -> Any:
    if isinstance(node, list):
        return [_accept_parameters(item, inside_params) for item in node]
    if not isinstance(node, dict):
        return node
    if not inside_params and node.get("type") in ("integer", "number", "boolean"):
        outer = {key: node.pop(key) for key in ("title", "description", "default") if key in node}
        return {**outer, "anyOf": [node, {"$ref": "#/$defs/Parameter"}]}
    return {
        key: value if key == "params" else _accept_parameters(value, inside_params or key == "params")
        for key, value in node.items()
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
