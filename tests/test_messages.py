"""Messages that teach: each says what to write instead, and the fix it suggests is one the checker accepts.
Every test states the exact line a user sees, and that no knock-on error follows it."""

from __future__ import annotations

import copy
import json
import re

import pytest
import strategies
import torch
import yaml
from agreement import compile_dict
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_errors import HEAD, at
from torch_oracle import run

from cnnforge.layers import LAYERS
from cnnforge.layers.foreign import KEYS, TYPES

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


@pytest.mark.parametrize(
    "layer",
    ["  - {type: conv, shape: [1, ${w}, 3, 3]}\n", "  - {type: conv, shape: [1, 8, 3, 3], groups: ${w}}\n"],
)
def test_an_unquoted_parameter_in_a_flow_says_to_quote_it(check, layer: str) -> None:
    text = "name: t\nparams: {w: 1}\ninput: [1, 8, 8]\nlayers:\n" + layer
    (line,) = check(text)
    assert line.startswith("spec.yaml:5:") and "invalid YAML: " in line
    assert line.endswith("; a parameter is written quoted, '${w}'")
    assert check(text.replace("${w}", "'${w}'")) == []  # and quoted it checks


def test_a_quoted_parameter_gets_no_such_hint(check) -> None:
    (line,) = check(HEAD + "  - {type: conv, shape: [1, '${w}', 3, 3]\n")  # unclosed, but quoted
    assert "written quoted" not in line


# --- layer types and keys as Keras and torch name them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Dense", "cnnforge calls it linear, with shape: [F_i, F_o] (Keras' units is F_o)"),
        ("dense", "cnnforge calls it linear, with shape: [F_i, F_o] (Keras' units is F_o)"),
        ("Conv2D", "cnnforge calls it conv: shape: [C_i, C_o, K_h, K_w] replaces filters (C_o) and kernel_size"),
        (
            "Conv2d",
            "cnnforge calls it conv: shape: [C_i, C_o, K_h, K_w] replaces in_channels, out_channels and kernel_size",
        ),
        (
            "MaxPooling2D",
            "cnnforge calls it maxpool, with kernel for pool_size (the stride defaults to the kernel, as in Keras)",
        ),
        (
            "GlobalAveragePooling2D",
            "cnnforge calls it adaptive_avgpool, with output: 1, then {type: flatten} (Keras' layer does both)",
        ),
        (
            "BatchNormalization",
            "cnnforge calls it batchnorm, with eps for epsilon; its momentum is 1 minus Keras' (0.99 is 0.01)",
        ),
        (
            "Activation",
            "cnnforge gives each activation a type of its own: relu, relu6, tanh, sigmoid, hardsigmoid, gelu, "
            "silu, hardswish, elu, leaky_relu or softmax",
        ),
        ("ReLU", "cnnforge calls it relu"),
        (
            "LayerNorm2d",
            "cnnforge calls it layernorm, which on [C, H, W] normalises the channels at each position, "
            "as LayerNorm2d does",
        ),
        ("StochasticDepth", "cnnforge calls it stochastic_depth, with p and mode (row or batch) as torchvision's"),
        ("ChannelShuffle", "cnnforge calls it channel_shuffle, with groups"),
    ],
)
def test_foreign_layer_types_exactly(check, written: str, expected: str) -> None:
    text = HEAD + f"  - {{type: {written}, units: 10}}\n"  # the layer's other keys are not judged under a wrong type
    assert check(text) == [
        f"{at(text, 'type')}: error: layer 0 '{written}0' ({written}): unknown layer type '{written}': {expected}"
    ]


