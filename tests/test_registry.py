"""Custom layer kinds: registered by users, then usable in spec files like the built-in ones."""

from collections.abc import Iterator
from typing import Literal

import pytest
import torch
from torch import nn

from cnnforge import compile_spec
from cnnforge.builder import build
from cnnforge.layers import LAYERS, Checks, Layer, Shape, register, show
from cnnforge.layers.fields import Size
from cnnforge.spec import read_text


class PixelShuffle(Layer):
    """[C*r*r, H, W] -> [C, H*r, W*r] (torch.nn.PixelShuffle)."""

    type: Literal["pixel_shuffle"]
    factor: Size

    def output_shape(self, x: Shape, checks: Checks) -> Shape | None:
        r2 = self.factor**2
        if not self.feature_map(x, checks) or not checks.require(
            x[0] % r2 == 0, lambda: f"channels {x[0]} of {show(x)} are not divisible by factor^2={r2}"
        ):
            return None
        return x[0] // r2, x[1] * self.factor, x[2] * self.factor

    def module(self, x: Shape) -> nn.Module:
        return nn.PixelShuffle(self.factor)


@pytest.fixture
def pixel_shuffle() -> Iterator[type[Layer]]:
    register(PixelShuffle)
    yield PixelShuffle
    del LAYERS["pixel_shuffle"]


SPEC = """\
name: up
input: [3, 8, 8]
layers:
  - {type: conv, shape: [3, 12, 3, 3], padding: 1}
  - {type: pixel_shuffle, factor: %d}
"""


def test_a_registered_kind_is_checked_and_built(pixel_shuffle: type[Layer]) -> None:
    compiled = compile_spec(read_text(SPEC % 2).spec)
    assert compiled.ok and compiled.output == (3, 16, 16)
    model = build(compiled)
    assert tuple(model(torch.zeros(1, 3, 8, 8)).shape[1:]) == compiled.output
    assert isinstance(model.pixel_shuffle1, nn.PixelShuffle)


def test_a_registered_kind_reports_its_own_errors(pixel_shuffle: type[Layer]) -> None:
    compiled = compile_spec(read_text(SPEC % 3).spec, "up.yaml", read_text(SPEC % 3).source)
    assert [str(d) for d in compiled.diagnostics] == [
        "up.yaml:5:5: error: layer 1 'pixel_shuffle1' (pixel_shuffle): "
        "channels 12 of [12, 8, 8] are not divisible by factor^2=9"
    ]


def test_an_unregistered_kind_is_unknown() -> None:
    loaded = read_text(SPEC % 2, "up.yaml")
    assert loaded.spec is None
    assert "unknown layer type 'pixel_shuffle'" in str(loaded.diagnostics[0])


def test_a_kind_cannot_be_registered_twice() -> None:
    class Other(Layer):
        type: Literal["conv"]

    with pytest.raises(ValueError, match="already registered"):
        register(Other)


def test_what_cannot_be_a_kind_is_refused() -> None:
    from cnnforge.layers.registry import STRUCTURE, RegistryError
    from cnnforge.spec.graph import STRUCTURE as GRAPH_WORDS

    class Add(Layer):
        type: Literal["add"]

    class Untagged(Layer):
        pass

    assert STRUCTURE == GRAPH_WORDS
    with pytest.raises(RegistryError, match="'add' is a word of the spec format"):
        register(Add)
    with pytest.raises(RegistryError, match=r"Untagged needs a field `type: Literal\[\"kind\"\]`"):
        register(Untagged)
    with pytest.raises(RegistryError, match=r"is not a subclass of cnnforge\.layers\.Layer"):
        register(dict)  # type: ignore[arg-type]
    assert "add" not in LAYERS and "untagged" not in LAYERS
