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


class ChannelLinear(nn.Linear):
    """nn.Linear(C_i, C_o) over the channels at each position of [N, C_i, H, W], with nn.Linear's parameters
    (weight [C_o, C_i], bias [C_o]): ConvNeXt's pointwise convolutions, which torchvision's weights load into.

    >>> ChannelLinear(96, 384)(torch.rand(2, 96, 56, 56)).shape
    torch.Size([2, 384, 56, 56])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, H, W, C_i], copied: the product keeps it for the weight's gradient. torch copies it anyway when the
        # positions of a batch cannot be read as one matrix, and copying always keeps one rule for the memory kept.
        x = x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
        return super().forward(x).permute(0, 3, 1, 2).contiguous()  # [N, H, W, C_o] -> [N, C_o, H, W]


class LayerScale(nn.Module):
    """A learnable scale per channel of [N, C, H, W], initialised to `init`: ConvNeXt's CNBlock.layer_scale.

    >>> LayerScale(96, 1e-6).layer_scale.shape
    torch.Size([96, 1, 1])
    """

    def __init__(self, channels: int, init: float) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * x

    def extra_repr(self) -> str:
        return f"{self.layer_scale.shape[0]}"


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


class Chunk(nn.Module):
    """Part `index` of torch.chunk(x, chunks, dim=1): a view of some of the channels."""

    def __init__(self, chunks: int, index: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.chunk(x, self.chunks, dim=1)[self.index]

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, index={self.index}"


Step = str | tuple  # a child's name, or (merge, (branch steps, ...))


def _merge(op: str, outputs: list[torch.Tensor]) -> torch.Tensor:
    if op == "concat":
        return torch.cat(outputs, 1)
    result = outputs[0]
    for other in outputs[1:]:
        result = result + other if op == "add" else result * other
    return result


class Graph(nn.Module):
    """Children run in the order of the spec, with branches: a step is a child's name, or a merge of branches
    (each a tuple of steps from the same input; an empty one is the input itself) by "add", "concat" or
    "multiply"."""

    def __init__(self, children: dict[str, nn.Module], program: tuple[Step, ...]) -> None:
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._program = program  # "_": no child's name, which starts with a letter, can be this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._program, x)

    def _run(self, steps: tuple[Step, ...], x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            if isinstance(step, str):
                x = self._modules[step](x)  # type: ignore[misc]
            else:
                op, branches = step
                x = _merge(op, [self._run(branch, x) for branch in branches])
        return x

    def extra_repr(self) -> str:
        return _show(self._program)


def _show(steps: tuple[Step, ...]) -> str:
    parts = []
    for step in steps:
        if isinstance(step, str):
            parts.append(step)
        else:
            op, branches = step
            parts.append(f"{op}(" + ", ".join("[" + _show(b) + "]" for b in branches) + ")")
    return " -> ".join(parts)
