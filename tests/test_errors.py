"""What `cnnforge check` says about a wrong spec: one `file:line:col: error: layer N 'name' (type): message`
line per problem, pointing at the offending layer or key. Spec files are written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnforge import check_file
from cnnforge.layers import LAYERS
from cnnforge.spec.read import MAX_REPORTED

ROOT = Path(__file__).resolve().parent.parent
HEAD = "name: t\ninput: [1, 32, 32]\nlayers:\n"  # layers start on line 4
KNOWN = ", ".join(sorted([*LAYERS, "add", "concat", "multiply", "sequence"]))


def at(text: str, needle: str, nth: int = 0) -> str:
    """`spec.yaml:line:col` of the nth occurrence of `needle` in `text`, after HEAD when `text` starts with it."""
    offset = (len(HEAD) if text.startswith(HEAD) else 0) - 1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    line = text.count("\n", 0, offset) + 1
    return f"spec.yaml:{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def test_lenet_channel_mismatch_exactly(check) -> None:
    lenet = (ROOT / "architectures" / "lenet.yaml").read_text()
    wrong = lenet.replace("{type: conv, shape: [6, 16, 5, 5]}", "{type: conv, shape: [16, 16, 5, 5]}")
    assert wrong != lenet
    # layer 3 is on line 7; conv0 gives [6, 28, 28] and the 2x2 average pool halves it to [6, 14, 14]
    assert check(wrong, "architectures/lenet.yaml") == [
        "architectures/lenet.yaml:8:5: error: layer 3 'conv3' (conv): "
        "shape says C_i=16 but the incoming tensor has 6 channels [6, 14, 14]"
    ]


@pytest.mark.parametrize("name", ["alexnet.yaml", "alexnet2012.yaml", "lenet.yaml"])
def test_shipped_specs_have_no_problems(check, name: str) -> None:
    assert check((ROOT / "architectures" / name).read_text()) == []


# --- layer types and keys -----------------------------------------------------------------------------------


def test_unknown_layer_type_points_at_the_type(check) -> None:
    text = HEAD + "  - {type: convv, shape: [1, 6, 5, 5]}\n"
    assert check(text) == [
        f"{at(text, 'type: convv')}: error: layer 0 'convv0' (convv): "
        f"unknown layer type 'convv' (did you mean 'conv'?); known types: {KNOWN}"
    ]


def test_unknown_layer_type_in_block_style(check) -> None:
    text = HEAD + "  - {type: relu}\n  - name: c\n    type: transformer\n"
    assert check(text) == [
        f"spec.yaml:6:5: error: layer 1 'c' (transformer): unknown layer type 'transformer'; known types: {KNOWN}"
    ]


@pytest.mark.parametrize(("value", "found"), [("3", "3"), ("[conv]", "['conv']"), ("{a: 1}", "{'a': 1}"), ("", "None")])
def test_layer_type_that_is_not_a_word(check, value: str, found: str) -> None:
    text = HEAD + f"  - {{type: {value}}}\n"
    assert check(text) == [
        f"{at(text, 'type')}: error: layer 0: 'type': expected the name of a layer type, found {found}; "
        f"known types: {KNOWN}"
    ]


def test_layer_type_is_case_sensitive(check) -> None:
    text = HEAD + "  - {type: Conv, shape: [1, 6, 5, 5]}\n"
    assert check(text) == [
        f"{at(text, 'type')}: error: layer 0 'Conv0' (Conv): unknown layer type 'Conv' (did you mean 'conv'?); "
        f"known types: {KNOWN}"
    ]


@pytest.mark.parametrize(
    ("layer", "key", "hint"),
    [
        ("{type: conv, shape: [1, 6, 5, 5], strides: 2}", "strides", " (did you mean 'stride'?)"),
        ("{type: conv, shape: [1, 6, 5, 5], padding_mod: reflect}", "padding_mod", " (did you mean 'padding_mode'?)"),
        ("{type: maxpool, kernal: 2}", "kernal", " (did you mean 'kernel'?)"),
        ("{type: relu, inplace: true}", "inplace", ""),
        ("{type: relu, 1: 2}", "1", ""),
    ],
)
def test_unknown_key_points_at_the_key(check, layer: str, key: str, hint: str) -> None:
    text = HEAD + f"  - {layer}\n"
    lines = check(text)
    kind = layer.split(",")[0].removeprefix("{type: ").rstrip("}")
    assert f"{at(text, key + ':')}: error: layer 0 '{kind}0' ({kind}): unknown key '{key}'{hint}" in lines


@pytest.mark.parametrize(
    ("layer", "hint"),
    [
        ("{type: covn, shape: [1, 6, 5, 5]}", "unknown layer type 'covn' (did you mean 'conv'?)"),
        ("{type: maxpol, kernel: 2}", "unknown layer type 'maxpol' (did you mean 'maxpool'?)"),
        ("{type: maxpool, kernal: 2}", "unknown key 'kernal' (did you mean 'kernel'?)"),
        ("{type: avgpool, kernel: 2, strid: 1}", "unknown key 'strid' (did you mean 'stride'?)"),
        ("{type: maxpool, kernel_size: 2}", "unknown key 'kernel_size' (did you mean 'kernel'?)"),
        ("{type: conv, kernal: 5}", "unknown key 'kernal' (conv gives its channels and kernel as shape: "),
        ("{type: conv, kernel_size: 5}", "unknown key 'kernel_size' (conv gives its channels and kernel as shape: "),
        ("{type: linear, in_features: 4}", "unknown key 'in_features' (linear gives its features as shape: "),
        ("{type: batchnorm, num_features: 4}", "unknown key 'num_features' (did you mean 'channels'?)"),
        ("{type: adaptive_avgpool, output_size: 1}", "unknown key 'output_size' (did you mean 'output'?)"),
        ("{tpye: relu}", f"missing required key 'type' (one of: {KNOWN}); found 'tpye' (did you mean 'type'?)"),
    ],
)
def test_near_misses_are_named(check, layer: str, hint: str) -> None:
    """Typos of layer types and keys, and torch's own argument names, get the key cnnforge uses."""
    assert any(hint in line for line in check(HEAD + f"  - {layer}\n")), hint


