"""`cnnforge predict`: the most probable classes of images, as a trained checkpoint or an exported ONNX file sees
them: a line per image, or one JSON list or CSV table for other programs. An ONNX file is run by onnxruntime,
without torch (exported.py)."""

from __future__ import annotations

import csv
import json
import sys

from .command import UsageError, choice_option, count_option, image_files, long_options, read_picture, split_args

USAGE = (
    "usage: cnnforge predict ckpt=PATH|model=FILE.onnx [top_k=3] [format=text|json|csv] [device=auto|cpu|cuda|mps] "
    "IMAGE_OR_FOLDER..."
)
FORMATS = ("text", "json", "csv")


def _network(options: dict[str, str]) -> object:
    """The checkpoint (torch) or the exported file (onnxruntime) the options name: what has .classes, .mode and
    .predict(image, top_k)."""
    device = options.get("device", "auto")
    if "model" in options:
        try:
            from .exported import Exported, providers
        except ImportError as error:
            raise UsageError(f"model= needs onnxruntime (pip install 'cnnforge[onnx]'): {error}") from None
        if device != "auto":
            providers(device)  # a device onnxruntime has not here is said before the file is read
        return Exported.load(options["model"], device)
    try:
        from .command import device_option
        from .model import load
    except ImportError as error:
        raise UsageError(f"ckpt= needs torch (pip install 'cnnforge[train]'): {error}") from None
    return load(options["ckpt"], device_option(options, USAGE))


def command(argv: list[str]) -> int:
    """cnnforge predict ckpt=PATH|model=FILE.onnx [top_k=3] [format=text] [device=auto] IMAGE_OR_FOLDER..."""
    argv = long_options(argv, ("format",), USAGE)
    options, names = split_args(argv, ("ckpt", "model", "top_k", "format", "device"), USAGE)
    if ("ckpt" in options) == ("model" in options) or not names:
        raise UsageError(USAGE)
    top_k = count_option(options, "top_k", 3, USAGE)
    form = choice_option(options, "format", FORMATS, USAGE)
    network = _network(options)
    files, ok = image_files(names)
    k = min(top_k, len(network.classes))  # type: ignore[attr-defined]
    table = csv.writer(sys.stdout, lineterminator="\n")
    if form == "csv":
        table.writerow(["file", *(f"{column}{i}" for i in range(1, k + 1) for column in ("class", "prob"))])
    rows = []
    for name in files:
        image = read_picture(name, network.mode)  # type: ignore[attr-defined]
        if image is None:
            ok = False
            continue
        top = network.predict(image, k)  # type: ignore[attr-defined]
        if form == "text":
            print(f"{name}: " + ", ".join(f"{label} ({p:.3f})" for label, p in top))
        elif form == "csv":
            table.writerow([name, *(value for pair in top for value in pair)])
        else:
            rows.append({"file": name, "top": [{"class": label, "probability": p} for label, p in top]})
    if form == "json":
        print(json.dumps(rows, indent=2))
    return 0 if ok else 1