# What a user writes after each message: the layer, on a [1, 32, 32] input, after a flatten where it needs features.
FOLLOWED = {
    "Dense": "[flatten, {type: linear, shape: [1024, 10]}]",
    "Linear": "[flatten, {type: linear, shape: [1024, 10]}]",
    "Conv2D": "[{type: conv, shape: [1, 6, 5, 5]}]",
    "Conv2d": "[{type: conv, shape: [1, 6, 5, 5]}]",
    "MaxPooling2D": "[{type: maxpool, kernel: 2}]",
    "MaxPool2D": "[{type: maxpool, kernel: 2}]",
    "MaxPool2d": "[{type: maxpool, kernel: 2}]",
    "AveragePooling2D": "[{type: avgpool, kernel: 2}]",
    "AvgPool2D": "[{type: avgpool, kernel: 2}]",
    "AvgPool2d": "[{type: avgpool, kernel: 2}]",
    "GlobalAveragePooling2D": "[{type: adaptive_avgpool, output: 1}, flatten]",
    "GlobalAvgPool2D": "[{type: adaptive_avgpool, output: 1}, flatten]",
    "GlobalMaxPooling2D": "[{type: adaptive_maxpool, output: 1}, flatten]",
    "GlobalMaxPool2D": "[{type: adaptive_maxpool, output: 1}, flatten]",
    "AdaptiveAvgPool2d": "[{type: adaptive_avgpool, output: 1}]",
    "AdaptiveMaxPool2d": "[{type: adaptive_maxpool, output: 1}]",
    "BatchNormalization": "[{type: batchnorm, eps: 0.001, momentum: 0.01}]",
    "BatchNorm2d": "[{type: batchnorm, channels: 1}]",
    "BatchNorm1d": "[flatten, {type: batchnorm, channels: 1024}]",
    "LayerNorm2d": "[{type: layernorm, eps: 1e-6}]",
    "LayerNormalization": "[{type: layernorm, eps: 0.001}]",
    "LocalResponseNorm": "[{type: lrn, size: 5}]",
    "StochasticDepth": "[{type: stochastic_depth, p: 0.1, mode: row}]",
    "ChannelShuffle": "[{type: channel_shuffle, groups: 1}]",
    "Dropout": "[{type: dropout, p: 0.2}]",
    "Flatten": "[flatten]",
    "ReLU": "[relu]",
    "LeakyReLU": "[{type: leaky_relu, negative_slope: 0.3}]",
    "Softmax": "[flatten, softmax]",
    "Activation": "[relu, relu6, tanh, sigmoid, hardsigmoid, gelu, silu, hardswish, elu, leaky_relu, softmax]",
    "InputLayer": "[relu]",
    "Input": "[relu]",
}


def test_every_foreign_type_has_a_followed_example() -> None:
    assert set(FOLLOWED) == set(TYPES)


@pytest.mark.parametrize("written", sorted(TYPES))
def test_following_a_foreign_type_message_gives_a_spec_that_checks(check, written: str) -> None:
    kind, _ = TYPES[written]
    layers = [item if "{" in item else f"{{type: {item}}}" for item in _items(FOLLOWED[written])]
    assert kind is None or any(f"type: {kind}," in item or item == f"{{type: {kind}}}" for item in layers)
    assert check("name: t\ninput: [1, 32, 32]\nlayers:\n" + "".join(f"  - {item}\n" for item in layers)) == []


def _items(flow: str) -> list[str]:
    """The items of a one-level YAML flow list whose items are words or {...} mappings."""
    items, depth, start = [], 0, 1
    for i, c in enumerate(flow[1:-1], 1):
        depth += (c == "{") - (c == "}")
        if c == "," and depth == 0:
            items.append(flow[start:i].strip())
            start = i + 1
    return [*items, flow[start:-1].strip()]


@pytest.mark.parametrize("written", sorted(name for name in TYPES if hasattr(torch.nn, name)))
def test_torch_names_map_to_the_kind_that_builds_that_module(written: str) -> None:
    """torch is the oracle: the kind cnnforge names for torch's class builds that very class."""
    kind, _ = TYPES[written]
    example = next(i for i in _items(FOLLOWED[written]) if f"type: {kind}" in i or i == kind)
    fields = {"type": kind, **_fields(example)}
    layer = LAYERS[kind].model_validate(fields)
    x = (1024,) if written.endswith("1d") or kind in ("linear", "softmax") else (1, 32, 32)
    assert type(layer.module(x)) is getattr(torch.nn, written)


def _fields(item: str) -> dict:
    """The keys of a layer written as a flow mapping or as its bare type, less its type."""
    value = yaml.safe_load(item)
    return {k: v for k, v in value.items() if k != "type"} if isinstance(value, dict) else {}