def test_unknown_key_in_block_style(check) -> None:
    text = HEAD + "  - type: conv\n    shape: [1, 6, 5, 5]\n    strides: 2\n"
    assert check(text) == [
        "spec.yaml:6:5: error: layer 0 'conv0' (conv): unknown key 'strides' (did you mean 'stride'?)"
    ]


def test_unknown_top_level_key(check) -> None:
    text = "name: t\ninput: [1, 32, 32]\nlayer:\n  - {type: relu}\n"
    assert sorted(check(text)) == [
        "spec.yaml:1:1: error: missing required key 'layers'",
        "spec.yaml:3:1: error: unknown key 'layer' (did you mean 'layers'?)",
    ]


def test_long_unknown_key_is_shortened(check) -> None:
    text = HEAD + "  - {type: relu}\n? " + "k" * 5000 + "\n: 1\n"
    (line,) = check(text)
    assert line.startswith("spec.yaml:5:3: error: unknown key 'kkkk")
    assert len(line) < 200


# --- wrong types: no coercion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "key", "found"),
    [
        ('{type: conv, shape: [1, 6, 5, 5], stride: "3"}', "stride", "'3'"),  # quoted numbers are strings
        ("{type: conv, shape: [1, 6, 5, 5], stride: 5.0}", "stride", "5.0"),  # 5.0 is not an int
        ("{type: conv, shape: [1, 6, 5, 5], stride: true}", "stride", "True"),  # nor is a bool
        ("{type: conv, shape: [1, '6', 5, 5]}", "shape", "[1, '6', 5, 5]"),
        ("{type: conv, shape: [1, 6, 5.0, 5]}", "shape", "[1, 6, 5.0, 5]"),
        ("{type: conv, shape: [1, 6, true, 5]}", "shape", "[1, 6, True, 5]"),
        ("{type: conv, shape: [1, 6, 5, 5], groups: '1'}", "groups", "'1'"),
        ("{type: conv, shape: [1, 6, 5, 5], groups: 1.0}", "groups", "1.0"),
        ("{type: conv, shape: [1, 6, 5, 5], groups: true}", "groups", "True"),
        ("{type: conv, shape: [1, 6, 5, 5], bias: 1}", "bias", "1"),
        ("{type: conv, shape: [1, 6, 5, 5], bias: yes}", "bias", "'yes'"),  # YAML 1.2: yes is a word
        ("{type: conv, shape: [1, 6, 5, 5], padding: '1'}", "padding", "'1'"),
        ("{type: maxpool, kernel: 2.0}", "kernel", "2.0"),
        ("{type: maxpool, kernel: [2, '2']}", "kernel", "[2, '2']"),
        ("{type: dropout, p: '0.5'}", "p", "'0.5'"),
        ("{type: dropout, p: true}", "p", "True"),
        ("{type: lrn, size: 5.0}", "size", "5.0"),
        ("{type: lrn, size: 5, alpha: '1e-4'}", "alpha", "'1e-4'"),
        ("{type: relu, name: 3}", "name", "3"),
        ("{type: layernorm, affine: 1}", "affine", "1"),
        ("{type: layernorm, channels: 4.0}", "channels", "4.0"),
        ("{type: stochastic_depth, p: 0.1, mode: 1}", "mode", "1"),
        ("{type: stochastic_depth, p: 0.1, mode: rows}", "mode", "'rows'"),
        ("{type: chunk, chunks: 2, index: 1.0}", "index", "1.0"),
        ("{type: channel_shuffle, groups: '2'}", "groups", "'2'"),
        ("{type: channel_linear, shape: [1, 2], bias: yes}", "bias", "'yes'"),
        ("{type: layer_scale, init: '1e-6'}", "init", "'1e-6'"),
    ],
)
def test_wrong_types_are_errors(check, layer: str, key: str, found: str) -> None:
    assert_one_field_error(check, layer, key, found)


