"""The static compiler: walks a spec's layers from its input shape, computing each layer's output
shape, parameters and MACs, and reporting every problem with its place in the file. Never imports torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .diagnostics import Diagnostic, SpecError, has_errors
from .layers import Checks, Layer, Shape, show
from .layers.base import plural
from .spec.model import SpecBase
from .spec.params import Value
from .spec.read import Loaded, read
from .spec.source import Source

MacConvention = Literal["cnnforge", "torchinfo"]


@dataclass(frozen=True)
class CompiledLayer:
    """One layer with its shapes and counts; shapes are None past a layer whose output is unknown."""

    index: int
    name: str
    layer: Layer
    input: Shape | None
    output: Shape | None
    params: int = 0
    macs: int = 0
    torchinfo_macs: int = 0

    @property
    def type(self) -> str:
        return self.layer.kind


@dataclass
class Compiled:
    """A compiled spec: per-layer shapes and counts, and everything found wrong or suspicious."""

    file: str
    spec: SpecBase | None
    layers: list[CompiledLayer] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not has_errors(self.diagnostics)

    @property
    def output(self) -> Shape | None:
        return self.layers[-1].output if self.layers else None

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def total_macs(self, convention: MacConvention = "cnnforge") -> int:
        return sum(layer.torchinfo_macs if convention == "torchinfo" else layer.macs for layer in self.layers)

    def raise_for_errors(self) -> Compiled:
        if not self.ok:
            raise SpecError(self.diagnostics)
        return self


def compile_spec(spec: SpecBase, file: str = "<spec>", source: Source | None = None, *, guess: bool = True) -> Compiled:
    """Compile a validated spec; `source` supplies line and column numbers for diagnostics. With `guess`, an
    input written channels last is reported as such, and the layers are checked with the channels first."""
    compiled = Compiled(file, spec)
    walk = _Walk(compiled, source or Source(None))
    x: Shape = tuple(spec.input)
    if guess and (transposed := _channels_last(spec)):
        x, (index, name, channels) = transposed
        line, column = walk.source.where(("input",)) or (None, None)
        message = (
            f"input is [C, H, W]: did you mean {show(x)}? Layer {index} '{name}' takes {plural(channels, 'channel')}, "
            f"the last number of {show(spec.input)}; the layers are checked as if the input were {show(x)}"
        )
        compiled.diagnostics.append(Diagnostic(file, message, line=line, column=column))
    compiled.layers = walk.layers(spec.layers, x, ("layers",))
    return compiled


def _channels_last(spec: SpecBase) -> tuple[Shape, tuple[int, str, int]] | None:
    """[C, H, W] for an input written [H, W, C], and the first layer that takes C channels (index, name, C):
    when the last number is the smallest, as an image's channels are, that layer takes that many channels, and
    the layers checked with [C, H, W] have fewer errors, none of them at that layer."""
    c, h, w = spec.input
    guess = (w, c, h)
    found = _first_taking_channels(spec.layers, guess)
    if found is None or not w < min(c, h) or found[1].first_axis() != w:
        return None
    index, layer = found
    written, guessed = (compile_spec(s, guess=False) for s in (spec, spec.model_copy(update={"input": guess})))
    if any(d.layer_index == index for d in guessed.diagnostics if d.severity == "error"):
        return None
    if _errors(guessed) >= _errors(written):
        return None
    return guess, (index, layer.name or f"{layer.kind}{index}", w)


def _first_taking_channels(layers: list[Layer], x: Shape) -> tuple[int, Layer] | None:
    """The first layer that takes a number of channels, if the layers before it keep the channels of `x`."""
    for index, layer in enumerate(layers):
        if layer.first_axis() is not None:
            return index, layer
        y = layer.output_shape(x, Checks())
        if y is None or len(y) != 3 or y[0] != x[0]:
            return None
        x = y
    return None


def _errors(compiled: Compiled) -> int:
    return sum(d.severity == "error" for d in compiled.diagnostics)


class _Walk:
    """Walks a list of layers from an input shape, recording diagnostics against their place in the file."""

    def __init__(self, compiled: Compiled, source: Source) -> None:
        self.compiled = compiled
        self.source = source

    def layers(self, layers: list[Layer], x: Shape | None, path: tuple) -> list[CompiledLayer]:
        """Each layer of `layers` (found at `path` in the file) applied in turn to one sample of shape `x`."""
        result: list[CompiledLayer] = []
        first_use: dict[str, int] = {}
        for index, layer in enumerate(layers):
            name = layer.name or f"{layer.kind}{index}"
            if name in first_use:
                self.report(
                    path,
                    index,
                    name,
                    layer,
                    "error",
                    f"name '{name}' is already used by layer {first_use[name]}",
                    "name",
                )
            first_use.setdefault(name, index)
            if x is None:  # an earlier error left the shape unknown
                result.append(CompiledLayer(index, name, layer, None, None))
                continue
            checks = Checks()
            y = layer.output_shape(x, checks)
            for severity, message, key in checks.found:
                self.report(path, index, name, layer, severity, message, key)
            counts = (layer.params(x), layer.macs(x, y), layer.torchinfo_macs(x, y)) if y else (0, 0, 0)
            result.append(CompiledLayer(index, name, layer, x, y, *counts))
            x = y
        return result

    def report(
        self, path: tuple, index: int, name: str, layer: Layer, severity: str, message: str, key: str | None
    ) -> None:
        where = (*path, index) if key is None else (*path, index, key)
        line, column = self.source.where(where) or (None, None)
        message += self.source.note(where)
        self.compiled.diagnostics.append(
            Diagnostic(self.compiled.file, message, severity, line, column, index, name, layer.kind)  # type: ignore[arg-type]
        )


def check_file(path: str | Path, bindings: Mapping[str, Value] | None = None) -> Compiled:
    """Read, validate and compile a spec file; problems are in `.diagnostics`, never raised.
    `bindings` set the spec's declared parameters, e.g. {"classes": 10}."""
    loaded: Loaded = read(path, bindings)
    if loaded.spec is None:
        return Compiled(loaded.file, None, diagnostics=loaded.diagnostics)
    return compile_spec(loaded.spec, loaded.file, loaded.source)


def compile_file(path: str | Path, bindings: Mapping[str, Value] | None = None) -> Compiled:
    """Like check_file, but raise SpecError when the spec has errors."""
    return check_file(path, bindings).raise_for_errors()
