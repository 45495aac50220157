"""Field types shared by layer kinds, with the messages a user sees when a value is wrong."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_SIZE = 2**31 - 1  # sizes beyond this are refused: torch indexes with 64-bit products of them

Size = Annotated[int, Strict(), Field(ge=1, le=MAX_SIZE)]
Number = Annotated[float, Strict()]  # ints are accepted: `k: 2` means 2.0
PositiveNumber = Annotated[float, Strict(), Field(gt=0)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
Flag = Annotated[bool, Strict()]


def _is_int(value: Any) -> bool:
    return type(value) is int


def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _ints(value: Any, names: tuple[str, ...], low: int) -> tuple[int, ...]:
    shape = "[" + ", ".join(names) + "]"
    ok = isinstance(value, list) and len(value) == len(names)
    ok = ok and all(_is_int(v) and low <= v <= MAX_SIZE for v in value)
    if not ok:
        what = "positive integers" if low > 0 else "integers >= 0"
        raise PydanticCustomError(
            "ints", "expected {shape} ({what}), found {found}", {"shape": shape, "what": what, "found": _found(value)}
        )
    return tuple(value)


def Ints(*names: str, low: int = 1, description: str = "") -> Any:
    """A fixed-length list of integers, such as `[C, H, W]`; validated as a tuple."""
    schema = {
        "type": "array",
        "items": {"type": "integer", "minimum": low, "maximum": MAX_SIZE},
        "minItems": len(names),
        "maxItems": len(names),
        "description": description,
    }
    return Annotated[tuple[int, ...], BeforeValidator(lambda v: _ints(v, names, low)), WithJsonSchema(schema)]


def _pair(value: Any, low: int) -> tuple[int, int]:
    if _is_int(value) and low <= value <= MAX_SIZE:
        return value, value
    if isinstance(value, list) and len(value) == 2 and all(_is_int(v) and low <= v <= MAX_SIZE for v in value):
        return value[0], value[1]
    what = "a positive integer" if low > 0 else "an integer >= 0"
    raise PydanticCustomError(
        "pair", "expected {what} or an [h, w] pair of them, found {found}", {"what": what, "found": _found(value)}
    )


def _pair_schema(low: int) -> dict:
    number = {"type": "integer", "minimum": low, "maximum": MAX_SIZE}
    return {"anyOf": [number, {"type": "array", "items": number, "minItems": 2, "maxItems": 2}]}


Pair = Annotated[tuple[int, int], BeforeValidator(lambda v: _pair(v, 1)), WithJsonSchema(_pair_schema(1))]
PadPair = Annotated[tuple[int, int], BeforeValidator(lambda v: _pair(v, 0)), WithJsonSchema(_pair_schema(0))]


def _padding(value: Any) -> tuple[int, int] | str:
    if value in ("same", "valid"):
        return value
    try:
        return _pair(value, 0)
    except PydanticCustomError:
        raise PydanticCustomError(
            "padding",
            "expected an integer >= 0, an [h, w] pair of them, 'same' or 'valid', found {found}",
            {"found": _found(value)},
        ) from None


ConvPadding = Annotated[
    tuple[int, int] | Literal["same", "valid"],
    BeforeValidator(_padding),
    WithJsonSchema({"anyOf": [*_pair_schema(0)["anyOf"], {"enum": ["same", "valid"]}]}),
]

# Public attributes of torch.nn.Sequential: a submodule with one of these names cannot be added.
# tests/test_names.py compares this list with the installed torch.
RESERVED_NAMES = frozenset(
    """
T_destination add_module append apply bfloat16 buffers call_super_init children compile cpu cuda
double dump_patches eval extend extra_repr float forward get_buffer get_extra_state get_parameter
get_submodule half insert ipu load_state_dict modules mtia named_buffers named_children named_modules
named_parameters parameters pop register_backward_hook register_buffer register_forward_hook
register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split()
)


def _not_reserved(name: str) -> str:
    if name in RESERVED_NAMES:
        raise PydanticCustomError(
            "reserved", "'{name}' is reserved by torch.nn.Module; choose another name", {"name": name}
        )
    return name


LayerName = Annotated[
    str,
    Strict(),
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        max_length=64,
        description="Unique within the file; the submodule's name in the state_dict. "
        "A letter, then letters, digits or '_'. Default: <type><index>.",
    ),
    AfterValidator(_not_reserved),
]