def assert_one_field_error(check, layer: str, key: str, found: str) -> None:
    """The one-layer spec `layer` gives a single error, at `key`, naming the value found."""
    text = HEAD + f"  - {layer}\n"
    (line,) = check(text)
    kind = layer.split(",")[0].removeprefix("{type: ").rstrip("}")
    assert line.startswith(f"{at(text, key + ':')}: error: layer 0 '{kind}0' ({kind}): '{key}': ")
    assert line.endswith(f"found {found}")


def test_numbers_as_people_write_them(check) -> None:
    text = HEAD + (
        "  - {type: conv, shape: [1, 0x3E8, 3, 3]}\n"
        "  - {type: lrn, size: 5, alpha: 1e-4, beta: 0.75, k: 2}\n"
        "  - {type: relu, name: no}\n"  # a word in YAML 1.2, not false
        "  - {type: relu, name: on}\n"
    )
    assert check(text) == []
    (line,) = check(HEAD + "  - {type: conv, shape: [1, 1_000, 3, 3]}\n")  # YAML 1.2 core: a string
    assert line.endswith("found [1, '1_000', 3, 3]")


# --- values out of range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "key", "found"),
    [
        ("{type: conv, shape: [1, 0, 5, 5]}", "shape", "[1, 0, 5, 5]"),
        ("{type: conv, shape: [1, -6, 5, 5]}", "shape", "[1, -6, 5, 5]"),
        ("{type: conv, shape: [1, 6, 5, 5], stride: 0}", "stride", "0"),
        ("{type: conv, shape: [1, 6, 5, 5], stride: [1, -2]}", "stride", "[1, -2]"),
        ("{type: conv, shape: [1, 6, 5, 5], dilation: 0}", "dilation", "0"),
        ("{type: conv, shape: [1, 6, 5, 5], padding: -1}", "padding", "-1"),
        ("{type: conv, shape: [1, 6, 5, 5], groups: 0}", "groups", "0"),
        ("{type: conv, shape: [1, 6, 5, 99999999999]}", "shape", "[1, 6, 5, 99999999999]"),
        ("{type: maxpool, kernel: 0}", "kernel", "0"),
        ("{type: linear, shape: [0, 10]}", "shape", "[0, 10]"),
        ("{type: lrn, size: 0}", "size", "0"),
        ("{type: batchnorm, eps: 0}", "eps", "0"),
        ("{type: adaptive_avgpool, output: 0}", "output", "0"),
        ("{type: dropout, p: 1.5}", "p", "1.5"),
        ("{type: dropout, p: -0.1}", "p", "-0.1"),
        ("{type: dropout, p: 2}", "p", "2"),
        ("{type: dropout, p: .nan}", "p", "nan"),
        ("{type: dropout, p: .inf}", "p", "inf"),
        ("{type: lrn, size: 5, alpha: 1e999}", "alpha", "inf"),
        ("{type: lrn, size: 5, beta: .nan}", "beta", "nan"),
        ("{type: layernorm, eps: 0}", "eps", "0"),
        ("{type: layernorm, channels: 0}", "channels", "0"),
        ("{type: stochastic_depth, p: 1.5}", "p", "1.5"),
        ("{type: stochastic_depth, p: -0.1}", "p", "-0.1"),
        ("{type: chunk, chunks: 0, index: 0}", "chunks", "0"),
        ("{type: chunk, chunks: 2, index: -1}", "index", "-1"),
        ("{type: channel_shuffle, groups: 0}", "groups", "0"),
        ("{type: channel_linear, shape: [1, 0]}", "shape", "[1, 0]"),
        ("{type: layer_scale, init: .inf}", "init", "inf"),
        ("{type: layer_scale, channels: -1}", "channels", "-1"),
    ],
)
def test_values_out_of_range_are_errors(check, layer: str, key: str, found: str) -> None:
    assert_one_field_error(check, layer, key, found)


