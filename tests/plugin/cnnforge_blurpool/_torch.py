"""blur_pool's torch module, imported when a network is built."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BlurPool2d(nn.Module):
    """A fixed binomial low-pass filter per channel, then subsampling by `stride`."""

    def __init__(self, channels: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
        super().__init__()
        row = torch.tensor([math.comb(kernel - 1, i) for i in range(kernel)], dtype=torch.float32)
        square = row[:, None] * row[None, :] / row.sum() ** 2
        self.register_buffer("filter", square.expand(channels, 1, kernel, kernel).contiguous(), persistent=False)
        self.stride, self.pads = stride, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.pads
        x = F.pad(x, (lo, hi, lo, hi), mode="reflect")  # [N, C, H + k - 1, W + k - 1]
        return F.conv2d(x, self.filter, stride=self.stride, groups=x.shape[1])  # [N, C, ceil(H/s), ceil(W/s)]
