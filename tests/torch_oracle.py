"""Torch as the oracle: a spec's layers, as plain dicts, become torch.nn modules built here from their
fields alone (never through cnnforge), and run on a batch to see what torch accepts and computes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

Shape = tuple[int, ...]


class MinPool2d(nn.Module):
    """Min over each window: -max_pool2d(-x)."""

    def __init__(self, **pool: Any) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -F.max_pool2d(-x, **self.pool)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position, as torchvision's ConvNeXt LayerNorm2d computes it (channels
    last, F.layer_norm, channels first), handing on a contiguous [N, C, H, W] tensor as every other layer does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2).contiguous()


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels at each position, as ConvNeXt's pointwise convolutions compute it, on a copy of
    the map laid out channels last (which torch makes anyway for a batch of more than one sample)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format))
        return y.permute(0, 3, 1, 2).contiguous()


class LayerScale(nn.Module):
    """ConvNeXt's CNBlock.layer_scale: a [C, 1, 1] parameter that the branch is multiplied by."""

    def __init__(self, channels: int, init: float) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.ones(channels, 1, 1) * init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * x


class Chunk(nn.Module):
    def __init__(self, chunks: int, index: int) -> None:
        super().__init__()
        self.chunks, self.index = chunks, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.chunk(x, self.chunks, dim=1)[self.index]


class Stricter(Exception):
    """torch would run this layer, but cnnforge deliberately refuses it."""


def _pair(value: int | list[int]) -> tuple[int, int]:
    """`n` means [n, n]. (torch's adaptive pools take an int 1 as a mean over the last two axes of any
    tensor, features [N, F] included, and return [1, 1]; the pair is refused there like any other size.)"""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _kwargs(layer: dict, names: dict[str, str]) -> dict[str, Any]:
    """torch keyword arguments for the spec keys present in `layer`; torch's own defaults fill the rest.
    An [h, w] list goes to torch as it is, as torch takes an int or a pair for every size."""
    return {torch_name: layer[key] for key, torch_name in names.items() if key in layer}


def _conv(layer: dict, x: torch.Tensor) -> nn.Module:
    c_i, c_o, k_h, k_w = layer["shape"]
    names = {k: k for k in ("stride", "padding", "dilation", "groups", "bias", "padding_mode")}
    return nn.Conv2d(c_i, c_o, (k_h, k_w), **_kwargs(layer, names))


_POOL = {"kernel": "kernel_size", "stride": "stride", "padding": "padding", "ceil_mode": "ceil_mode"}


def _maxpool(layer: dict, x: torch.Tensor) -> nn.Module:
    return nn.MaxPool2d(**_kwargs(layer, {**_POOL, "dilation": "dilation"}))


def _minpool(layer: dict, x: torch.Tensor) -> nn.Module:
    return MinPool2d(**_kwargs(layer, {**_POOL, "dilation": "dilation"}))


def _avgpool(layer: dict, x: torch.Tensor) -> nn.Module:
    return nn.AvgPool2d(**_kwargs(layer, {**_POOL, "count_include_pad": "count_include_pad"}))


def _batchnorm(layer: dict, x: torch.Tensor) -> nn.Module:
    norm = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d
    return norm(layer.get("channels") or x.shape[1], **_kwargs(layer, {"eps": "eps", "momentum": "momentum"}))


def _linear(layer: dict, x: torch.Tensor) -> nn.Module:
    if x.dim() != 2:
        raise Stricter("cnnforge applies linear to features only, never to the last dim of a feature map")
    return nn.Linear(*layer["shape"], **_kwargs(layer, {"bias": "bias"}))


def _layernorm(layer: dict, x: torch.Tensor) -> nn.Module:
    norm = LayerNorm2d if x.dim() == 4 else nn.LayerNorm
    return norm(layer.get("channels") or x.shape[1], layer.get("eps", 1e-5), layer.get("affine", True))


def _channel_linear(layer: dict, x: torch.Tensor) -> nn.Module:
    return ChannelLinear(*layer["shape"], **_kwargs(layer, {"bias": "bias"}))