@pytest.mark.parametrize("p", ["0", "1", "0.0", "1.0", "0.25"])
def test_dropout_bounds_are_inclusive(check, p: str) -> None:
    assert check(HEAD + f"  - {{type: dropout, p: {p}}}\n") == []


def test_finite_numbers_are_required(check) -> None:
    text = HEAD + "  - {type: lrn, size: 5, alpha: .inf}\n"
    assert check(text) == [
        f"{at(text, 'alpha')}: error: layer 0 'lrn0' (lrn): 'alpha': input should be a finite number, found inf"
    ]


# --- names ---------------------------------------------------------------------------------------------------


def test_duplicate_explicit_names(check) -> None:
    text = HEAD + "  - {type: relu, name: a}\n  - {type: tanh}\n  - {type: sigmoid, name: a}\n"
    assert check(text) == [
        f"{at(text, 'name: a', 1)}: error: layer 2 'a' (sigmoid): name 'a' is already used by layer 0"
    ]


def test_default_names_count_as_names(check) -> None:
    text = HEAD + "  - {type: relu, name: relu1}\n  - {type: relu}\n"  # layer 1's default name is relu1
    assert check(text) == ["spec.yaml:5:5: error: layer 1 'relu1' (relu): name 'relu1' is already used by layer 0"]
    text = HEAD + "  - {type: relu}\n  - {type: tanh, name: relu0}\n"  # layer 0's default name is relu0
    assert check(text) == [
        f"{at(text, 'name: relu0')}: error: layer 1 'relu0' (tanh): name 'relu0' is already used by layer 0"
    ]


