"""Torch modules that torch itself does not ship, for layer kinds that need them."""

from __future__ import annotations

import torch
from torch import nn


class MinPool2d(nn.MaxPool2d):
    """Min over each window: -max_pool2d(-x), with MaxPool2d's arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -super().forward(-x)


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