def _layer(kind: str, without: str | None, extra: str) -> str:
    """A one-layer flow mapping of `kind` with its required keys, less `without`, plus `extra`."""
    required = {"conv": "shape: [1, 6, 5, 5]", "linear": "shape: [1024, 10]", "lrn": "size: 5"}
    required |= {"channel_linear": "shape: [1, 6]", "stochastic_depth": "p: 0.1", "chunk": "chunks: 2, index: 0"}
    required |= dict.fromkeys(("maxpool", "avgpool", "minpool"), "kernel: 2")
    required |= dict.fromkeys(("adaptive_avgpool", "adaptive_maxpool"), "output: 1")
    keys = [k for k in [required.get(kind), extra] if k and not (without and k.startswith(without + ":"))]
    return "{" + ", ".join([f"type: {kind}", *keys]) + "}"


@pytest.mark.parametrize(("key", "kind"), [(key, kind) for key, kinds in KEYS.items() for kind in kinds])
def test_foreign_keys_say_what_cnnforge_uses_and_nothing_else(check, key: str, kind: str) -> None:
    """One line: the unknown key and what to write, with no 'missing required key' for the key it stands for."""
    stands_for, hint = KEYS[key][kind]
    text = HEAD + f"  - {_layer(kind, stands_for, f'{key}: 2')}\n"
    assert check(text) == [f"{at(text, key + ':')}: error: layer 0 '{kind}0' ({kind}): unknown key '{key}' ({hint})"]
    assert stands_for is None or stands_for in LAYERS[kind].model_fields


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (
            "{type: linear, units: 10}",
            "unknown key 'units' (linear gives its features as shape: [F_i, F_o]; Keras' units is F_o)",
        ),
        (
            "{type: conv, filters: 6, kernel_size: 5}",
            "unknown key 'filters' (conv gives its channels and kernel as "
            "shape: [C_i, C_o, K_h, K_w]; Keras' filters is C_o)",
        ),
        ("{type: maxpool, pool_size: 2}", "unknown key 'pool_size' (did you mean 'kernel'?)"),
        ("{type: dropout, rate: 0.5}", "unknown key 'rate' (did you mean 'p'?)"),
        ("{type: layernorm, elementwise_affine: false}", "unknown key 'elementwise_affine' (did you mean 'affine'?)"),
        ("{type: layernorm, normalized_shape: 96}", "unknown key 'normalized_shape' (did you mean 'channels'?)"),
        (
            "{type: channel_linear, in_features: 96, out_features: 384}",
            "unknown key 'in_features' (channel_linear gives its channels as shape: [C_i, C_o])",
        ),
        (
            "{type: chunk, chunks: 2, index: 0, dim: 1}",
            "unknown key 'dim' (chunk always splits the channels, torch.chunk's dim=1)",
        ),
        ("{type: maxpool, kernal: 2}", "unknown key 'kernal' (did you mean 'kernel'?)"),  # a typo, from difflib
        (
            "{type: conv, shape: [1, 6, 5, 5], activation: relu}",
            "unknown key 'activation' (cnnforge makes an "
            "activation a layer of its own, such as {type: relu} after this one)",
        ),
    ],
)
def test_foreign_keys_exactly(check, layer: str, expected: str) -> None:
    lines = check(HEAD + f"  - {layer}\n")
    assert lines[0].endswith(f": {expected}")
    assert not any("missing required key" in line for line in lines)


# --- an empty output says what would fit -------------------------------------------------------------------------

SIZES = "`cnnforge sizes FILE` lists the input sizes the spec accepts"