def test_every_repeat_of_a_name_is_reported(check) -> None:
    text = HEAD + "  - {type: relu, name: a}\n  - {type: relu, name: a}\n  - {type: relu, name: a}\n"
    assert check(text) == [
        f"{at(text, 'name: a', 1)}: error: layer 1 'a' (relu): name 'a' is already used by layer 0",
        f"{at(text, 'name: a', 2)}: error: layer 2 'a' (relu): name 'a' is already used by layer 0",
    ]


@pytest.mark.parametrize("name", ["forward", "eval", "training", "to", "parameters", "type", "state_dict"])
def test_reserved_names(check, name: str) -> None:
    text = HEAD + f"  - {{type: relu, name: {name}}}\n"
    assert check(text) == [
        f"{at(text, 'name:')}: error: layer 0 '{name}' (relu): "
        f"'name': '{name}' is reserved by torch.nn.Module; choose another name"
    ]


@pytest.mark.parametrize("name", ["1abc", "'a b'", "'a.b'", "''", "_x", "'x" + "y" * 70 + "'"])
def test_names_that_are_not_identifiers(check, name: str) -> None:
    text = HEAD + f"  - {{type: relu, name: {name}}}\n"
    (line,) = check(text)
    assert line.startswith(f"{at(text, 'name:')}: error: layer 0 ")
    assert "'name': " in line


def test_names_with_line_breaks_stay_on_one_line(check) -> None:
    text = HEAD + '  - {type: relu, name: "a\\nspec.yaml:1:1: error: forged"}\n'
    (line,) = check(text)
    assert "\n" not in line and "a\\nspec.yaml" in line


# --- missing keys, wrong structure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "key"),
    [
        ("{type: conv}", "shape"),
        ("{type: conv, stride: 2}", "shape"),
        ("{type: linear}", "shape"),
        ("{type: maxpool, stride: 2}", "kernel"),
        ("{type: lrn}", "size"),
        ("{type: adaptive_avgpool}", "output"),
        ("{type: stochastic_depth, mode: batch}", "p"),
        ("{type: chunk, index: 0}", "chunks"),
        ("{type: chunk, chunks: 2}", "index"),
        ("{type: channel_shuffle}", "groups"),
        ("{type: channel_linear}", "shape"),
    ],
)
def test_missing_required_keys_point_at_the_layer(check, layer: str, key: str) -> None:
    kind = layer.split(",")[0].removeprefix("{type: ").rstrip("}")
    assert check(HEAD + f"  - {layer}\n") == [
        f"spec.yaml:4:5: error: layer 0 '{kind}0' ({kind}): missing required key '{key}'"
    ]


def test_missing_type(check) -> None:
    assert check(HEAD + "  - {shape: [1, 6, 5, 5]}\n") == [
        f"spec.yaml:4:5: error: layer 0: missing required key 'type' (one of: {KNOWN})"
    ]


@pytest.mark.parametrize("missing", ["name", "input", "layers"])
def test_missing_top_level_keys(check, missing: str) -> None:
    text = "".join(line + "\n" for line in HEAD.splitlines() if not line.startswith(missing))
    text += "  - {type: relu}\n" if missing != "layers" else ""
    assert f"spec.yaml:1:1: error: missing required key '{missing}'" in check(text)


@pytest.mark.parametrize(("item", "found"), [("relu", "'relu'"), ("[relu]", "['relu']"), ("3", "3"), ("", "None")])
def test_layer_that_is_not_a_mapping(check, item: str, found: str) -> None:
    text = HEAD + "  - {type: relu}\n" + f"  - {item}\n"
    (line,) = check(text)
    assert line.startswith("spec.yaml:5:")
    assert line.endswith(f": error: layer 1: expected a mapping of keys, found {found}")


