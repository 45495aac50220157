"""A run's per-epoch metrics: a CSV file and a PNG of the loss and accuracy curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import replace

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


def write_csv(rows: list[dict], path: Path) -> None:
    """All rows so far, replacing the file atomically."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    replace(path, lambda file: file.write(text.getvalue().encode()))


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, training and validation, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r["epoch"] for r in rows]
    figure, (loss, acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axes, key, label in ((loss, "loss", "loss (cross-entropy)"), (acc, "acc", "accuracy")):
        axes.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", label="train")
        axes.plot(epochs, [r[f"val_{key}"] for r in rows], "s-", label="validation")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper right" if key == "loss" else "lower right")
    acc.set_ylim(0, 1)
    figure.suptitle(title)
    try:
        replace(path, lambda file: figure.savefig(file, format="png", dpi=100))
    finally:
        plt.close(figure)
