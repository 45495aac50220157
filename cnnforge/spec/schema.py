"""The JSON Schema of the spec format, generated from the pydantic models, for editors and other tools."""

from __future__ import annotations

import json
import sys
from typing import Any

from .model import spec_model
from .params import REFERENCE, STRUCTURAL

PARAMETER = {
    "type": "string",
    "pattern": REFERENCE.pattern,
    "description": "A parameter declared under `params`, e.g. '${classes}'; quote it in YAML flow style.",
}
NOT_A_PARAMETER = {"not": {"$ref": "#/$defs/Parameter"}}


def json_schema() -> dict[str, Any]:
    """The schema of a spec file: every layer kind registered now, every field described, and '${name}'
    parameter references accepted wherever a number, true/false or one of a field's words is."""
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
    layers = schema["properties"]["layers"]
    layers["items"] = _layer_union(layers["items"])
    for key in STRUCTURAL & set(schema["properties"]):  # the network's name and description
        schema["properties"][key] |= NOT_A_PARAMETER
    schema["properties"]["params"]["anyOf"][0]["additionalProperties"] = False
    schema["$defs"]["Parameter"] = PARAMETER
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cnnforge spec", **schema}


def _layer_union(items: dict[str, Any]) -> dict[str, Any]:
    """Standard JSON Schema for the union pydantic describes with OpenAPI's `discriminator`: `type` names one
    of the kinds, and `if`/`then` on it sends a validator to that kind alone, so it reports the real mistake
    (`strides` unknown to conv) rather than the near miss of some other kind."""
    if "discriminator" not in items:  # one kind registered: a plain $ref
        return items
    kinds = items["discriminator"]["mapping"]
    return {
        "type": "object",
        "description": "One layer: its `type` says which kind, and the kind says which keys it takes.",
        "properties": {"type": {"description": "The layer kind.", "enum": sorted(kinds)}},
        "required": ["type"],
        "allOf": [
            {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]}, "then": {"$ref": ref}}
            for kind, ref in sorted(kinds.items())
        ],
    }


def _accept_parameters(node: Any, inside_params: bool) -> Any:
    if isinstance(node, list):
        return [_accept_parameters(item, inside_params) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "number":  # finite, as the checker reads them: no .inf
        node.setdefault("maximum", sys.float_info.max)
        if "exclusiveMinimum" not in node:
            node.setdefault("minimum", -sys.float_info.max)
    if not inside_params and (node.get("type") in ("integer", "number", "boolean") or "enum" in node):
        outer = {key: node.pop(key) for key in ("title", "description", "default") if key in node}
        return {**outer, "anyOf": [node, {"$ref": "#/$defs/Parameter"}]}
    node = {
        key: value if key == "params" else _accept_parameters(value, inside_params or key == "params")
        for key, value in node.items()
    }
    if "anyOf" in node:  # [{anyOf: [a, P]}, {anyOf: [b, P]}] -> [a, P, b]
        flat = [part for item in node["anyOf"] for part in (item["anyOf"] if list(item) == ["anyOf"] else [item])]
        node["anyOf"] = [part for i, part in enumerate(flat) if part not in flat[:i]]
    return node


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
