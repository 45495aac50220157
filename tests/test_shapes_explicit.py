"""Explicit shape cases with torch as the oracle: the corners of the conv and pooling arithmetic, the layers
torch refuses, and a minimal instance of every registered layer kind (so a new kind is covered at once)."""

from __future__ import annotations

import re

import pytest
import torch
from agreement import assert_agrees, compile_dict, unread_by_cnnforge, unread_by_torch
from torch import nn
from torch_oracle import MODULES, params

from cnnforge import Compiled
from cnnforge.layers import LAYERS
from cnnforge.spec import parse

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")


def spec(shape: list[int], *layers: dict) -> dict:
    return {"name": "case", "input": shape, "layers": list(layers)}


def accepted(case: dict) -> Compiled:
    """Compile `case`, which torch runs; cnnforge must accept it and agree with torch on every count."""
    compiled, ran = assert_agrees(case, "cpu")
    assert ran.ok and compiled.ok, ran.error
    return compiled


def refused(case: dict) -> None:
    """Compile `case`, which torch refuses at its last layer; cnnforge's first error must be there."""
    _, ran = assert_agrees(case, "cpu")
    assert ran.failed == len(case["layers"]) - 1, ran


def conv(c_i: int, c_o: int, k_h: int, k_w: int | None = None, **fields: object) -> dict:
    return {"type": "conv", "shape": [c_i, c_o, k_h, k_h if k_w is None else k_w], **fields}


