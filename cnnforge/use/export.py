"""`cnnforge export`: a trained checkpoint, or a spec with random weights, as a file to deploy: ONNX (torch's
dynamo-based exporter), a torch.export ExportedProgram, or TorchScript. What the file needs to run besides its graph
(spec, parameters, class names, input preparation) goes into it as metadata, and every export is verified, from the
bytes about to be written, against the torch model before it is written."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import __version__
from ..builder import build
from ..compiler import Compiled, check_file
from ..errors import Refused
from ..files import WriteError, write_new
from .command import UsageError, choice_option, count_option, split_args
from .exported import FORMAT, INPUT, OUTPUT, Exported, Metadata, Preparation

if TYPE_CHECKING:
    from .model import Trained

USAGE = (
    "usage: cnnforge export ckpt=PATH|spec=FILE [format=onnx|exported|torchscript] [out=FILE] [batch=dynamic|N] "
    "[opset=N] [normalize=none|imagenet] [classes=FILE] [--set NAME=VALUE ...]"
)
HELP = """\
Write a trained checkpoint (ckpt=), or a spec with random weights (spec=, for deployment tests and sizes), as a file
to deploy, verified against torch before it is written:
  format=     onnx (default; torch's dynamo-based exporter, checked by onnx.checker and run by onnxruntime),
              exported (torch.export's ExportedProgram, saved by torch.export.save, .pt2), or
              torchscript (torch.jit.trace; deprecated by torch, for programs that still load it)
  out=        the file (default: the checkpoint's name beside it, or the spec's name here; never replaced:
              when it exists, NAME-2.onnx and so on)
  batch=      dynamic (default: any batch size) or N (a fixed batch size)
  opset=N     the ONNX opset (default: torch's exporter's)
  normalize=  with spec=: none (default: inputs are pixels / 255) or imagenet (ImageNet's mean and std)
  classes=    with spec=: a text file of class names, one a line (default: 0, 1, ...)
  --set NAME=VALUE   with spec=: bind a parameter the spec declares (repeatable)
The metadata holds the spec's text, its parameters, the class names and the input normalisation, so that
`cnnforge predict model=FILE.onnx IMAGE...` runs the file with onnxruntime alone, without torch."""
FORMATS = {"onnx": ".onnx", "exported": ".pt2", "torchscript": ".torchscript"}
EXTRA = "cnnforge.json"  # the metadata's file inside an ExportedProgram or TorchScript archive
RELATIVE_TOLERANCE = 1e-4  # of the logits' scale, their largest magnitude
EXAMPLE_BATCH = 2  # traced with 2 samples: a batch of 1 would be taken for a fixed size


class ExportError(Refused):
    """A network that could not be exported, or whose export does not compute what the torch model does."""


@dataclass
class Source:
    """What is exported: the torch model (eval mode, CPU), its metadata, and real inputs to verify it on."""

    model: torch.nn.Module
    compiled: Compiled
    metadata: Metadata
    out: Path  # the default output file, without suffix
    samples: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (what, prepared inputs [N, C, H, W])
    notes: list[str] = field(default_factory=list)

    @property
    def input(self) -> tuple[int, ...]:
        """One input sample's shape [C, H, W]."""
        assert self.compiled.spec is not None  # a Source is made from a spec that compiled
        return tuple(self.compiled.spec.input)


@dataclass
class Verification:
    """How the exported file's outputs compared with torch's."""

    inputs: list[str]  # what was compared, in words
    difference: float  # the largest absolute difference of any logit
    scale: float  # the largest magnitude of torch's logits
    runtime: str  # what ran the exported file

    @property
    def tolerance(self) -> float:
        return RELATIVE_TOLERANCE * self.scale

    def __str__(self) -> str:
        return (
            f"{self.runtime} equals torch on {', '.join(self.inputs)}: max abs difference {self.difference:.2g}, "
            f"tolerance {self.tolerance:.2g} ({RELATIVE_TOLERANCE:g} x the logits' scale {self.scale:.3g})"
        )


def from_checkpoint(path: str) -> Source:
    """A checkpoint of `cnnforge train`, with up to 8 images of its validation data to verify on."""
    from .model import load

    trained = load(path)
    spec = trained.state["spec"]
    prepare = Preparation(
        mode=trained.mode,
        input=trained.prepare.target,
        mean=trained.prepare.mean.flatten().tolist(),
        std=trained.prepare.std.flatten().tolist(),
    )
    metadata = _metadata(trained.name, spec["text"], spec["file"], spec["bindings"], trained.classes, prepare)
    source = Source(trained.model, trained.compiled, metadata, Path(path).with_suffix(""))
    try:
        source.samples.append(_validation_images(trained))
    except Exception as error:
        first = str(error).strip().partition("\n")[0]
        source.notes.append(f"verified on random inputs only: its validation data cannot be read ({first})")
    return source


def _validation_images(trained: Trained, count: int = 8) -> tuple[str, torch.Tensor]:
    """The first `count` images of the checkpoint's validation split, prepared as training prepared them."""
    from omegaconf import OmegaConf

    from ..train.data import load as load_data

    config = OmegaConf.create(trained.state["config"]["data"])
    data = load_data(config, trained.prepare.target)
    x, _ = next(iter(data.val.batches(count)))
    prepare = trained.prepare.for_source(tuple(data.val.shape), data.scale)
    return f"{len(x)} validation images of {config.name}", prepare(x)


def from_spec(path: str, bindings: dict, normalize: str = "none", classes_file: str | None = None) -> Source:
    """The spec file's network with random weights: see from_compiled. ExportError lists the spec's errors."""
    compiled = check_file(path, bindings)
    if not compiled.ok:
        raise ExportError("\n".join(str(d) for d in compiled.diagnostics if d.severity == "error"))
    return from_compiled(compiled, normalize, classes_file)


def from_compiled(compiled: Compiled, normalize: str = "none", classes_file: str | None = None) -> Source:
    """A compiled spec's network with random weights (seeded: the same file every time), its inputs pixels / 255
    (`normalize` none) or normalised as ImageNet's (imagenet), its classes named in `classes_file` or numbered."""
    spec, path = compiled.spec, compiled.file
    assert spec is not None
    if compiled.output is None or len(compiled.output) != 1:
        raise ExportError(f"{path}: gives {list(compiled.output or ())}, not one score per class: export a classifier")
    (count,) = compiled.output
    classes = _class_names(classes_file, count) if classes_file else [str(i) for i in range(count)]
    channels = spec.input[0]
    if normalize == "imagenet":
        from ..train.settings import IMAGENET_MEAN, IMAGENET_STD

        if channels != 3:
            raise UsageError(f"normalize=imagenet: needs 3 input channels, and {spec.name} takes {channels}")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    try:
        prepare = Preparation(mode="L" if channels == 1 else "RGB", input=spec.input, mean=mean, std=std)
    except ValueError as error:
        raise ExportError(f"{path}: its input {list(spec.input)} cannot be made from images: {error}") from None
    text, bound = compiled.standalone or ("", {})
    metadata = _metadata(spec.name, text, str(path), bound, classes, prepare)
    torch.manual_seed(0)
    return Source(build(compiled).eval(), compiled, metadata, Path(spec.name))


def _class_names(path: str, count: int) -> list[str]:
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ExportError(f"classes={path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    if len(names) != count:
        raise ExportError(f"classes={path}: holds {len(names)} names, and the network gives {count} scores")
    return names


def _metadata(name: str, text: str, file: str, params: dict, classes: list[str], prepare: Preparation) -> Metadata:
    return Metadata(
        format=FORMAT,
        version=__version__,
        name=name,
        spec=text,
        spec_file=file,
        params=params,
        classes=list(classes),
        prepare=prepare,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's exporters' progress lines, log records and warnings kept off the terminal while they run (a failure
    is still said, as an error)."""
    said = io.StringIO()
    logging.disable(logging.WARNING)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _failed(what: str, error: Exception) -> ExportError:
    first = str(error).strip().partition("\n")[0]
    return ExportError(f"{what} failed: {type(error).__name__}: {first}")


def to_onnx(source: Source, batch: int | None, opset: int | None, optimize: bool = True) -> tuple[bytes, str]:
    """The model as an ONNX file, its metadata in metadata_props, checked by onnx.checker (full check); and its
    opset, in words. `optimize`: onnxscript's optimizer (constant folding, fused patterns) runs on the graph, as
    torch's exporter does by default."""
    import onnx

    model, shape = source.model, (batch or EXAMPLE_BATCH, *source.input)
    dynamic = None if batch else ({0: "batch"},)
    try:
        with _quiet():
            program = torch.onnx.export(
                model,
                (torch.zeros(shape),),
                dynamo=True,
                dynamic_shapes=dynamic,
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=opset,
                optimize=optimize,
            )
    except Exception as error:
        raise _failed("torch's ONNX exporter", error) from None
    proto = program.model_proto
    opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if opset is not None and opsets != [opset]:  # below 18 the exporter writes 18, said only in a warning
        raise ExportError(
            f"opset={opset}: torch's exporter wrote opset {', '.join(map(str, opsets))} instead (it writes 18 and "
            "up); nothing was written"
        )
    for key, value in source.metadata.properties().items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = getattr(source.compiled.spec, "description", None) or ""
    if proto.ByteSize() >= 2**31:
        raise ExportError(f"{proto.ByteSize() / 2**30:.1f} GiB: over the 2 GiB a single ONNX file can hold")
    data = proto.SerializeToString()
    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as error:
        raise _failed("onnx.checker", error) from None
    return data, "".join(f", opset {version}" for version in opsets)


def to_exported(source: Source, batch: int | None, opset: int | None, optimize: bool = True) -> tuple[bytes, str]:
    """The model as torch.export's ExportedProgram, saved with torch.export.save, the metadata as cnnforge.json."""
    shape = (batch or EXAMPLE_BATCH, *source.input)
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1)},)
    try:
        with _quiet():
            program = torch.export.export(source.model, (torch.zeros(shape),), dynamic_shapes=dynamic)
            file = io.BytesIO()
            torch.export.save(program, file, extra_files={EXTRA: json.dumps(source.metadata.properties())})
    except Exception as error:
        raise _failed("torch.export", error) from None
    return file.getvalue(), ""


def to_torchscript(source: Source, batch: int | None, opset: int | None, optimize: bool = True) -> tuple[bytes, str]:
    """The model traced by torch.jit.trace and saved with torch.jit.save, the metadata as cnnforge.json."""
    shape = (batch or EXAMPLE_BATCH, *source.input)
    try:
        with _quiet():
            traced = torch.jit.trace(source.model, torch.zeros(shape))
            file = io.BytesIO()
            torch.jit.save(traced, file, _extra_files={EXTRA: json.dumps(source.metadata.properties())})
    except Exception as error:
        raise _failed("torch.jit.trace", error) from None
    return file.getvalue(), ""


Runner = Callable[[torch.Tensor], torch.Tensor]


def _runner(form: str, data: bytes) -> tuple[str, Runner]:
    """What runs the exported bytes, in words, and a function from inputs [N, C, H, W] to its outputs."""
    if form == "onnx":
        # as `predict model=` will run it, metadata included; on torch's threads, which may be fewer than the cores
        exported = Exported.from_bytes(data, "the exported model", threads=torch.get_num_threads())
        return "onnxruntime", lambda x: torch.from_numpy(exported.logits(x.numpy()))
    with _quiet():
        if form == "exported":
            module = torch.export.load(io.BytesIO(data)).module()
            return "the ExportedProgram, loaded by torch.export.load,", module
        return "the TorchScript module, loaded by torch.jit.load,", torch.jit.load(io.BytesIO(data))


def verify(form: str, data: bytes, source: Source, batch: int | None) -> Verification:
    """Run the exported bytes and the torch model on random inputs (several batch sizes, when any is allowed) and
    the source's real samples; ExportError when any output differs by more than the tolerance."""
    try:
        runtime, run = _runner(form, data)
    except Refused:
        raise
    except Exception as error:
        raise _failed(f"loading the {form} file", error) from None
    generator = torch.Generator().manual_seed(0)
    shape = source.input
    sizes = [batch] if batch else [1, 3]
    random = f"random inputs in batches of {' and '.join(map(str, sizes))}"
    inputs = [(random, torch.randn(n, *shape, generator=generator)) for n in sizes]
    for what, x in source.samples:  # a fixed batch size takes them that many at a time, repeated to fill one
        if batch:
            x = x.repeat(-(-batch // len(x)), 1, 1, 1)[: max(batch, len(x) // batch * batch)]
        inputs += [(what, part) for part in (x.split(batch) if batch else [x])]
    results = []
    with torch.no_grad(), _quiet():
        for what, x in inputs:
            try:
                found = run(x)
            except Exception as error:
                raise _failed(f"running the {form} file on {what}", error) from None
            results.append((what, source.model(x), found))
    scale = max(float(expected.abs().max()) for _, expected, _ in results)
    verification = Verification(list(dict.fromkeys(what for what, _, _ in results)), 0.0, scale, runtime)
    for what, expected, found in results:
        if found.shape != expected.shape:
            raise ExportError(f"{runtime} gives {list(found.shape)} on {what}, torch {list(expected.shape)}")
        difference = float((found - expected).abs().max())
        verification.difference = max(verification.difference, difference)
        if not difference <= verification.tolerance:  # NaN included
            raise ExportError(
                f"the export does not compute what the torch model does: on {what}, {runtime}'s outputs differ "
                f"from torch's by up to {difference:.3g}, over the tolerance {verification.tolerance:.3g} "
                f"({RELATIVE_TOLERANCE:g} x the logits' scale {scale:.3g}); nothing was written"
            )
    return verification


EXPORTERS = {"onnx": to_onnx, "exported": to_exported, "torchscript": to_torchscript}


def export(
    source: Source, form: str = "onnx", batch: int | None = None, opset: int | None = None, optimize: bool = True
) -> Exporting:
    """The source in format `form` (batch None: any batch size), verified; an ONNX file's metadata records the
    verification. `optimize` (ONNX): as to_onnx."""
    data, details = EXPORTERS[form](source, batch, opset, optimize)
    verification = verify(form, data, source, batch)
    if form == "onnx":  # serialised messages concatenated are merged, repeated fields appended: one more property
        import onnx

        said = onnx.StringStringEntryProto(key="cnnforge.verified", value=str(verification))
        data += onnx.ModelProto(metadata_props=[said]).SerializeToString()
    return Exporting(data, details, verification)


@dataclass
class Exporting:
    """An exported file's bytes, what to say of its format (the opset), and its verification."""

    data: bytes
    details: str
    verification: Verification


def _bindings(argv: list[str]) -> tuple[list[str], dict]:
    """argv without its `--set NAME=VALUE` options, and the values they bind (read as the other commands do)."""
    import argparse

    from ..cli import _binding

    rest, bound, args = [], {}, iter(argv)
    for arg in args:
        if arg == "--set" or arg.startswith("--set="):
            value = arg.partition("=")[2] if arg.startswith("--set=") else next(args, None)
            if value is None:
                raise UsageError(f"--set: needs NAME=VALUE\n{USAGE}")
            try:
                name, parsed = _binding(value)
            except argparse.ArgumentTypeError as error:
                raise UsageError(f"--set: {error}\n{USAGE}") from None
            bound[name] = parsed
        else:
            rest.append(arg)
    return rest, bound


def _batch(options: dict[str, str]) -> int | None:
    value = options.get("batch", "dynamic")
    if value == "dynamic":
        return None
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= 2**31 - 1):
        raise UsageError(f"batch={value}: needs dynamic or a positive whole number\n{USAGE}")
    return int(value)


def command(argv: list[str]) -> int:
    """cnnforge export ckpt=PATH|spec=FILE [format=onnx] [out=FILE] [batch=dynamic] [opset=N] ..."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"{USAGE}\n\n{HELP}")
        return 0
    argv, bound = _bindings(argv)
    known = ("ckpt", "spec", "format", "out", "batch", "opset", "normalize", "classes")
    options, rest = split_args(argv, known, USAGE)
    if rest or ("ckpt" in options) == ("spec" in options):
        raise UsageError(USAGE if not rest else f"{rest[0]}: give options as KEY=VALUE\n{USAGE}")
    form = choice_option(options, "format", tuple(FORMATS), USAGE)
    batch = _batch(options)
    opset = count_option(options, "opset", 1, USAGE) if "opset" in options else None
    if opset is not None and form != "onnx":
        raise UsageError(f"opset={opset}: for format=onnx only\n{USAGE}")
    for_spec = [key for key in ("normalize", "classes") if key in options] + (["--set"] if bound else [])
    if "ckpt" in options:
        if for_spec:
            raise UsageError(f"{for_spec[0]}: with spec= only; a checkpoint holds its own\n{USAGE}")
        source = from_checkpoint(options["ckpt"])
    else:
        normalize = choice_option(options, "normalize", ("none", "imagenet"), USAGE)
        compiled = check_file(options["spec"], bound)
        for diagnostic in compiled.diagnostics:  # as check prints them, warnings included
            print(diagnostic, file=sys.stderr)
        if not compiled.ok:
            return 1
        source = from_compiled(compiled, normalize, options.get("classes"))
    out = Path(options["out"]) if "out" in options else source.out.with_suffix(FORMATS[form])
    suffix = out.suffix or FORMATS[form]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"{out.parent}: cannot make the folder: {error.strerror or error}") from None
    try:
        done = export(source, form, batch, opset)
    except ImportError as error:
        raise UsageError(f"format={form}: needs {error.name or error} (pip install 'cnnforge[export]')") from None
    (written,) = write_new(out.parent, out.stem if out.suffix else out.name, {suffix: lambda f: f.write(done.data)})
    shape = ", ".join(map(str, source.input))
    n = batch or "N"
    print(
        f"{written}: {source.metadata.name} as {form} ({_size(len(done.data))}; '{INPUT}' [{n}, {shape}] -> "
        f"'{OUTPUT}' [{n}, {len(source.metadata.classes)}], batch {batch or 'dynamic'}{done.details})"
    )
    if form == "onnx":
        print("checked: onnx.checker (full check) passed")
    print(f"verified: {done.verification}")
    for note in source.notes:
        print(f"note: {note}")
    return 0


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"