@pytest.mark.parametrize("text", ["", "\n", "# nothing yet\n", "---\n"])
def test_empty_file(check, text: str) -> None:
    assert check(text) == [
        "spec.yaml:1:1: error: a spec is a mapping with keys name, input and layers; found an empty file"
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("- {type: conv}\n- {type: relu}\n", "list [{'type': 'conv'}, {'type': 'relu'}]"),
        ("just some words\n", "str 'just some words'"),
        ("42\n", "int 42"),
    ],
)
def test_top_level_that_is_not_a_mapping(check, text: str, found: str) -> None:
    assert check(text) == [f"spec.yaml:1:1: error: a spec is a mapping with keys name, input and layers; found {found}"]


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("[1, 32]", "[1, 32]"),
        ("[1, 32, 32, 1]", "[1, 32, 32, 1]"),
        ("32", "32"),
        ("[1, 32, 32.0]", "[1, 32, 32.0]"),
        ("[0, 32, 32]", "[0, 32, 32]"),
        ("['1', 32, 32]", "['1', 32, 32]"),
        ("[true, 32, 32]", "[True, 32, 32]"),
    ],
)
def test_input_must_be_three_positive_integers(check, value: str, found: str) -> None:
    text = f"name: t\ninput: {value}\nlayers: [{{type: relu}}]\n"
    (line,) = check(text)
    assert line.startswith("spec.yaml:2:1: error: 'input': expected [C, H, W]")
    assert line.endswith(f"found {found}")


@pytest.mark.parametrize(("value", "found"), [("[]", "[]"), ("{type: relu}", "{'type': 'relu'}"), ("", "None")])
def test_layers_must_be_a_non_empty_list(check, value: str, found: str) -> None:
    (line,) = check(f"name: t\ninput: [1, 32, 32]\nlayers: {value}\n")
    assert line.startswith("spec.yaml:3:1: error: 'layers': ")
    assert line.endswith(f"found {found}")


def test_name_must_be_given(check) -> None:
    assert check("name:\ninput: [1, 32, 32]\nlayers: [{type: relu}]\n") == [
        "spec.yaml:1:1: error: 'name': input should be a valid string, found None"
    ]


# --- many problems: all reported, each at its place ------------------------------------------------------------


def test_every_schema_error_is_reported_in_place(check) -> None:
    text = (
        "name: t\n"
        "input: [1, 32, 32]\n"
        "layers:\n"
        "  - {type: convv}\n"
        "  - {type: relu, name: forward}\n"
        "  - {type: conv, shape: [1, 2, 3]}\n"
        "  - type: dropout\n"
        "    p: 2\n"
        "  - {type: maxpool, kernel: 2, strides: 2}\n"
        "extra: 1\n"
    )
    lines = check(text)
    assert len(lines) == 6
    assert [line.split(": error: ")[0] for line in sorted(lines, key=lambda s: int(s.split(":")[1]))] == [
        at(text, "type: convv"),
        at(text, "name: forward"),
        at(text, "shape: [1, 2, 3]"),
        at(text, "p: 2"),
        at(text, "strides"),
        at(text, "extra"),
    ]


def test_every_shape_error_is_reported(check) -> None:
    text = HEAD + (
        "  - {type: conv, shape: [3, 6, 5, 5]}\n"  # C_i: 3, but the input has 1 channel; gives [6, 28, 28]
        "  - {type: maxpool, kernel: 2}\n"  # [6, 14, 14]
        "  - {type: flatten}\n"  # [1176]
        "  - {type: linear, shape: [1000, 10]}\n"  # F_i: 1000, but 1176 features arrive
    )
    lines = check(text)
    assert len(lines) == 2
    assert lines[0].startswith("spec.yaml:4:5: error: layer 0 'conv0' (conv): shape says C_i=3 ")
    assert "[1, 32, 32]" in lines[0]
    assert lines[1].startswith("spec.yaml:7:5: error: layer 3 'linear3' (linear): shape says F_i=1000 ")
    assert "1176" in lines[1]


