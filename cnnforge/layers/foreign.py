"""The names people bring from Keras and torch, and what cnnforge calls them: one table of layer types, one of keys.

Kept in one place rather than on each layer kind: the names belong to other libraries, and one of them often
stands for several kinds (Keras' `strides` is conv's and every pool's `stride`), so the whole translation reads at
a glance here. tests/test_messages.py checks every entry against the registry and the checker.
"""

from __future__ import annotations

_CONV = ": shape: [C_i, C_o, K_h, K_w] replaces "
_POOL = ", with kernel for "
_GLOBAL = ", with output: 1, then {type: flatten} (Keras' layer does both)"
_ACTIVATIONS = "relu, relu6, tanh, sigmoid, hardsigmoid, gelu, silu, hardswish, elu, leaky_relu or softmax"

# A layer type as Keras or torch spells it -> (cnnforge's kind, or None, and what changes with it). Looked up as
# written, then case-insensitively; a name that differs from a kind only in case and needs no other change is left
# to the did-you-mean of unknown types.
TYPES: dict[str, tuple[str | None, str]] = {
    "Dense": ("linear", ", with shape: [F_i, F_o] (Keras' units is F_o)"),
    "Linear": ("linear", ", with shape: [F_i, F_o] for in_features and out_features"),
    "Conv2D": ("conv", _CONV + "filters (C_o) and kernel_size"),
    "Conv2d": ("conv", _CONV + "in_channels, out_channels and kernel_size"),
    "MaxPooling2D": ("maxpool", _POOL + "pool_size (the stride defaults to the kernel, as in Keras)"),
    "MaxPool2D": ("maxpool", _POOL + "pool_size (the stride defaults to the kernel, as in Keras)"),
    "MaxPool2d": ("maxpool", _POOL + "kernel_size"),
    "AveragePooling2D": ("avgpool", _POOL + "pool_size (the stride defaults to the kernel, as in Keras)"),
    "AvgPool2D": ("avgpool", _POOL + "pool_size (the stride defaults to the kernel, as in Keras)"),
    "AvgPool2d": ("avgpool", _POOL + "kernel_size"),
    "GlobalAveragePooling2D": ("adaptive_avgpool", _GLOBAL),
    "GlobalAvgPool2D": ("adaptive_avgpool", _GLOBAL),
    "GlobalMaxPooling2D": ("adaptive_maxpool", _GLOBAL),
    "GlobalMaxPool2D": ("adaptive_maxpool", _GLOBAL),
    "AdaptiveAvgPool2d": ("adaptive_avgpool", ", with output for output_size"),
    "AdaptiveMaxPool2d": ("adaptive_maxpool", ", with output for output_size"),
    "BatchNormalization": ("batchnorm", ", with eps for epsilon; its momentum is 1 minus Keras' (0.99 is 0.01)"),
    "BatchNorm2d": ("batchnorm", ", with channels for num_features (it is BatchNorm2d on [C, H, W])"),
    "BatchNorm1d": ("batchnorm", ", with channels for num_features (it is BatchNorm1d on [F])"),
    "LayerNorm2d": ("layernorm", ", which on [C, H, W] normalises the channels at each position, as LayerNorm2d does"),
    "LayerNormalization": ("layernorm", ", with eps for epsilon (Keras' is 1e-3), over the channels as Keras' axis=-1"),
    "LocalResponseNorm": ("lrn", ""),
    "StochasticDepth": ("stochastic_depth", ", with p and mode (row or batch) as torchvision's"),
    "ChannelShuffle": ("channel_shuffle", ", with groups"),
    "Dropout": ("dropout", ", with p (Keras' rate)"),
    "Flatten": ("flatten", ""),
    "ReLU": ("relu", ""),
    "LeakyReLU": ("leaky_relu", ", with negative_slope (Keras 2's alpha)"),
    "Softmax": ("softmax", ""),
    "Activation": (None, f"cnnforge gives each activation a type of its own: {_ACTIVATIONS}"),
    "InputLayer": (None, "the input is not a layer: give one sample's shape as the top-level input: [C, H, W]"),
    "Input": (None, "the input is not a layer: give one sample's shape as the top-level input: [C, H, W]"),
}
_TYPES_BY_LOWER = {name.lower(): name for name in reversed(TYPES)}  # the first spelling wins

