"""`cnnforge predict`: the most probable classes of images, as a trained checkpoint sees them."""

from __future__ import annotations

from .command import UsageError, count_option, device_option, read_image, split_args
from .model import load

USAGE = "usage: cnnforge predict ckpt=PATH [top_k=3] [device=auto|cpu|cuda|mps] IMAGE..."


def command(argv: list[str]) -> int:
    """cnnforge predict ckpt=PATH [top_k=3] [device=auto] IMAGE..."""
    options, names = split_args(argv, ("ckpt", "top_k", "device"), USAGE)
    if "ckpt" not in options or not names:
        raise UsageError(USAGE)
    top_k = count_option(options, "top_k", 3, USAGE)
    trained = load(options["ckpt"], device_option(options, USAGE))
    status = 0
    for name in names:
        x = read_image(name, trained.mode)
        if x is None:
            status = 1
            continue
        top = trained.predict(x[0], top_k)
        print(f"{name}: " + ", ".join(f"{label} ({p:.3f})" for label, p in top))
    return status
