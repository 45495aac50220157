"""Torch modules that torch itself does not ship, for layer kinds that need them.

Like torch's own layers, each hands the next layer a view of its input or a new tensor laid out as torch lays out a
new [N, C, H, W] tensor (contiguous). The memory analysis (cnnforge/analysis.py) relies on it, as what the next layer
keeps can depend on the layout: flatten copies a channels-last tensor, for one. torchvision's LayerNorm2d and
ConvNeXt's permuted linear layers hand on their results channels last; these give the same values from the same
parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MinPool2d(nn.MaxPool2d):
    """Min over each window: -max_pool2d(-x), with MaxPool2d's arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(-x)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels at each position of [N, C, H, W], with nn.LayerNorm's parameters (weight [C],
    bias [C]): torchvision's ConvNeXt LayerNorm2d, which torchvision's weights load into.

    >>> LayerNorm2d(96, eps=1e-6)(torch.rand(2, 96, 56, 56)).shape
    torch.Size([2, 96, 56, 56])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # [N, H, W, C]
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2).contiguous()  # [N, C, H, W]


class StochasticDepth(nn.Module):
    """While training, zero each sample (mode "row") or the whole batch ("batch") with probability p and scale what
    survives by 1/(1 - p); the identity in evaluation. torchvision.ops.StochasticDepth, drawing the same random
    numbers; written here because torchvision is not always installed."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim  # [N, 1, 1, 1] or [1, ...]
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"