def test_reports_are_capped(check) -> None:
    text = HEAD + "  - {type: bogus}\n" * (MAX_REPORTED + 7)
    lines = check(text)
    assert len(lines) == MAX_REPORTED + 1
    assert lines[0].startswith("spec.yaml:4:6: error: layer 0 'bogus0' (bogus): unknown layer type 'bogus'")
    assert lines[-2].startswith(f"spec.yaml:{4 + MAX_REPORTED - 1}:6: error: layer {MAX_REPORTED - 1} ")
    assert lines[-1] == "spec.yaml: error: 7 more errors not shown"


# --- shapes that do not flow ------------------------------------------------------------------------------------


def test_linear_on_a_feature_map_suggests_flatten(check) -> None:
    (line,) = check(HEAD + "  - {type: linear, shape: [1024, 10]}\n")
    assert line.startswith("spec.yaml:4:5: error: layer 0 'linear0' (linear): ")
    assert "[1, 32, 32]" in line and "{type: flatten}" in line and "1024" in line


def test_spatial_layer_after_flatten(check) -> None:
    text = HEAD + "  - {type: flatten}\n  - {type: conv, shape: [1024, 6, 5, 5]}\n  - {type: relu}\n"
    (line,) = check(text)  # the shape after the conv is unknown, so nothing later is judged
    assert line.startswith("spec.yaml:5:5: error: layer 1 'conv1' (conv): ")
    assert "[1024]" in line and "flatten" in line


def test_kernel_larger_than_the_input(check) -> None:
    (line,) = check(HEAD + "  - {type: conv, shape: [1, 6, 33, 5]}\n")
    assert line.startswith("spec.yaml:4:5: error: layer 0 'conv0' (conv): ")
    assert "[33, 5]" in line and "[1, 32, 32]" in line and "empty" in line


def test_groups_must_divide_channels(check) -> None:
    text = HEAD + "  - {type: conv, shape: [1, 6, 5, 5], groups: 2}\n"
    (line,) = check(text)
    assert line.startswith(f"{at(text, 'groups')}: error: layer 0 'conv0' (conv): groups=2 must divide")


def test_strided_same_padding(check) -> None:
    text = HEAD + "  - {type: conv, shape: [1, 6, 5, 5], padding: same, stride: 2}\n"
    assert any(line.startswith(f"{at(text, 'padding')}: error: layer 0 'conv0' (conv): ") for line in check(text))


def test_unread_rows_are_a_warning_not_an_error(check, tmp_path: Path) -> None:
    # 32 rows, kernel 5, stride 2: windows start at rows 0, 2, ..., 26 and read up to row 30; row 31 is never read
    text = HEAD + "  - {type: conv, shape: [1, 6, 5, 5], stride: 2}\n"
    (line,) = check(text)
    assert line.startswith(f"{at(text, 'stride')}: warning: layer 0 'conv0' (conv): ")
    assert "1 row" in line and "1 column" in line
    assert check_file(tmp_path / "spec.yaml").ok


def test_file_level_problems_have_no_layer_part(check) -> None:
    (line,) = check(b"name: t\ninput: [1, 32, 32]\nlayers: \xff\n")
    assert line == "spec.yaml:3:9: error: not UTF-8 text (byte 0xff)"


def test_missing_file(check) -> None:
    (line,) = [str(d) for d in check_file("nowhere.yaml").diagnostics]
    assert line == "nowhere.yaml: error: cannot read file: No such file or directory"


def test_folder_is_not_a_file(check, tmp_path: Path) -> None:
    (line,) = [str(d) for d in check_file(tmp_path).diagnostics]
    assert line.startswith(f"{tmp_path}: error: cannot read file: ")


def test_huge_file_is_refused_without_reading_it_all(check) -> None:
    (line,) = check(b"name: t\n" + b"#" * (5 * 1024 * 1024))
    assert line == "spec.yaml: error: file is larger than 4 MiB; not a spec"


# --- the kinds of torchvision's modern families: each problem, exactly --------------------------------------------