def ceil_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """The output size ceil_mode would give without torch's rule for windows that start in the padding."""
    return -(-(size + 2 * padding - kernel) // stride) + 1


CEIL = {  # pool, input size: torch's ceil_mode output, which keeps a last partial window
    "max_partial": ({"type": "maxpool", "kernel": 3, "stride": 2}, 6),
    "avg_partial": ({"type": "avgpool", "kernel": 2}, 5),
    "min_asymmetric": ({"type": "minpool", "kernel": [2, 3], "stride": [2, 2]}, 6),
    "max_dilated": ({"type": "maxpool", "kernel": 2, "stride": 2, "dilation": 2}, 6),
    "avg_padded_no_count": ({"type": "avgpool", "kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}, 6),
}


@pytest.mark.parametrize(("pool", "size"), CEIL.values(), ids=CEIL)
def test_ceil_mode_keeps_a_last_partial_window(pool: dict, size: int) -> None:
    floor = accepted(spec([2, size, size], pool)).output
    ceil = accepted(spec([2, size, size], {**pool, "ceil_mode": True})).output
    assert ceil != floor, "the case should have a partial window"


DROPPED = {  # pool, input size: ceil_mode's last window would start in the right padding, and torch drops it
    "max_k3_s3_p1": ({"type": "maxpool", "kernel": 3, "stride": 3, "padding": 1, "ceil_mode": True}, 5),
    "avg_k2_s2_p1": ({"type": "avgpool", "kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, 5),
    "min_k2_s2_p1": ({"type": "minpool", "kernel": 2, "padding": 1, "ceil_mode": True}, 3),
}


@pytest.mark.parametrize(("pool", "size"), DROPPED.values(), ids=DROPPED)
def test_ceil_mode_drops_a_window_starting_in_the_padding(pool: dict, size: int) -> None:
    compiled = accepted(spec([1, size, size], pool))
    padding, kernel = pool["padding"], pool["kernel"]
    assert compiled.output[1] == ceil_size(size, kernel, pool.get("stride", kernel), padding) - 1


ACCEPTED = {
    "dilated_conv": ([1, 7, 7], conv(1, 2, 3, dilation=2)),
    "dilated_asymmetric": ([1, 9, 12], conv(1, 2, 3, dilation=[2, 3], stride=[1, 2])),
    "dilated_maxpool": ([1, 8, 8], {"type": "maxpool", "kernel": 2, "stride": 1, "dilation": 3}),
    "dilated_minpool_padded": ([1, 8, 8], {"type": "minpool", "kernel": 3, "padding": 1, "dilation": [2, 1]}),
    "groups": ([4, 6, 6], conv(4, 6, 3, groups=2)),
    "depthwise": ([4, 6, 6], conv(4, 4, 3, groups=4, padding=1)),
    "depthwise_multiplier": ([4, 6, 6], conv(4, 8, 3, groups=4)),
    "same_odd": ([1, 7, 7], conv(1, 2, 3, padding="same")),
    "same_even": ([1, 7, 7], conv(1, 2, 4, padding="same")),
    "same_even_asymmetric": ([1, 7, 6], conv(1, 2, 2, 4, padding="same")),
    "same_even_dilated": ([1, 9, 9], conv(1, 2, 2, 4, padding="same", dilation=[3, 1])),
    "same_even_reflect": ([1, 3, 3], conv(1, 1, 4, padding="same", padding_mode="reflect")),
    "same_circular_wraps_once": ([1, 2, 2], conv(1, 1, 5, padding="same", padding_mode="circular")),
    "valid": ([1, 5, 5], conv(1, 1, 3, padding="valid")),
    "asymmetric_conv": ([2, 9, 11], conv(2, 3, 3, 5, stride=[1, 2], padding=[0, 2])),
    "asymmetric_maxpool": ([1, 7, 9], {"type": "maxpool", "kernel": [2, 3], "stride": [1, 2], "padding": [1, 0]}),
    "asymmetric_avgpool": ([1, 7, 9], {"type": "avgpool", "kernel": [3, 1], "stride": [2, 1]}),
    "reflect_below_size": ([1, 3, 3], conv(1, 1, 3, padding=2, padding_mode="reflect")),
    "reflect_asymmetric": ([1, 3, 4], conv(1, 1, 3, padding=[0, 3], padding_mode="reflect")),
    "circular_equal_size": ([1, 3, 3], conv(1, 1, 3, padding=3, padding_mode="circular")),
    "replicate_beyond_size": ([1, 1, 1], conv(1, 1, 3, padding=5, padding_mode="replicate")),
    "pool_padding_half_odd": ([1, 5, 5], {"type": "maxpool", "kernel": 3, "padding": 1}),
    "pool_padding_half_even": ([1, 5, 5], {"type": "avgpool", "kernel": 2, "padding": 1}),
    "pool_padding_asymmetric": ([1, 5, 5], {"type": "avgpool", "kernel": [4, 2], "padding": [2, 1]}),
    "kernel_fits_with_padding": ([1, 3, 3], conv(1, 1, 5, padding=1)),
    "kernel_fits_only_with_padding": ([1, 1, 1], {"type": "maxpool", "kernel": 3, "padding": 1}),
    "pool_kernel_over_input_ceil": ([1, 3, 3], {"type": "maxpool", "kernel": 4, "ceil_mode": True}),
    "adaptive_upsamples": ([1, 2, 3], {"type": "adaptive_avgpool", "output": [5, 4]}),
    "batchnorm_on_features": ([2, 3, 3], {"type": "flatten"}, {"type": "batchnorm", "channels": 18}),
    "batchnorm_on_1x1": ([3, 5, 5], {"type": "adaptive_maxpool", "output": 1}, {"type": "batchnorm", "channels": 3}),
    "softmax_on_features": ([2, 3, 3], {"type": "flatten"}, {"type": "softmax"}),
    "flatten_twice": ([2, 3, 3], {"type": "flatten"}, {"type": "flatten"}),
}


@pytest.mark.parametrize(("shape", "layers"), [(c[0], c[1:]) for c in ACCEPTED.values()], ids=ACCEPTED)
def test_torch_runs_it_and_cnnforge_agrees(shape: list[int], layers: tuple[dict, ...]) -> None:
    accepted(spec(shape, *layers))


def test_same_keeps_the_size() -> None:
    for case in ("same_odd", "same_even", "same_even_asymmetric", "same_even_dilated", "same_even_reflect"):
        shape, *layers = ACCEPTED[case]
        assert accepted(spec(shape, *layers)).output[1:] == tuple(shape[1:])


REFUSED = {
    "dilated_kernel_too_big": ([1, 6, 6], conv(1, 1, 3, dilation=3)),
    "groups_not_dividing_c_i": ([4, 6, 6], conv(4, 6, 3, groups=3)),
    "groups_not_dividing_c_o": ([4, 6, 6], conv(4, 6, 3, groups=4)),
    "channels_mismatch": ([3, 6, 6], conv(4, 6, 3)),
    "same_strided": ([1, 8, 8], conv(1, 1, 3, padding="same", stride=2)),
    "same_even_reflect_too_big": ([1, 2, 2], conv(1, 1, 4, padding="same", padding_mode="reflect")),
    "same_circular_wraps_twice": ([1, 2, 2], conv(1, 1, 6, padding="same", padding_mode="circular")),
    "reflect_equal_size": ([1, 3, 3], conv(1, 1, 3, padding=3, padding_mode="reflect")),
    "reflect_asymmetric_too_big": ([1, 4, 3], conv(1, 1, 3, padding=[0, 3], padding_mode="reflect")),
    "circular_beyond_size": ([1, 3, 3], conv(1, 1, 3, padding=4, padding_mode="circular")),
    "pool_padding_over_half_odd": ([1, 5, 5], {"type": "maxpool", "kernel": 3, "padding": 2}),
    "pool_padding_over_half_even": ([1, 5, 5], {"type": "avgpool", "kernel": [4, 2], "padding": [2, 2]}),
    "pool_padding_over_half_k1": ([1, 5, 5], {"type": "minpool", "kernel": 1, "padding": 1}),
    "pool_padding_over_undilated_half": ([1, 9, 9], {"type": "maxpool", "kernel": 2, "dilation": 3, "padding": 2}),
    "conv_kernel_too_big": ([1, 3, 3], conv(1, 1, 5)),
    "conv_kernel_too_big_padded": ([1, 2, 2], conv(1, 1, 5, padding=1)),
    "conv_kernel_too_wide": ([1, 8, 3], conv(1, 1, 3, 4)),
    "maxpool_kernel_too_big": ([1, 3, 3], {"type": "maxpool", "kernel": 4}),
    "avgpool_kernel_too_big": ([1, 3, 3], {"type": "avgpool", "kernel": [2, 4], "stride": 1}),
    "conv_after_flatten": ([1, 5, 5], {"type": "flatten"}, conv(25, 1, 1)),
    "maxpool_after_flatten": ([1, 5, 5], {"type": "flatten"}, {"type": "maxpool", "kernel": 1}),
    "adaptive_after_flatten": ([1, 5, 5], {"type": "flatten"}, {"type": "adaptive_avgpool", "output": 1}),
    "lrn_on_features": ([4, 2, 2], {"type": "flatten"}, {"type": "lrn", "size": 2}),
    "batchnorm_channels_mismatch": ([3, 5, 5], {"type": "batchnorm", "channels": 4}),
    "batchnorm_features_mismatch": ([2, 3, 3], {"type": "flatten"}, {"type": "batchnorm", "channels": 2}),
    "linear_features_mismatch": ([2, 3, 3], {"type": "flatten"}, {"type": "linear", "shape": [17, 4]}),
}


@pytest.mark.parametrize(("shape", "layers"), [(c[0], c[1:]) for c in REFUSED.values()], ids=REFUSED)
def test_torch_refuses_it_and_so_does_cnnforge(shape: list[int], layers: tuple[dict, ...]) -> None:
    refused(spec(shape, *layers))


@pytest.mark.parametrize("f_i", [4, 24, 7])
def test_linear_on_a_feature_map_is_refused_with_a_flatten_hint(f_i: int) -> None:
    case = spec([2, 3, 4], {"type": "linear", "shape": [f_i, 5]})
    compiled, ran = assert_agrees(case, "cpu")
    assert ran.stricter
    features = torch.flatten(torch.zeros(1, 2, 3, 4), 1).shape[1]
    message = next(d.message for d in compiled.diagnostics if d.severity == "error")
    assert "insert {type: flatten} before it" in message and f"gives {features} features" in message
    assert (f"set F_i to {features}" in message) == (f_i != features)
    if f_i == 4:  # torch itself would apply it to the last axis; cnnforge is stricter on purpose
        assert nn.Linear(4, 5)(torch.zeros(2, 2, 3, 4)).shape == (2, 2, 3, 5)


UNREAD = {  # one-layer specs; torch's gradients say which trailing input rows and columns are never read
    "stride_2_on_even": ([1, 32, 32], conv(1, 1, 3, stride=2)),
    "stride_skips_the_whole_input": ([1, 1, 1], conv(1, 1, 1, padding=1, stride=2)),
    "every_window_in_the_padding": ([1, 3, 3], conv(1, 1, 1, padding=2, stride=10)),
    "no_column_read_so_no_row": ([1, 1, 1], conv(1, 1, 1, padding=1, stride=[1, 2])),
    "dilation_skips_the_last_rows": ([1, 5, 5], conv(1, 1, 2, dilation=4, stride=3, padding=2)),
    "dilation_straddles_the_input": ([1, 1, 1], conv(1, 1, 2, dilation=2, padding=1)),
    "circular_reads_the_last_row_first": ([1, 2, 2], conv(1, 1, 2, padding=1, stride=3, padding_mode="circular")),
    "circular_wrap_skips_the_last_row": (
        [1, 2, 2],
        conv(1, 1, 2, padding=2, stride=2, dilation=2, padding_mode="circular"),
    ),
    "replicate_copies_the_last_row": ([1, 1, 1], conv(1, 1, 2, padding=2, stride=4, padding_mode="replicate")),
    "reflect_mirrors_past_the_last_row": (
        [1, 3, 3],
        conv(1, 1, 2, padding=1, stride=2, dilation=2, padding_mode="reflect"),
    ),
    "avgpool_stride": ([1, 7, 7], {"type": "avgpool", "kernel": 2}),
    "avgpool_ceil_reads_all": ([1, 7, 7], {"type": "avgpool", "kernel": 2, "ceil_mode": True}),
    "avgpool_padding_is_no_row": ([1, 6, 6], {"type": "avgpool", "kernel": 3, "stride": 3, "padding": 1}),
}


@pytest.mark.parametrize(("shape", "layer"), UNREAD.values(), ids=UNREAD)
def test_unread_warning_matches_gradients(shape: list[int], layer: dict) -> None:
    case = spec(shape, layer)
    assert unread_by_cnnforge(accepted(case)) == unread_by_torch(case)


def example(kind: str) -> dict:
    """The layer in the `Example: {...}` of the kind's docstring."""
    found = re.search(r"Example: `(\{.*?\})`", LAYERS[kind].__doc__ or "", re.DOTALL)
    assert found, f"layer kind {kind!r} has no `Example: {{type: {kind}, ...}}` in its docstring"
    return parse(found[1]).data


def minimal_spec(layer: dict) -> dict:
    """The first of a few small inputs (a feature map, or features after flatten) that cnnforge accepts."""
    channels = layer["shape"][0] if isinstance(layer.get("shape"), list) else 3
    for prefix in ([], [{"type": "flatten"}]):
        for size in (32, 1):
            case = spec([channels, size, size], *prefix, layer)
            if compile_dict(case).ok:
                return case
    raise AssertionError(f"no small input fits the example {layer}")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_every_registered_kind_agrees_with_torch(kind: str) -> None:
    case = minimal_spec(example(kind))
    compiled = compile_dict(case)
    x = torch.rand(2, *case["input"])
    for layer in compiled.layers:  # the kind's own torch factory
        module = layer.layer.module(layer.input).eval()
        x = module(x)
        assert tuple(x.shape[1:]) == layer.output and layer.params == params(module)
    if kind in MODULES:  # and torch built here from the spec's fields alone
        accepted(case)


def test_every_registered_kind_has_an_oracle() -> None:
    missing = sorted(set(LAYERS) - set(MODULES))
    assert not missing, f"add {missing} to tests/torch_oracle.py, built from the spec's fields with plain torch"
