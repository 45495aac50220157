"""Hypothesis strategies for random specs, as plain dicts, mixing layers torch accepts and layers it refuses.

Each layer is drawn knowing the per-sample shape torch computed for its input (None once torch has refused
an earlier layer), so most layers fit and a steady share do not: channel counts that do not match, kernels
larger than a small map, too much pooling padding, spatial layers after flatten, linear on a feature map.
"""

from __future__ import annotations

from math import prod

import torch
from hypothesis import strategies as st
from torch_oracle import Shape, step

usually = st.integers(0, 9).map(lambda n: n < 9)  # True nine times in ten; shrinks towards True
mostly = st.integers(0, 4).map(lambda n: n < 4)  # True four times in five; shrinks towards True
sometimes = st.integers(0, 3).map(lambda n: n == 3)  # True one time in four; shrinks towards False

ACTIVATIONS = (
    *("relu", "tanh", "sigmoid", "gelu", "silu", "elu", "leaky_relu", "softmax"),
    *("relu6", "hardswish", "hardsigmoid", "identity"),
)
POOLS = ("maxpool", "minpool", "avgpool")
ADAPTIVE = ("adaptive_avgpool", "adaptive_maxpool")
CHANNELS = ("chunk", "channel_shuffle", "channel_linear", "layer_scale")
SPATIAL = ("conv",) * 3 + POOLS + ADAPTIVE + CHANNELS + ("lrn", "batchnorm", "layernorm", "activation", "flatten")
SPATIAL += ("dropout", "stochastic_depth")  # weighted: the conv thrice
FEATURES = ("linear",) * 3 + ("activation", "dropout", "stochastic_depth", "batchnorm", "layernorm", "flatten")
KINDS = tuple(dict.fromkeys((*SPATIAL, *FEATURES)))  # each once: what any input may meet


def pair(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | list[int]]:
    """An integer or an [h, w] pair of them."""
    return st.one_of(values, st.lists(values, min_size=2, max_size=2))


@st.composite
def _as_pair(draw: st.DrawFn, h: int, w: int) -> int | list[int]:
    return h if h == w and draw(st.booleans()) else [h, w]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _channels(x: Shape | None) -> int | None:
    return x[0] if x is not None and len(x) == 3 else None


