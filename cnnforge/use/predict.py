"""`cnnforge predict`: the most probable classes of images, as a trained checkpoint sees them: a line per image,
or one JSON list or CSV table for other programs."""

from __future__ import annotations

import csv
import json
import sys

from .command import (
    UsageError,
    choice_option,
    count_option,
    device_option,
    image_files,
    long_options,
    read_image,
    split_args,
)
from .model import load

USAGE = (
    "usage: cnnforge predict ckpt=PATH [top_k=3] [format=text|json|csv] [device=auto|cpu|cuda|mps] IMAGE_OR_FOLDER..."
)
FORMATS = ("text", "json", "csv")


def command(argv: list[str]) -> int:
    """cnnforge predict ckpt=PATH [top_k=3] [format=text] [device=auto] IMAGE_OR_FOLDER..."""
    argv = long_options(argv, ("format",), USAGE)
    options, names = split_args(argv, ("ckpt", "top_k", "format", "device"), USAGE)
    if "ckpt" not in options or not names:
        raise UsageError(USAGE)
    top_k = count_option(options, "top_k", 3, USAGE)
    form = choice_option(options, "format", FORMATS, USAGE)
    trained = load(options["ckpt"], device_option(options, USAGE))
    files, ok = image_files(names)
    k = min(top_k, len(trained.classes))
    table = csv.writer(sys.stdout, lineterminator="\n")
    if form == "csv":
        table.writerow(["file", *(f"{column}{i}" for i in range(1, k + 1) for column in ("class", "prob"))])
    rows = []
    for name in files:
        x = read_image(name, trained.mode)
        if x is None:
            ok = False
            continue
        top = trained.predict(x[0], k)
        if form == "text":
            print(f"{name}: " + ", ".join(f"{label} ({p:.3f})" for label, p in top))
        elif form == "csv":
            table.writerow([name, *(value for pair in top for value in pair)])
        else:
            rows.append({"file": name, "top": [{"class": label, "probability": p} for label, p in top]})
    if form == "json":
        print(json.dumps(rows, indent=2))
    return 0 if ok else 1