MAP5 = "name: t\ninput: [5, 8, 8]\nlayers:\n"  # a map of 5 channels; layers start on line 4


@pytest.mark.parametrize(
    ("layers", "needle", "expected"),
    [
        (
            ["{type: chunk, chunks: 4, index: 3}"],
            "index",
            "layer 0 'chunk0' (chunk): index=3 but torch.chunk makes 3 chunks of the 5 channels of [5, 8, 8], not 4: "
            "chunks of ceil(5/4) = 2 channels (2, 2, 1); index must be at most 2",
        ),
        (
            ["{type: chunk, chunks: 2, index: 2}"],
            "index",
            "layer 0 'chunk0' (chunk): index=2 but torch.chunk makes 2 chunks of the 5 channels of [5, 8, 8] "
            "(3, 2 channels); index must be at most 1",
        ),
        (
            ["{type: chunk, chunks: 5, index: 0}", "{type: chunk, chunks: 1, index: 1}"],
            "index: 1}",
            "layer 1 'chunk1' (chunk): index=1 but torch.chunk makes 1 chunk of the 1 channel of [1, 8, 8] "
            "(1 channel); index must be at most 0",
        ),
        (
            ["{type: flatten}", "{type: chunk, chunks: 2, index: 0}"],
            "{type: chunk",
            "layer 1 'chunk1' (chunk): chunk needs a [C, H, W] feature map, but the incoming tensor is features "
            "[320]; a chunk cannot follow flatten",
        ),
        (
            ["{type: channel_shuffle, groups: 2}"],
            "groups",
            "layer 0 'channel_shuffle0' (channel_shuffle): groups=2 must divide the channels, but the incoming "
            "tensor has 5 channels [5, 8, 8]",
        ),
        (
            ["{type: flatten}", "{type: channel_shuffle, groups: 5}"],
            "{type: channel_shuffle",
            "layer 1 'channel_shuffle1' (channel_shuffle): channel_shuffle needs a [C, H, W] feature map, but the "
            "incoming tensor is features [320]; a channel_shuffle cannot follow flatten",
        ),
        (
            ["{type: channel_linear, shape: [4, 8]}"],
            "{type: channel_linear",
            "layer 0 'channel_linear0' (channel_linear): shape says C_i=4 but the incoming tensor has 5 channels "
            "[5, 8, 8]",
        ),
        (
            ["{type: flatten}", "{type: channel_linear, shape: [320, 10]}"],
            "{type: channel_linear",
            "layer 1 'channel_linear1' (channel_linear): channel_linear needs a [C, H, W] feature map, but the "
            "incoming tensor is features [320]; on features, use {type: linear, shape: [320, 10]}",
        ),
        (
            ["{type: layer_scale, channels: 4}"],
            "{type: layer_scale",
            "layer 0 'layer_scale0' (layer_scale): channels=4 but the incoming tensor has 5 channels [5, 8, 8]",
        ),
        (
            ["{type: flatten}", "{type: layer_scale}"],
            "{type: layer_scale",
            "layer 1 'layer_scale1' (layer_scale): layer_scale needs a [C, H, W] feature map, but the incoming "
            "tensor is features [320]; a layer_scale cannot follow flatten",
        ),
        (
            ["{type: layernorm, channels: 4}"],
            "{type: layernorm",
            "layer 0 'layernorm0' (layernorm): channels=4 but the incoming tensor has 5 channels [5, 8, 8]",
        ),
        (
            ["{type: flatten}", "{type: layernorm, channels: 5}"],
            "{type: layernorm",
            "layer 1 'layernorm1' (layernorm): channels=5 but the incoming tensor has 320 features [320]",
        ),
    ],
)
def test_modern_kinds_say_what_is_wrong(check, layers: list[str], needle: str, expected: str) -> None:
    text = MAP5 + "".join(f"  - {layer}\n" for layer in layers)
    assert check(text) == [f"{at(text, needle)}: error: {expected}"]