_POOLS = ("maxpool", "avgpool", "minpool")
_CONV_SHAPE = "shape", "conv gives its channels and kernel as shape: [C_i, C_o, K_h, K_w]"
_LINEAR_SHAPE = "shape", "linear gives its features as shape: [F_i, F_o]"
_CHANNEL_LINEAR_SHAPE = "shape", "channel_linear gives its channels as shape: [C_i, C_o]"
_OWN_LAYER = None, "cnnforge makes an activation a layer of its own, such as {type: relu} after this one"


def _mean(key: str) -> tuple[str, str]:
    return key, f"did you mean '{key}'?"


# A key as Keras or torch spells it (or a common slip) -> {cnnforge's kind: (the key it stands for, if one does,
# and what to write instead)}.
KEYS: dict[str, dict[str, tuple[str | None, str]]] = {
    "in_channels": {"conv": _CONV_SHAPE},
    "out_channels": {"conv": _CONV_SHAPE},
    "filters": {"conv": ("shape", f"{_CONV_SHAPE[1]}; Keras' filters is C_o")},
    "kernel": {"conv": _CONV_SHAPE},
    "kernal": {"conv": _CONV_SHAPE},
    "kernel_size": {"conv": _CONV_SHAPE, **dict.fromkeys(_POOLS, _mean("kernel"))},
    "pool_size": dict.fromkeys(_POOLS, _mean("kernel")),
    "strides": dict.fromkeys(("conv", *_POOLS), _mean("stride")),
    "use_bias": dict.fromkeys(("conv", "linear", "channel_linear"), _mean("bias")),
    "activation": dict.fromkeys(("conv", "linear"), _OWN_LAYER),
    "units": {"linear": ("shape", f"{_LINEAR_SHAPE[1]}; Keras' units is F_o")},
    "in_features": {"linear": _LINEAR_SHAPE, "channel_linear": _CHANNEL_LINEAR_SHAPE},
    "out_features": {"linear": _LINEAR_SHAPE, "channel_linear": _CHANNEL_LINEAR_SHAPE},
    "num_features": {"batchnorm": _mean("channels")},
    "normalized_shape": {"layernorm": _mean("channels")},
    "elementwise_affine": {"layernorm": _mean("affine")},
    "epsilon": dict.fromkeys(("batchnorm", "layernorm"), _mean("eps")),
    "drop_prob": {"stochastic_depth": _mean("p")},
    "dim": {"chunk": (None, "chunk always splits the channels, torch.chunk's dim=1")},
    "output_size": dict.fromkeys(("adaptive_avgpool", "adaptive_maxpool"), _mean("output")),
    "rate": {"dropout": _mean("p")},
    "alpha": {"leaky_relu": _mean("negative_slope")},
}


def type_hint(name: str) -> str | None:
    """What cnnforge calls the layer type `name` that Keras or torch use, or None.

    >>> type_hint("dense")
    "cnnforge calls it linear, with shape: [F_i, F_o] (Keras' units is F_o)"
    """
    found = TYPES.get(name) or TYPES.get(_TYPES_BY_LOWER.get(name.lower(), ""))
    if found is None:
        return None
    kind, how = found
    return how if kind is None else f"cnnforge calls it {kind}{how}"


def key_hint(kind: str, key: str) -> tuple[str | None, str] | None:
    """For the key `key` that Keras or torch use on a layer of `kind`: the key cnnforge uses instead, if one
    does, and what to write; None for other keys.

    >>> key_hint("dropout", "rate")
    ('p', "did you mean 'p'?")
    """
    return KEYS.get(key, {}).get(kind)