@pytest.mark.parametrize(
    ("input", "layer", "expected"),
    [
        (
            "[1, 4, 4]",
            "{type: conv, shape: [1, 6, 5, 5]}",
            "the kernel spans [5, 5] but the input [1, 4, 4] is only [4, 4] with padding, so the output would be "
            "empty (computed size [0, 0]); padding: 1 (giving 2x2), a 4x4 kernel (giving 1x1) or an input of at "
            f"least 5x5 (giving 1x1) would fit; {SIZES}",
        ),
        (
            "[1, 32, 4]",
            "{type: conv, shape: [1, 6, 5, 5]}",
            "the kernel spans [5, 5] but the input [1, 32, 4] is only [32, 4] with padding, so the output would be "
            "empty (computed size [28, 0]); padding: [0, 1] (giving 28x2), a 5x4 kernel (giving 28x1) or an input "
            f"of at least 5x5 (giving 1x1) would fit; {SIZES}",
        ),
        (
            "[1, 8, 8]",
            "{type: conv, shape: [1, 6, 3, 3], dilation: 5}",
            "a dilated window spans [11, 11] but the input [1, 8, 8] is only [8, 8] with padding, so the output "
            "would be empty (computed size [-2, -2]); padding: 2 (giving 2x2), a 2x2 kernel (giving 3x3), "
            f"dilation: 3 (giving 2x2) or an input of at least 11x11 (giving 1x1) would fit; {SIZES}",
        ),
        (  # a pool's padding is at most half its kernel, 1 here; its stride follows the kernel, to 1
            "[1, 2, 2]",
            "{type: maxpool, kernel: 3, dilation: 3}",
            "a dilated window spans [7, 7] but the input [1, 2, 2] is only [2, 2] with padding, so the output would "
            f"be empty (computed size [-1, -1]); a 1x1 kernel (giving 2x2) or an input of at least 7x7 (giving 1x1) "
            f"would fit; {SIZES}",
        ),
        (  # reflect padding must stay smaller than the input: the input grows to 3x3, not to the 2x2 that fits
            "[1, 2, 2]",
            "{type: conv, shape: [1, 1, 7, 7], padding: 2, padding_mode: reflect}",
            "the kernel spans [7, 7] but the input [1, 2, 2] is only [6, 6] with padding, so the output would be "
            f"empty (computed size [0, 0]); an input of at least 3x3 (giving 1x1) would fit; {SIZES}",
        ),
    ],
)
def test_empty_output_exactly(check, input: str, layer: str, expected: str) -> None:
    text = f"name: t\ninput: {input}\nlayers:\n  - {layer}\n"
    kind = layer.split(",")[0].removeprefix("{type: ")
    assert [line for line in check(text) if "empty" in line] == [
        f"spec.yaml:4:5: error: layer 0 '{kind}0' ({kind}): {expected}"
    ]


FIXES = re.compile(
    r"(padding|dilation): (\d+|\[\d+, \d+\]) \(giving (\d+)x(\d+)\)"
    r"|a (\d+)x(\d+) kernel \(giving (\d+)x(\d+)\)"
    r"|an input of at least (\d+)x(\d+) \(giving (\d+)x(\d+)\)"
)


def _followed(spec: dict, fix: re.Match) -> tuple[dict, tuple[int, int]]:
    """The one-layer `spec` with the fix the message names, and the output size the message says it gives."""
    spec = copy.deepcopy(spec)
    layer, numbers = spec["layers"][0], [int(n) for n in fix.groups() if n and n.isdigit()]
    if fix.group(1):
        layer[fix.group(1)] = json.loads(fix.group(2))
    elif fix.group(5) and layer["type"] == "conv":
        layer["shape"][2:] = numbers[:2]
    elif fix.group(5):
        layer["kernel"] = numbers[:2]
    else:
        spec["input"][1:] = numbers[:2]
    return spec, (numbers[-2], numbers[-1])


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_every_fix_an_empty_output_names_checks_and_torch_agrees(data: st.DataObject) -> None:
    """A conv or pool on a small input: where its output would be empty, each fix named is accepted by the checker
    with the output size the message says, and torch builds and runs it with that size."""
    shape = [1, data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))]
    kind = data.draw(st.sampled_from(["conv", "maxpool", "avgpool", "minpool"]))
    layer = data.draw(strategies.conv(tuple(shape)) if kind == "conv" else strategies.pool(kind))
    spec = {"name": "t", "input": shape, "layers": [layer]}
    errors = [str(d) for d in compile_dict(spec).diagnostics if d.severity == "error"]
    assume(len(errors) == 1 and "would be empty" in errors[0])  # the layer is wrong in this way alone
    fixes = list(FIXES.finditer(errors[0].split("would be empty")[1]))
    assert fixes, errors[0]  # a bigger input fits any window that has no other error
    for fix in fixes:
        followed, giving = _followed(spec, fix)
        compiled = compile_dict(followed)
        assert compiled.ok, (fix.group(), [str(d) for d in compiled.diagnostics])
        assert compiled.output[1:] == giving, fix.group()
        ran = run(followed)
        assert ran.ok and ran.shapes[-1][1:] == giving, (fix.group(), ran.error)


