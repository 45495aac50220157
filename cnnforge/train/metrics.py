"""A run's metrics: metrics.csv, a row per epoch (and, where the learning rate changes within epochs, a row per
step before it), and curves.png: loss and accuracy, training against validation, with the learning rate under
them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import replace

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]
# Written where the run has them: top-5 accuracy (more than 5 classes), the EMA's scores, and the step rows' step.
EXTRA_COLUMNS = ["val_top5", "ema_val_loss", "ema_val_acc", "ema_val_top5", "step"]


def columns(rows: list[dict], steps: list[dict]) -> list[str]:
    """The columns of a metrics.csv holding `rows` (epochs) and `steps`."""
    present = {key for row in [*rows, *steps] for key in row}
    return COLUMNS + [column for column in EXTRA_COLUMNS if column in present]


def write_csv(rows: list[dict], path: Path, steps: list[dict] | None = None) -> None:
    """All epoch `rows` so far, each after its epoch's `steps` rows ({epoch, step, lr}: the step counted over the
    run), replacing the file atomically."""
    steps = steps or []
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns(rows, steps))
    writer.writeheader()
    by_epoch: dict[int, list[dict]] = {}
    for step in steps:
        by_epoch.setdefault(step["epoch"], []).append(step)
    for row in rows:
        for step in by_epoch.get(row["epoch"], []):
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in step.items()})
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    replace(path, lambda file: file.write(text.getvalue().encode()))


def epochs(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The epoch rows of a metrics.csv read back (csv.DictReader's rows): those with a validation accuracy."""
    return [row for row in rows if row.get("val_acc")]


def plot(rows: list[dict], path: Path, title: str, steps: list[dict] | None = None, steps_per_epoch: int = 1) -> None:
    """Loss and accuracy per epoch, training and validation (and the EMA's) on one plot each, side by side; the
    learning rate under them, step by step where `steps` has it (with `steps_per_epoch` to place the steps)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    figure = plt.figure(figsize=(10, 5.6), constrained_layout=True)
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 1.2])
    loss, acc = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    rate = figure.add_subplot(grid[1, :])
    for axes, key, label in ((loss, "loss", "loss (cross-entropy)"), (acc, "acc", "accuracy")):
        axes.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", label="train")
        axes.plot(epochs, [r[f"val_{key}"] for r in rows], "s-", label="validation")
        if all(f"ema_val_{key}" in r for r in rows):
            axes.plot(epochs, [r[f"ema_val_{key}"] for r in rows], "^--", label="validation, EMA weights")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper right" if key == "loss" else "lower right")
    acc.set_ylim(0, 1)
    if steps:  # the learning rate of each step, at its place within its epoch (steps done / steps per epoch)
        rate.plot([s["step"] / steps_per_epoch for s in steps], [s["lr"] for s in steps], "-", color="tab:green")
        rate.set_xlabel("epoch (learning rate of each step)")
    else:
        rate.step(epochs, [r["lr"] for r in rows], "o-", where="post", color="tab:green")
        rate.set_xlabel("epoch")
    rate.set_ylabel("learning rate")
    rate.grid(alpha=0.3)
    for axes in (loss, acc, rate):  # one epoch axis for the three: an epoch's steps lie between it and the one before
        axes.set_xlim(epochs[0] - 1, epochs[-1] + 0.05)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    try:
        replace(path, lambda file: figure.savefig(file, format="png", dpi=100))
    finally:
        plt.close(figure)
