"""Assertions that cnnforge's static claims about a spec are what torch (tests/torch_oracle.py) does with it."""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import yaml
from torch import nn
from torch_oracle import Run, macs, params, run

from cnnforge import Compiled, compile_spec
from cnnforge.builder import build
from cnnforge.spec import read_text

UNREAD = re.compile(r"last (\d+) rows? and (\d+) columns?")


def as_yaml(spec: dict) -> str:
    """A spec given as a dict, as YAML text (written by libyaml where PyYAML has it: the same text, many times
    faster than PyYAML's own emitter)."""
    return yaml.dump(spec, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def compile_dict(spec: dict) -> Compiled:
    """Compile a spec given as a dict, through its YAML text as a user would write it."""
    loaded = read_text(as_yaml(spec), "spec.yaml")
    assert loaded.spec is not None, [str(d) for d in loaded.diagnostics]
    return compile_spec(loaded.spec, loaded.file, loaded.source)


def assert_agrees(spec: dict, device: str) -> tuple[Compiled, Run]:
    """cnnforge accepts `spec` iff torch runs it, else its first error is at the layer torch refuses; when
    accepted, every layer's shape, parameters and MACs are torch's, and cnnforge's builder agrees."""
    compiled, ran = compile_dict(spec), run(spec, device)
    errors = [d for d in compiled.diagnostics if d.severity == "error"]
    if errors and errors[0].message.startswith("input is [C, H, W]: did you mean"):
        return _agrees_with_the_guess(spec, compiled, ran, device)
    if not ran.ok:
        why = "cnnforge is stricter here" if ran.stricter else f"torch refuses it: {ran.error}"
        assert errors, f"cnnforge accepts layer {ran.failed} but {why}"
        assert errors[0].layer_index == ran.failed, f"{errors[0]}; but {why} (layer {ran.failed})"
        return compiled, ran
    assert not errors, f"cnnforge refuses what torch runs: {errors[0]}"
    for layer, module, shape in zip(compiled.layers, ran.modules, ran.shapes, strict=True):
        assert layer.output == shape, f"{layer.name}: cnnforge {layer.output}, torch {shape}"
        assert layer.params == params(module), layer.name
        assert layer.macs == macs(module, shape), layer.name
    assert_builds(compiled, ran, device)
    return compiled, ran


def _agrees_with_the_guess(spec: dict, compiled: Compiled, ran: Run, device: str) -> tuple[Compiled, Run]:
    """An input taken to be written channels last: torch refuses it as written, the layers' messages are those of
    the spec with the guessed input, as the message says, and cnnforge agrees with torch on that spec."""
    guess, *rest = compiled.diagnostics
    assert not ran.ok, f"{guess}; but torch runs the input as written"
    guessed = {**spec, "input": list(compiled.layers[0].input)}
    assert_agrees(guessed, device)
    assert [str(d) for d in rest] == [str(d) for d in compile_dict(guessed).diagnostics]
    return compiled, ran


def assert_builds(compiled: Compiled, ran: Run, device: str) -> None:
    """cnnforge's own builder gives torch's output shape, and a state_dict keyed by the layer names; on the CPU,
    with torch's weights loaded into it, torch's very values."""
    x = torch.rand(2, *compiled.spec.input, device=device)
    with torch.device(device):
        model = build(compiled).eval()
        with torch.no_grad():
            y = model(x)
    assert tuple(y.shape[1:]) == compiled.output
    oracle = nn.Sequential(OrderedDict((layer.name, m) for layer, m in zip(compiled.layers, ran.modules, strict=True)))
    assert set(model.state_dict()) == set(oracle.state_dict())
    if device == "cpu":
        model.load_state_dict(oracle.state_dict())
        with torch.no_grad():
            assert torch.equal(model(x), oracle(x))


def unread_by_cnnforge(compiled: Compiled) -> tuple[int, int]:
    """Trailing input rows and columns that cnnforge's warning says are never read; (0, 0) without one."""
    found = [UNREAD.search(d.message) for d in compiled.diagnostics if d.severity == "warning"]
    counts = [(int(m[1]), int(m[2])) for m in found if m]
    assert len(counts) <= 1, counts
    return counts[0] if counts else (0, 0)


def unread_by_torch(spec: dict) -> tuple[int, int]:
    """Trailing input rows and columns of a one-layer spec that get no gradient from the sum of the output."""
    x = torch.rand(1, *spec["input"], requires_grad=True)
    module = run(spec, "cpu").modules[0]
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(0.5, 1.0)  # positive weights: every input element read gets a positive gradient
    module(x).sum().backward()
    read = x.grad.abs() > 0  # [1, C, H, W]
    rows, cols = read.any(dim=3).any(dim=1)[0], read.any(dim=2).any(dim=1)[0]  # [H], [W]
    unread = [len(axis) - 1 - int(axis.nonzero().max()) if axis.any() else len(axis) for axis in (rows, cols)]
    return unread[0], unread[1]