# --- an input written channels last -------------------------------------------------------------------------------

CHANNELS_LAST = (
    "name: t\n"
    "input: [32, 32, 3]\n"
    "layers:\n"
    "  - {type: conv, shape: [3, 6, 5, 5]}\n"
    "  - {type: relu}\n"
    "  - {type: maxpool, kernel: 2}\n"
    "  - {type: flatten}\n"
    "  - {type: linear, shape: [1176, 10]}\n"
)


def test_channels_last_input_is_named_once_with_the_fix(check) -> None:
    assert check(CHANNELS_LAST) == [
        "spec.yaml:2:1: error: input is [C, H, W]: did you mean [3, 32, 32]? Layer 0 'conv0' takes 3 channels, "
        "the last number of [32, 32, 3]; the layers are checked as if the input were [3, 32, 32]"
    ]


def test_the_guessed_input_checks_and_torch_runs_it(check) -> None:
    fixed = CHANNELS_LAST.replace("[32, 32, 3]", "[3, 32, 32]")
    assert check(fixed) == []
    ran = run(yaml.safe_load(fixed))
    assert ran.ok and ran.shapes[-1] == (10,)
    assert not run(yaml.safe_load(CHANNELS_LAST)).ok  # and torch refuses the input as written


def test_later_layers_are_checked_with_the_guessed_input(check) -> None:
    text = CHANNELS_LAST.replace("[1176, 10]", "[1000, 10]")
    assert check(text)[1:] == [
        f"{at(text, '{type: linear')}: error: layer 4 'linear4' (linear): "
        "shape says F_i=1000 but the incoming tensor has 1176 features"
    ]


@pytest.mark.parametrize(
    ("input", "layers", "guess", "taker"),
    [
        (
            "[28, 28, 1]",
            "[{type: batchnorm, channels: 1}, {type: relu}]",
            "[1, 28, 28]",
            "layer 0 'batchnorm0' takes 1",
        ),
        (
            "[224, 160, 3]",
            "[{type: relu}, {type: dropout}, {type: conv, shape: [3, 8, 3, 3]}]",
            "[3, 224, 160]",
            "layer 2 'conv2'",
        ),
        (
            "[32, 32, 3]",
            "[{type: maxpool, kernel: 2}, {type: conv, shape: [3, 8, 3, 3], name: c}]",
            "[3, 32, 32]",
            "layer 1 'c' takes 3",
        ),
    ],
)
def test_channels_last_behind_layers_that_keep_channels(check, input: str, layers: str, guess: str, taker: str):
    lines = check(f"name: t\ninput: {input}\nlayers: {layers}\n")
    assert len(lines) == 1
    assert lines[0].startswith(f"spec.yaml:2:1: error: input is [C, H, W]: did you mean {guess}? ")
    assert taker.capitalize() in lines[0]


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "  - {type: conv, shape: [32, 6, 1, 1]}\n",  # C_i is the typo
        "name: t\ninput: [64, 32, 32]\nlayers:\n  - {type: conv, shape: [32, 6, 1, 1]}\n",  # a square map as written
        "name: t\ninput: [3, 3, 1]\nlayers:\n  - {type: conv, shape: [1, 6, 5, 5]}\n",  # still empty with [1, 3, 3]
        "name: t\ninput: [32, 32, 3]\nlayers:\n  - {type: flatten}\n  - {type: linear, shape: [3, 10]}\n",
    ],
)
def test_no_guess_where_the_input_does_not_look_channels_last(check, text: str) -> None:
    assert not any("did you mean [" in line for line in check(text))
