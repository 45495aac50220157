"""Torch measurements of which input pixels can reach an output: a spec's layers built by the oracle
(tests/torch_oracle.py) with every weight and input positive, so that no gradient cancels, and with the layers
whose gradient depends on the values made linear: max and min pooling become sums over the same windows
(a max passes its gradient to one pixel only), adaptive max pooling an adaptive mean, element-wise layers
(activations, softmax, local response norm) identities, layer norm an identity on a map (it mixes the channels of
a position alone) and a sum of all features on features, batchnorm, dropout and stochastic depth their evaluation
forms.
A pixel can reach an output exactly when its gradient from that output is nonzero."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_oracle import step

POOLS = ("maxpool", "minpool")
IDENTITIES = ("relu", "tanh", "sigmoid", "gelu", "silu", "elu", "leaky_relu", "softmax", "lrn")
IDENTITIES += ("relu6", "hardswish", "hardsigmoid")


def _pair(value: int | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class SumPool(nn.Module):
    """The sum over each window of a max or min pool described by `layer`, with the pool's output size."""

    def __init__(self, layer: dict, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.kernel = _pair(layer["kernel"])
        self.stride = _pair(layer.get("stride") or layer["kernel"])
        self.padding = _pair(layer.get("padding", 0))
        self.dilation = _pair(layer.get("dilation", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rows, columns = self.pool(x.float()).shape[-2:]  # ceil_mode's last windows included
        (p_h, p_w), (s_h, s_w) = self.padding, self.stride
        x = F.pad(x, (p_w, p_w + s_w, p_h, p_h + s_h))  # room for a ceil_mode window past the right padding
        ones = torch.ones(x.shape[1], 1, *self.kernel, dtype=x.dtype)
        y = F.conv2d(x, ones, stride=self.stride, dilation=self.dilation, groups=x.shape[1])
        return y[..., :rows, :columns]


def linearised(layer: dict, module: nn.Module, x: torch.Tensor) -> nn.Module:
    """The torch module of `layer` on input `x`, made linear as described above, in float64 with positive
    weights."""
    if layer["type"] in POOLS:
        module = SumPool(layer, module)
    elif layer["type"] == "adaptive_maxpool":
        module = nn.AdaptiveAvgPool2d(module.output_size)
    elif layer["type"] in IDENTITIES or (layer["type"] == "layernorm" and x.dim() == 4):
        module = nn.Identity()
    elif layer["type"] == "layernorm":  # each feature from all of them, as layer norm's output is
        module = nn.Linear(x.shape[1], x.shape[1], bias=False)
    module = module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(0.5, 1.0)
    return module


def linear_modules(spec: dict) -> list[nn.Module]:
    """The spec's layers as float64 torch modules in evaluation mode, positive and linear as described above."""
    x = torch.rand(1, *spec["input"])
    modules = []
    for layer in spec["layers"]:
        module, y = step(layer, x)
        modules.append(linearised(layer, module, x))
        x = y
    return modules


def reached(modules: list[nn.Module], shape: list[int], outputs: list[tuple[int, ...]]) -> torch.Tensor:
    """For each output index (c, h, w) or (f,) of the last module, the input pixels that reach it: [P, H, W]."""
    x = torch.rand(len(outputs), *shape, dtype=torch.float64).add_(0.5).requires_grad_()
    y = nn.Sequential(*modules)(x)
    picked = torch.stack([y[(sample, *index)] for sample, index in enumerate(outputs)])
    picked.sum().backward()
    return x.grad.abs().amax(dim=1) > 0  # [P, H, W]: any channel


def reached_by_all(modules: list[nn.Module], shape: list[int]) -> torch.Tensor:
    """The input pixels that reach some output of the last module: [H, W]."""
    x = torch.rand(1, *shape, dtype=torch.float64).add_(0.5).requires_grad_()
    nn.Sequential(*modules)(x).sum().backward()
    return x.grad.abs().amax(dim=1)[0] > 0
