"""Torch modules that torch itself does not ship, for layer kinds that need them."""

from __future__ import annotations

import torch
from torch import nn


class MinPool2d(nn.MaxPool2d):
    """Min over each window: -max_pool2d(-x), with MaxPool2d's arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(-x)