@st.composite
def conv(draw: st.DrawFn, x: Shape | None) -> dict:
    c_i = _channels(x) if _channels(x) and draw(usually) else draw(st.integers(1, 8))
    if draw(usually):
        groups = draw(st.sampled_from(_divisors(c_i)))
        c_o = groups * draw(st.integers(1, 3))
    else:
        groups, c_o = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    kernel = st.integers(1, 5) if draw(usually) else st.integers(1, 9)
    layer: dict = {"type": "conv", "shape": [c_i, c_o, draw(kernel), draw(kernel)]}
    if groups > 1 or draw(st.booleans()):
        layer["groups"] = groups
    pads = st.integers(0, 3) if draw(mostly) else st.integers(0, 9)  # reflect and circular are limited by the input
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), pair(pads)))
    if padding != 0 or draw(st.booleans()):
        layer["padding"] = padding
    if padding != "same" or draw(sometimes):
        layer["stride"] = draw(pair(st.integers(1, 3)))
    if draw(sometimes):
        layer["dilation"] = draw(pair(st.integers(1, 3)))
    if draw(sometimes):
        layer["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    if draw(st.booleans()):
        layer["bias"] = draw(st.booleans())
    return layer


@st.composite
def pool(draw: st.DrawFn, kind: str) -> dict:
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    layer: dict = {"type": kind, "kernel": draw(_as_pair(k_h, k_w))}
    if draw(st.booleans()):
        layer["stride"] = draw(st.one_of(st.none(), pair(st.integers(1, 3))))
    if draw(st.booleans()):  # torch allows at most half the kernel; drawn beyond that now and then
        p_h, p_w = (draw(st.integers(0, k // 2 if draw(usually) else 2)) for k in (k_h, k_w))
        layer["padding"] = draw(_as_pair(p_h, p_w))
    if draw(st.booleans()):
        layer["ceil_mode"] = draw(st.booleans())
    if kind != "avgpool" and draw(sometimes):
        layer["dilation"] = draw(pair(st.integers(1, 3)))
    if kind == "avgpool" and draw(st.booleans()):
        layer["count_include_pad"] = draw(st.booleans())
    return layer


@st.composite
def linear(draw: st.DrawFn, x: Shape | None) -> dict:
    if x is not None and len(x) == 1 and draw(usually):
        f_i = x[0]
    elif x is not None and len(x) == 3 and draw(usually):
        f_i = draw(st.sampled_from([x[-1], prod(x)]))  # torch would run the first; cnnforge refuses both
    else:
        f_i = draw(st.integers(1, 64))
    layer: dict = {"type": "linear", "shape": [f_i, draw(st.integers(1, 16))]}
    if draw(st.booleans()):
        layer["bias"] = draw(st.booleans())
    return layer


@st.composite
def batchnorm(draw: st.DrawFn, x: Shape | None) -> dict:
    layer: dict = {"type": "batchnorm"}
    if draw(st.booleans()):
        layer["channels"] = x[0] if x is not None and draw(mostly) else draw(st.integers(1, 8))
    if draw(sometimes):
        layer["eps"] = draw(st.floats(1e-6, 0.1))
    if draw(sometimes):
        layer["momentum"] = draw(st.one_of(st.none(), st.floats(0, 1)))
    return layer


@st.composite
def layernorm(draw: st.DrawFn, x: Shape | None) -> dict:
    layer: dict = {"type": "layernorm"}
    if draw(st.booleans()):
        layer["channels"] = x[0] if x is not None and draw(mostly) else draw(st.integers(1, 8))
    if draw(sometimes):
        layer["eps"] = draw(st.floats(1e-6, 0.1))
    if draw(sometimes):
        layer["affine"] = draw(st.booleans())
    return layer


@st.composite
def stochastic_depth(draw: st.DrawFn) -> dict:
    layer: dict = {"type": "stochastic_depth", "p": draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)))}
    if draw(st.booleans()):
        layer["mode"] = draw(st.sampled_from(["row", "batch"]))
    return layer


@st.composite
def chunk(draw: st.DrawFn, x: Shape | None) -> dict:
    """Mostly a part that torch.chunk makes; now and then one past its last part, as when it makes fewer."""
    chunks = draw(st.integers(1, 5))
    channels = _channels(x)
    made = -(-channels // -(-channels // chunks)) if channels else chunks
    index = draw(st.integers(0, made - 1)) if draw(usually) else draw(st.integers(0, chunks))
    return {"type": "chunk", "chunks": chunks, "index": index}


@st.composite
def channel_shuffle(draw: st.DrawFn, x: Shape | None) -> dict:
    channels = _channels(x)
    groups = draw(st.sampled_from(_divisors(channels))) if channels and draw(usually) else draw(st.integers(1, 4))
    return {"type": "channel_shuffle", "groups": groups}


@st.composite
def channel_linear(draw: st.DrawFn, x: Shape | None) -> dict:
    c_i = _channels(x) if _channels(x) and draw(usually) else draw(st.integers(1, 8))
    layer: dict = {"type": "channel_linear", "shape": [c_i, draw(st.integers(1, 8))]}
    if draw(st.booleans()):
        layer["bias"] = draw(st.booleans())
    return layer


@st.composite
def layer_scale(draw: st.DrawFn, x: Shape | None) -> dict:
    layer: dict = {"type": "layer_scale"}
    if draw(st.booleans()):
        layer["init"] = draw(st.floats(-2, 2))
    if draw(st.booleans()):
        layer["channels"] = x[0] if x is not None and draw(mostly) else draw(st.integers(1, 8))
    return layer


@st.composite
def lrn(draw: st.DrawFn) -> dict:
    layer: dict = {"type": "lrn", "size": draw(st.integers(1, 6))}
    for key, low, high in (("alpha", 1e-5, 1.0), ("beta", 0.1, 1.0), ("k", 0.5, 3.0)):
        if draw(sometimes):
            layer[key] = draw(st.floats(low, high))
    return layer


@st.composite
def activation(draw: st.DrawFn) -> dict:
    layer: dict = {"type": draw(st.sampled_from(ACTIVATIONS))}
    if layer["type"] == "leaky_relu" and draw(st.booleans()):
        layer["negative_slope"] = draw(st.floats(-1, 1))
    return layer


@st.composite
def layer(draw: st.DrawFn, x: Shape | None) -> dict:
    """One layer for an input of per-sample shape `x` (None: unknown), usually of a kind that suits it."""
    suits = SPATIAL if x is not None and len(x) == 3 else FEATURES
    kind = draw(st.sampled_from(suits if x is not None and draw(mostly) else KINDS))
    if kind == "conv":
        return draw(conv(x))
    if kind in POOLS:
        return draw(pool(kind))
    if kind in ADAPTIVE:
        return {"type": kind, "output": draw(pair(st.integers(1, 4)))}
    if kind == "dropout":
        return {"type": "dropout", "p": draw(st.floats(0, 1))} if draw(st.booleans()) else {"type": "dropout"}
    if kind == "flatten":
        return {"type": "flatten"}
    strategies = {
        "linear": linear(x),
        "batchnorm": batchnorm(x),
        "layernorm": layernorm(x),
        "lrn": lrn(),
        "activation": activation(),
        "stochastic_depth": stochastic_depth(),
        "chunk": chunk(x),
        "channel_shuffle": channel_shuffle(x),
        "channel_linear": channel_linear(x),
        "layer_scale": layer_scale(x),
    }
    return draw(strategies[kind])


@st.composite
def specs(draw: st.DrawFn, max_layers: int = 6, max_channels: int = 6, max_size: int = 16) -> dict:
    """A spec of 1 to `max_layers` layers on a small random input."""
    shape = [draw(st.integers(1, max_channels)), draw(st.integers(1, max_size)), draw(st.integers(1, max_size))]
    x: torch.Tensor | None = torch.empty(2, *shape, device="meta")
    layers = []
    for index in range(draw(st.integers(1, max_layers))):
        drawn = draw(layer(None if x is None else tuple(x.shape[1:])))
        if draw(sometimes):
            drawn["name"] = f"n{index}"  # never a default name such as conv3, so never a duplicate
        layers.append(drawn)
        try:
            x = None if x is None else step(drawn, x)[1]
        except Exception:
            x = None
    return {"name": "random", "input": shape, "layers": layers}


@st.composite
def windowed_specs(draw: st.DrawFn) -> dict:
    """A one-layer spec: a conv or an avgpool on a small map, for checking which input rows are read."""
    shape = [draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))]
    drawn = draw(st.one_of(conv(tuple(shape)), pool("avgpool")))
    return {"name": "window", "input": shape, "layers": [drawn]}
