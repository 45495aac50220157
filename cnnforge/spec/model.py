"""The spec file's top level, validated by pydantic, with a layer union built from the registry."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from ..layers import LAYERS
from ..layers.fields import Ints

EXTENDING = ("extends", "name", "description", "params")  # all a spec that extends another says (spec.read)


Scalar = int | float | bool | str


class Parameter(BaseModel):
    """A parameter with the values it may take: `depth: {default: 16, choices: [11, 13, 16, 19]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    default: Scalar
    """Its value unless one is bound from outside (a '${...}' expression may use the parameters before it)."""
    choices: Annotated[list[Scalar], Field(min_length=1)] | None = None
    """The values it may take; any other, bound from outside or by a spec that extends this one, is an error."""
    description: str | None = None
    """What it is for."""


class SpecBase(BaseModel):
    """One network: a name, the shape of one input sample, and its layers in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    """The network's name."""
    description: str | None = None
    """Free text about the network."""
    params: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Scalar | Parameter] | None = None
    """Parameters with their defaults, used anywhere as `${name}` and settable from outside the file
    (e.g. `params: {classes: 1000}` and `shape: [4096, '${classes}']`). A default may be an expression over the
    parameters before it; `{default: 16, choices: [11, 13, 16, 19]}` limits the values a parameter takes."""
    input: Ints("C", "H", "W", description="One input sample: [C, H, W], positive integers.")
    blocks: dict[str, Any] | None = None
    """Reusable blocks: each with its `params` (and their defaults) and its `layers`, used as a layer whose
    `type` is the block's name."""
    layers: Annotated[list[Any], Field(min_length=1)]
    """The layers, applied in order. Once read, the entries of the unrolled graph (spec.graph's Leaf, Merge,
    Group)."""


@lru_cache(maxsize=8)
def _model(kinds: tuple[str, ...]) -> type[SpecBase]:
    union = Union[tuple(LAYERS[k] for k in kinds)] if len(kinds) > 1 else LAYERS[kinds[0]]  # noqa: UP007 (built at run time)
    item = Annotated[union, Field(discriminator="type")]
    return create_model(  # type: ignore[call-overload]
        "Spec",
        __base__=SpecBase,
        __doc__=SpecBase.__doc__,
        layers=(Annotated[list[item], Field(min_length=1, description="The layers, applied in order.")], ...),
    )


@lru_cache(maxsize=8)
def _adapter(kinds: tuple[str, ...]) -> TypeAdapter:
    union = Union[tuple(LAYERS[k] for k in kinds)] if len(kinds) > 1 else LAYERS[kinds[0]]  # noqa: UP007 (built at run time)
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


def layer_adapter() -> TypeAdapter:
    """Validates one layer of any kind registered now (custom kinds included)."""
    return _adapter(tuple(LAYERS))


def spec_model() -> type[SpecBase]:
    """The Spec model for the layer kinds registered now (custom kinds included)."""
    return _model(tuple(LAYERS))
