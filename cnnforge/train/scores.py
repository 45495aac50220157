"""How a model does on labelled batches: mean loss, top-1 and top-5 accuracy, the confusion matrix, and from it
the accuracy of each class. One function serves training's validation, `cnnforge evaluate` and the report."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TOP_K = 5  # top-5 accuracy is reported where there are more classes than this


@dataclass
class Scores:
    """Mean loss, top-1 accuracy, top-5 accuracy (None with 5 classes or fewer) and the confusion matrix
    (rows: true class, columns: predicted) over some samples."""

    loss: float
    accuracy: float
    top5: float | None
    confusion: torch.Tensor  # [classes, classes], int64 on the CPU

    @property
    def samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def per_class_counts(self) -> list[tuple[int, int]]:
        """Each class's samples, and how many of them were predicted as it."""
        return list(zip(self.confusion.sum(dim=1).tolist(), self.confusion.diagonal().tolist(), strict=True))

    @property
    def per_class(self) -> list[float | None]:
        """Each class's accuracy (its recall): the share of its samples predicted as it; None for a class with no
        samples."""
        return [hit / total if total else None for total, hit in self.per_class_counts]

    def __str__(self) -> str:
        """'loss 0.1234, accuracy 0.9722', then ', top-5 0.9990' where top-5 accuracy is defined."""
        top5 = "" if self.top5 is None else f", top-5 {self.top5:.4f}"
        return f"loss {self.loss:.4f}, accuracy {self.accuracy:.4f}{top5}"


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    prepare: Callable[[torch.Tensor], torch.Tensor] | None,
    classes: int,
    autocast: Any = contextlib.nullcontext,
    device: torch.device | str = "cpu",
    total: Callable[[torch.Tensor], torch.Tensor] = lambda sums: sums,
) -> Scores:
    """The Scores of `model` over `batches`, which are on `device` and prepared already when `prepare` is None.
    `total` adds up other processes' sums."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    in_top5 = torch.zeros((), dtype=torch.long, device=device)
    confusion = torch.zeros(classes * classes, dtype=torch.long, device=device)
    for x, y in batches:
        with autocast():
            out = model(x if prepare is None else prepare(x))  # [N, classes]
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        confusion += torch.bincount(y * classes + out.argmax(dim=1), minlength=classes**2)
        if classes > TOP_K:
            in_top5 += (out.topk(TOP_K, dim=1).indices == y[:, None]).any(dim=1).sum()
    loss_sum, in_top5, confusion = total(loss_sum), total(in_top5), total(confusion).view(classes, classes).cpu()
    n = max(int(confusion.sum()), 1)
    top5 = int(in_top5) / n if classes > TOP_K else None
    return Scores(loss_sum.item() / n, int(confusion.trace()) / n, top5, confusion)
