"""The `cnnforge` command. Each subcommand imports what it needs when it runs, so `check` stays light."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__

if TYPE_CHECKING:
    from .compiler import Compiled
    from .diagnostics import Diagnostic

SPEC_SUFFIXES = (".yaml", ".yml")
DIAGRAM_SUFFIXES = (".svg", ".png")


def _spec_files(path: Path) -> tuple[list[Path], list[Diagnostic]]:
    """`path` itself, or the spec files under it when it is a folder (whatever they are: reading says if one is
    not a regular file), with an error for each folder under it that cannot be listed."""
    from .diagnostics import Diagnostic

    if not os.path.isdir(path):  # False too for a path that cannot be looked at: reading it says why
        return [path], []
    found: list[Path] = []
    unreadable: list[Diagnostic] = []

    def refuse(error: OSError) -> None:
        unreadable.append(Diagnostic(str(error.filename), f"cannot read folder: {error.strerror or error}"))

    for folder, _, names in os.walk(path, onerror=refuse):  # a folder that cannot be listed is not a pass
        found += [Path(folder, name) for name in names if Path(name).suffix in SPEC_SUFFIXES]
    if not found and not unreadable:  # a folder with nothing to check is more likely a mistyped path than a pass
        unreadable.append(
            Diagnostic(str(path), f"no {' or '.join('*' + s for s in SPEC_SUFFIXES)} files in this folder")
        )
    return sorted(found), unreadable


def check(args: argparse.Namespace) -> int:
    from .compiler import check_file
    from .layers import show

    diagnostics: list[Diagnostic] = []
    files: list[dict] = []
    for name in args.files:
        paths, problems = _spec_files(Path(name))
        for problem in problems:
            diagnostics.append(problem)
            files.append({"file": problem.file, "ok": False})
            if args.format == "text":
                print(problem)
        for path in paths:
            compiled = check_file(path, args.set)
            diagnostics += compiled.diagnostics
            files.append({"file": compiled.file, "ok": compiled.ok})
            if args.format == "text":
                for diagnostic in compiled.diagnostics:
                    print(diagnostic)
                if compiled.ok and not args.quiet:
                    print(
                        f"{compiled.file}: ok: {show(compiled.spec.input)} -> {show(compiled.output)}, "
                        f"{compiled.total_params:,} params, {compiled.total_macs():,} MACs"
                    )
    if args.format == "json":
        print(json.dumps({"files": files, "diagnostics": [d.to_json() for d in diagnostics]}, indent=2))
    return 0 if all(f["ok"] for f in files) else 1


def schema(args: argparse.Namespace) -> int:
    from .spec.schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _compiled(args: argparse.Namespace) -> Compiled | None:
    """The spec file `args.file` compiled with `args.set`, its diagnostics said on stderr; None if it has errors."""
    from .compiler import check_file

    compiled = check_file(args.file, args.set)
    for diagnostic in compiled.diagnostics:
        print(diagnostic, file=sys.stderr)
    return compiled if compiled.ok else None


def summary(args: argparse.Namespace) -> int:
    from .summary import as_json, as_table

    if (compiled := _compiled(args)) is None:
        return 1
    if args.json:
        print(json.dumps(as_json(compiled, args.macs, args.batch), indent=2))
    else:
        print(as_table(compiled, args.macs, args.batch, args.analysis, args.depth))
    return 0


def sizes(args: argparse.Namespace) -> int:
    from .sizes import as_json, as_text, find
    from .spec.read import read

    loaded = read(args.file, args.set)
    if loaded.spec is None:
        for diagnostic in loaded.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    answer = find(loaded.spec, loaded.file, loaded.source)
    print(json.dumps(as_json(answer), indent=2) if args.json else as_text(answer))
    return 0 if answer.accepted else 1


MAX_BATCH = 2**31 - 1  # as sizes: a batch beyond it is a typo, and would print absurd memory figures


def _batch(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_BATCH))) or not 1 <= int(text) <= MAX_BATCH:
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {MAX_BATCH}, found {shown!r}")
    return int(text)


def draw(args: argparse.Namespace) -> int:
    output = Path(args.output or Path(args.file).with_suffix(".svg").name)
    if output.suffix.lower() not in DIAGRAM_SUFFIXES:
        print(f"cnnforge draw: {output}: the file name must end in .svg or .png", file=sys.stderr)
        return 2
    if (compiled := _compiled(args)) is None:
        return 1
    try:
        from .diagram.draw import save
    except ImportError as error:
        print(f"cnnforge draw: needs matplotlib (pip install 'cnnforge[train]'): {error}", file=sys.stderr)
        return 2
    from .files import WriteError

    try:
        written = save(compiled, output)
    except WriteError as error:
        print(f"cnnforge draw: error: {error}", file=sys.stderr)
        return 1
    print(f"{written}: {compiled.spec.name}, drawn from {compiled.file}")
    return 0


def weights(args: argparse.Namespace) -> int:
    if (compiled := _compiled(args)) is None:
        return 1
    try:
        import torch

        from .files import WriteError, write_new
        from .weights import WeightsError, convert
    except ImportError as error:
        print(f"cnnforge weights: needs torch (pip install 'cnnforge[train]'): {error}", file=sys.stderr)
        return 2
    try:
        mapped = convert(compiled, args.source, args.skip)
    except WeightsError as error:
        print(f"cnnforge weights: error: {error}", file=sys.stderr)
        return 1
    output = Path(args.output or f"{compiled.spec.name}.pt")
    try:
        (written,) = write_new(
            output.parent, output.stem, {output.suffix or ".pt": lambda file: torch.save(mapped.state, file)}
        )
    except WriteError as error:
        print(f"cnnforge weights: error: {error}", file=sys.stderr)
        return 1
    print(
        f"{written}: {len(mapped.state)} tensors of {args.source} in the layout of {compiled.file} "
        f"({compiled.spec.name}, {compiled.total_params:,} parameters)"
    )
    if mapped.skipped:
        print(f"skipped {len(mapped.skipped)} tensors of {args.source} matching {', '.join(args.skip)}:")
        for key in mapped.skipped:
            print(f"  {key}")
    return 0


def report(args: argparse.Namespace) -> int:
    try:
        from .report import sweep
        from .report.page import ReportError, write
        from .report.run import is_sweep
    except ImportError as error:
        print(f"cnnforge report: needs the train extra (pip install 'cnnforge[train]'): {error}", file=sys.stderr)
        return 2
    folder = Path(args.run_dir)
    try:
        output = (sweep.write if is_sweep(folder) else write)(folder, Path(args.output) if args.output else None)
    except ReportError as error:
        print(f"cnnforge report: error: {error}", file=sys.stderr)
        return 1
    print(output)
    return 0


def _hydra_command(name: str, argv: list[str]) -> int:
    """`cnnforge train` (the Hydra app), or a command that uses a trained network (cnnforge/use/NAME.py); these
    parse their own KEY=VALUE command lines."""
    from .layers import LAYERS

    LAYERS.load_plugins()  # here, where a broken plugin is said in one line, rather than inside Hydra's job
    try:
        if name == "train":
            from .train import app

            return app.main(argv)
        from .use.command import run

        use = importlib.import_module(f".use.{name}", __package__)
    except ImportError as error:
        extra = "export" if name == "export" else "train"
        print(f"cnnforge {name}: needs the {extra} extra (pip install 'cnnforge[{extra}]'): {error}", file=sys.stderr)
        return 2
    return run(name, use.command, argv)


def _binding(text: str) -> tuple[str, object]:
    """NAME=VALUE, the value read as a YAML scalar: `classes=10` binds the integer 10."""
    from .spec.source import SourceError, parse

    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, found {text!r}")
    try:
        parsed = parse(value).data
    except SourceError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error.message}") from None
    if isinstance(parsed, (dict, list)) or parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r}: the value must be a number, true/false or a word")
    return name, parsed


def _add_set(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--set",
        metavar="NAME=VALUE",
        type=_binding,
        action="append",
        default=[],
        help="set a parameter the spec declares under `params`, e.g. --set classes=10 (repeatable)",
    )


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="cnnforge", description="Convolutional networks described as data.")
    main.add_argument("--version", action="version", version=f"cnnforge {__version__}")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help in HYDRA_COMMANDS.items():
        commands.add_parser(name, help=help, add_help=False)

    sub = commands.add_parser(
        "check",
        help="check spec files statically (no torch); exit 1 on any error",
        description="Check spec files: shapes, parameters and MACs, without torch. "
        "Prints file:line:col: error|warning: ... lines; exits 0 when no file has an error, "
        "1 when any has, 2 on usage errors.",
    )
    sub.add_argument("files", nargs="+", metavar="FILE", help="spec files, or folders to search for *.yaml/*.yml")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only problems, not a line per good file")
    sub.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: one object {files: [{file, ok}], diagnostics: [{file, line, column, severity, "
        "layer_index, layer_name, layer_type, message}]} for editors and CI annotations",
    )
    _add_set(sub)
    sub.set_defaults(run=check)

    sub = commands.add_parser(
        "summary",
        help="per-layer table of shapes, parameters, MACs, receptive fields and memory",
        description="Per-layer output shape, parameters and MACs, and with -a receptive fields and memory, "
        "computed statically.",
    )
    sub.add_argument("file", metavar="FILE", help="a spec file")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _add_set(sub)
    sub.add_argument(
        "--macs",
        choices=["cnnforge", "torchinfo"],
        default="cnnforge",
        help="MAC convention: cnnforge (bias excluded, default) or torchinfo (bias included)",
    )
    sub.add_argument(
        "-a",
        "--analysis",
        action="store_true",
        help="add columns: receptive field (RF: the input rows x columns one output position spans, padding "
        "included; 'all' when every position spans the whole input), jump (input pixels between neighbouring "
        "positions), start (where position 0's field starts; negative: in the padding), the output's bytes per "
        "sample in float32 (bfloat16: half), and the bytes kept for the backward pass (see --batch)",
    )
    sub.add_argument(
        "--batch",
        type=_batch,
        default=1,
        metavar="N",
        help="batch size for the activation memory (default 1): the tensors torch's autograd keeps for the "
        "backward pass while training in float32, as measured on the CPU (a conv keeps its input, relu its "
        "output, max pooling its input and int64 indices, dropout its mask, batchnorm its input and 2 floats "
        "per channel...), each tensor once; parameters (given apart, float32), their gradients and optimizer "
        "state are not included",
    )
    sub.add_argument(
        "--depth",
        type=_batch,
        metavar="N",
        help="in a graph's table, show N levels of its tree (1: the top-level layers and groups), each group's "
        "row giving the totals of what it holds (default: every level)",
    )
    sub.set_defaults(run=summary)

    sub = commands.add_parser(
        "sizes",
        help="which input sizes H x W a spec accepts, and which leave no pixel unread",
        description="Which input sizes H and W the spec accepts (its channels are fixed), found statically: "
        "the smallest H and W, or, where a linear layer after flatten pins the feature count, the exact set; "
        "and the sizes at which every input pixel reaches the output (no stride leaves rows or columns "
        "unread), as H = a + p*k, worked out size by size over several periods p of the strides. "
        "Exit status 1 when no size is accepted.",
    )
    sub.add_argument("file", metavar="FILE", help="a spec file")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_set(sub)
    sub.set_defaults(run=sizes)

    sub = commands.add_parser(
        "draw",
        help="draw a spec's architecture as SVG or PNG (needs matplotlib, no torch)",
        description="Draw the architecture from the spec alone: each feature map a box sized by its shape, "
        "kernels, fully connected layers as bars, and each stage's parameters and MACs. In a graph, branches are "
        "drawn side by side and an empty one (a skip connection) as an arc past them, groups in dashed frames, and "
        "repetitions that are alike once, as ×N with what they give.",
    )
    sub.add_argument("file", metavar="FILE", help="a spec file")
    sub.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="an .svg or .png file (default: FILE's name as .svg, here); never replaced: when it exists, the "
        "diagram goes to NAME-2.svg and so on",
    )
    _add_set(sub)
    sub.set_defaults(run=draw)

    sub = commands.add_parser(
        "weights",
        help="convert a weights file (torchvision's .pth) to a spec's layout (needs torch)",
        description="Read a state_dict saved with torch.save (torchvision's pretrained files, as torch caches them "
        "in ~/.cache/torch/hub/checkpoints/) and write it in the layout of the spec's model: the same tensors, in "
        "order, under the spec's names. Each tensor is checked against the spec's, by position: the first that "
        "differs is an error naming both. Only tensors and plain values are read from the file. Train from the "
        "result (or the original file) with cnnforge train model.weights=PATH.",
    )
    sub.add_argument("file", metavar="SPEC", help="a spec file")
    sub.add_argument("source", metavar="WEIGHTS", help="a .pth/.pt file holding a state_dict")
    sub.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the file to write (default: the spec's name as .pt, here); never replaced: when it exists, the weights "
        "go to NAME-2.pt and so on",
    )
    sub.add_argument(
        "--skip",
        metavar="PATTERN",
        action="append",
        default=[],
        help="leave out the file's tensors whose names match this shell pattern, case-insensitive (repeatable): "
        "--skip 'aux*' for the auxiliary classifiers of torchvision's GoogLeNet and Inception v3 files; each "
        "one left out is listed",
    )
    _add_set(sub)
    sub.set_defaults(run=weights)

    sub = commands.add_parser(
        "report",
        help="one self-contained HTML page of a training run or a sweep",
        description="Write one HTML page of a run folder: config, summary, diagram, curves, metrics per epoch "
        "and the validation confusion matrix of its checkpoint. Of a sweep folder (cnnforge train -m): its jobs "
        "best first, their validation accuracy on one plot, and links to each job's page, written too. The "
        "pages need no server and load nothing.",
    )
    sub.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run folder, outputs/<date>/<time>_<arch>/, or a sweep's folder"
    )
    sub.add_argument(
        "-o", "--output", metavar="OUT", help="the HTML file (default: RUN_DIR/report.html, replaced if there)"
    )
    sub.set_defaults(run=report)

    sub = commands.add_parser(
        "schema",
        help="print the JSON Schema of the spec format (for editors)",
        description="Print the JSON Schema of spec files, generated from cnnforge's models: every layer kind "
        "registered, the installed plugins' included, inside blocks, branches and sequences too.",
    )
    sub.set_defaults(run=schema)
    return main


HYDRA_COMMANDS = {
    "train": "train a spec (Hydra app: cnnforge train arch=NAME key=value ...; --help lists the options)",
    "evaluate": "loss, accuracy, top-5 accuracy (over 5 classes), confusion matrix and accuracy per class of a "
    "checkpoint: cnnforge evaluate ckpt=PATH [data=NAME]",
    "predict": "top-k classes of images: cnnforge predict ckpt=PATH|model=FILE.onnx [top_k=3] IMAGE... (model=: "
    "an exported file, run without torch)",
    "explain": "class-activation heatmaps (Grad-CAM, ...) over images: cnnforge explain ckpt=PATH "
    "[method=gradcam] [layer=PATH] [class=C] IMAGE... (--help lists the methods)",
    "features": "a layer's activation maps, and the first conv layer's filters, as image grids: "
    "cnnforge features ckpt=PATH [layer=PATH] [filters=true] IMAGE...",
    "preview": "augmented training samples as the network will see them, as a labelled grid: cnnforge preview "
    "[data=NAME] [augment=NAME] [n=32] [seed=0] [out=preview.png]",
    "export": "a checkpoint, or a spec with random weights, as a verified ONNX, torch.export or TorchScript file: "
    "cnnforge export ckpt=PATH|spec=FILE [format=onnx] [batch=dynamic|N] (--help lists the options)",
}


class OutputError(Exception):
    """Writing to the standard output failed: a full disk, a closed pipe."""

    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


class _Output:
    """The standard output, whose write errors become OutputError, told apart from the command's own OSErrors."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            raise OutputError(error) from error

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as error:
            raise OutputError(error) from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if hasattr(signal, "SIGXFSZ"):  # over a file-size limit (ulimit -f), a write fails with EFBIG, said as one line
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):  # a name such as 'réseau' under PYTHONIOENCODING=ascii: r\xe9seau
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    stdout, sys.stdout = sys.stdout, _Output(sys.stdout)  # type: ignore[assignment]
    try:
        if argv and argv[0] in HYDRA_COMMANDS:  # Hydra parses their command lines itself
            code = _hydra_command(argv[0], argv[1:])
        else:
            args = parser().parse_args(argv)
            args.set = dict(getattr(args, "set", []))
            code = args.run(args)
        sys.stdout.flush()  # now, not at exit, where a failure could only be ignored
        return code
    except OutputError as failure:
        _discard_output(stdout)
        if isinstance(failure.error, BrokenPipeError):  # `cnnforge summary ... | head`: the reader has enough
            return 0
        print(f"cnnforge: error: cannot write output: {failure.error.strerror or failure.error}", file=sys.stderr)
        return 1
    except Exception as error:
        plugins = sys.modules.get("cnnforge.layers.plugins")  # a PluginError comes from there, once loaded
        if plugins is None or not isinstance(error, plugins.PluginError):
            raise
        print(f"cnnforge: error: {error}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout


def _discard_output(stdout: TextIO) -> None:
    """Point the standard output at os.devnull, so that what is left in its buffer goes there at exit rather than
    failing again with 'Exception ignored ...'."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):  # not a real file: nothing to redirect
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
