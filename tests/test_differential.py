"""Differential tests with torch as the oracle: a random spec passes the static check if and only if torch
builds and runs it, and then every static shape, parameter count and MAC count is what torch gives."""

from __future__ import annotations

import pytest
import torchinfo
from agreement import assert_agrees, compile_dict, unread_by_cnnforge, unread_by_torch
from hypothesis import HealthCheck, assume, event, given, settings
from strategies import specs, windowed_specs
from torch import nn
from torch_oracle import run

from cnnforge import Compiled

PROFILE = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
SMALL = {"max_layers": 4, "max_channels": 3, "max_size": 10}  # real tensors on the CPU

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


def agrees(spec: dict, device: str) -> Compiled:
    """assert_agrees, counting in the statistics which layer kinds torch refused."""
    compiled, ran = assert_agrees(spec, device)
    event("torch runs it" if ran.ok else f"torch refuses a {spec['layers'][ran.failed]['type']}")
    return compiled


@settings(max_examples=400, **PROFILE)
@given(specs())
def test_static_check_agrees_with_torch_on_meta(spec: dict) -> None:
    agrees(spec, "meta")


@settings(max_examples=120, **PROFILE)
@given(specs(**SMALL))
def test_static_check_agrees_with_torch_on_cpu(spec: dict) -> None:
    agrees(spec, "cpu")


@settings(max_examples=40, **PROFILE)
@given(specs(**SMALL))
def test_torchinfo_macs_are_torchinfos(spec: dict) -> None:
    compiled, ran = compile_dict(spec), run(spec, "cpu")
    assume(ran.ok)
    summary = torchinfo.summary(nn.Sequential(*ran.modules), input_size=(1, *spec["input"]), device="cpu", verbose=0)
    assert compiled.total_macs("torchinfo") == summary.total_mult_adds


@settings(max_examples=250, **PROFILE)
@given(windowed_specs())
def test_unread_warning_matches_gradients(spec: dict) -> None:
    compiled = agrees(spec, "cpu")
    assume(compiled.ok)
    assert unread_by_cnnforge(compiled) == unread_by_torch(spec)