def _layer_scale(layer: dict, x: torch.Tensor) -> nn.Module:
    channels = layer.get("channels") or x.shape[1]
    if x.dim() != 4 or channels != x.shape[1]:  # torch would broadcast [C, 1, 1] against it all the same
        raise Stricter("cnnforge scales the channels of a feature map, as many as it has")
    return LayerScale(channels, layer.get("init", 1e-6))


def _chunk(layer: dict, x: torch.Tensor) -> nn.Module:
    if x.dim() != 4:
        raise Stricter("cnnforge splits the channels of a feature map only")
    return Chunk(layer["chunks"], layer["index"])


MODULES: dict[str, Callable[[dict, torch.Tensor], nn.Module]] = {
    "conv": _conv,
    "maxpool": _maxpool,
    "minpool": _minpool,
    "avgpool": _avgpool,
    "adaptive_avgpool": lambda layer, x: nn.AdaptiveAvgPool2d(_pair(layer["output"])),
    "adaptive_maxpool": lambda layer, x: nn.AdaptiveMaxPool2d(_pair(layer["output"])),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "lrn": lambda layer, x: nn.LocalResponseNorm(**_kwargs(layer, {k: k for k in ("size", "alpha", "beta", "k")})),
    "dropout": lambda layer, x: nn.Dropout(**_kwargs(layer, {"p": "p"})),
    "stochastic_depth": lambda layer, x: StochasticDepth(layer["p"], layer.get("mode", "row")),
    "flatten": lambda layer, x: nn.Flatten(),
    "linear": _linear,
    "relu": lambda layer, x: nn.ReLU(),
    "tanh": lambda layer, x: nn.Tanh(),
    "sigmoid": lambda layer, x: nn.Sigmoid(),
    "gelu": lambda layer, x: nn.GELU(),
    "silu": lambda layer, x: nn.SiLU(),
    "elu": lambda layer, x: nn.ELU(),
    "leaky_relu": lambda layer, x: nn.LeakyReLU(**_kwargs(layer, {"negative_slope": "negative_slope"})),
    "softmax": lambda layer, x: nn.Softmax(dim=1),
    "relu6": lambda layer, x: nn.ReLU6(),
    "hardswish": lambda layer, x: nn.Hardswish(),
    "hardsigmoid": lambda layer, x: nn.Hardsigmoid(),
    "identity": lambda layer, x: nn.Identity(),
    "chunk": _chunk,
    "channel_shuffle": lambda layer, x: nn.ChannelShuffle(layer["groups"]),
    "channel_linear": _channel_linear,
    "layer_scale": _layer_scale,
}


@dataclass
class Run:
    """What torch did with a spec: each layer's module and per-sample output shape, up to the first refusal."""

    modules: list[nn.Module] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    failed: int | None = None  # index of the first layer torch (or cnnforge's stricter rule) refuses
    error: str = ""
    stricter: bool = False

    @property
    def ok(self) -> bool:
        return self.failed is None


def step(layer: dict, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """Build `layer` for the batch `x` on x's device and apply it; raises whatever torch raises."""
    with torch.device(x.device):
        module = MODULES[layer["type"]](layer, x).eval()
    with torch.no_grad():
        return module, module(x)


def run(spec: dict, device: str = "meta", batch: int = 2) -> Run:
    """Build and run the spec's layers one by one on a random batch on `device`."""
    result = Run()
    x = torch.rand(batch, *spec["input"], device=device)
    for index, layer in enumerate(spec["layers"]):
        try:
            module, x = step(layer, x)
        except Stricter as error:
            result.failed, result.error, result.stricter = index, str(error), True
            return result
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            result.failed, result.error = index, f"{type(error).__name__}: {error}"
            return result
        result.modules.append(module)
        result.shapes.append(tuple(x.shape[1:]))
    return result


def macs(module: nn.Module, y: Shape) -> int:
    """Multiply-accumulates per sample from the module's own attributes, bias excluded."""
    if isinstance(module, nn.Conv2d):
        k_h, k_w = module.kernel_size
        return y[1] * y[2] * module.out_channels * (module.in_channels // module.groups) * k_h * k_w
    if isinstance(module, nn.Linear):  # at each position of a map (channel_linear), or once on features
        return module.in_features * module.out_features * (y[1] * y[2] if len(y) == 3 else 1)
    return 0


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
