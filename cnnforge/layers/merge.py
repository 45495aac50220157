"""Where branches meet: their outputs summed, concatenated along the channels, or multiplied element-wise.
Each takes the shapes of its branches, in the order of the file, and says what is wrong in their terms."""

from __future__ import annotations

from math import prod

from .base import Checks, Layer, Shape, plural, show
from .memory import Kept
from .receptive import Field, Reach


class Merge(Layer):
    """Branches from one input, brought together; not a `type` of its own list: written as `branches:`."""

    def merge(self, shapes: list[tuple[str, Shape]], checks: Checks) -> Shape | None:
        raise NotImplementedError

    def merge_field(self, fields: list[Field | None], y: Shape, image: tuple[int, int]) -> Field | None:
        """The receptive field of the output positions: each spans what the same position spans in every branch
        (over every channel), and all of a broadcast branch's single position; `image` is the network input's
        rows and columns. None when unknown."""
        known = [f for f in fields if f is not None]
        if len(known) < len(fields):
            return None
        if all(f == known[0] for f in known):
            return known[0]
        if len(y) == 3:
            counts = y[1], y[2]
        else:  # features after flatten: the positions of the map before it, the same in each branch
            counts = max(f.h.count for f in known), max(f.w.count for f in known)
        rows = union([f.h for f in known], counts[0], image[0])
        columns = union([f.w for f in known], counts[1], image[1])
        return None if rows is None or columns is None else Field(rows, columns)

    def merge_kept(self, shapes: list[Shape], y: Shape, grads: list[bool]) -> list[tuple[int | None, Kept]]:
        """Tensors kept for the backward pass: (the input's number, or None for a new tensor, and what)."""
        return []


def union(reaches: list[Reach], count: int, rows: int) -> Reach | None:
    """Along one axis, the span of each of `count` output positions over the branches' `reaches`; a branch of one
    position broadcast to more spans the same rows for every one (its jump is 0).

    Where one branch's every position spans all `rows` input rows (a gate that sees the whole map), so does
    every output position; where each end is a branch of one position, every position spans the same rows.
    Then position i is given first - (count - 1 - i) * jump .. last + i * jump, a line that holds that span and
    differs from it in padding rows only, as the padding past the positions, which later windows may read,
    must span no pixel.

    Position i spans first(i) .. last(i), the least start and the greatest end over the branches: a minimum of
    lines, concave, and a maximum, convex. Each is a line when one branch gives it at both ends, and then past
    them too, where later padding reads; with the same slope, that is one Reach. Otherwise the positions are
    uneven: the largest span (at an end, as last - first is convex) and the largest slope of any branch bound
    them. None when a branch's own positions are uneven, or when counts differ other than by broadcasting.
    """
    if any(r.start is None or r.count not in (count, 1) for r in reaches):
        return None
    end = count - 1
    jumps = [0 if r.count < count else r.jump for r in reaches]
    firsts = [(r.start, r.start + end * j) for r, j in zip(reaches, jumps, strict=True)]  # at positions 0 and end
    lasts = [(f0 + r.size - 1, f1 + r.size - 1) for r, (f0, f1) in zip(reaches, firsts, strict=True)]
    first = min(f[0] for f in firsts), min(f[1] for f in firsts)
    last = max(f[0] for f in lasts), max(f[1] for f in lasts)
    if count == 1:
        return Reach(last[0] - first[0] + 1, max(jumps), first[0], 1)
    step = first[1] - first[0]
    covered = any(f[1] <= 0 and rows - 1 <= end_[0] for f, end_ in zip(firsts, lasts, strict=True))
    if covered or (step == 0 and first in firsts and last in lasts):  # every position spans first..last
        jump = max(1, *jumps)  # widened at each end, so that padding beyond the positions spans no pixel
        return Reach(max(last) + end * jump - min(first) + 1, jump, min(first) - end * jump, count)
    if first in firsts and last in lasts and step == last[1] - last[0]:  # one branch's line each, as steep
        return Reach(last[0] - first[0] + 1, step // end, first[0], count)
    return Reach(max(last[0] - first[0], last[1] - first[1]) + 1, max(jumps), None, count)


def _broadcast(shapes: list[tuple[str, Shape]]) -> Shape | None:
    """The shape torch broadcasts same-rank shapes to (each axis equal, or 1 in all but one), or None."""
    if len({len(s) for _, s in shapes}) != 1:
        return None
    out = []
    for sizes in zip(*(s for _, s in shapes), strict=True):
        big = {n for n in sizes if n != 1}
        if len(big) > 1:
            return None
        out.append(big.pop() if big else 1)
    return tuple(out)


def _fix(label: str, found: Shape, wanted: Shape) -> str:
    """What would make a branch giving `found` give `wanted`."""
    if len(found) != len(wanted):
        return "one is features and the other a feature map: flatten both or neither"
    if len(found) == 1:
        return f"give the {label} a linear layer to {wanted[0]} features"
    (_, h, w), (c_w, h_w, w_w) = found, wanted
    stride = _stride(found, wanted)
    if stride is not None:
        return f"give the {label} a 1x1 conv{f' with stride {stride}' if stride > 1 else ''} to {c_w} channels"
    return f"the {label} is {_off(h - h_w, 'row')} and {_off(w - w_w, 'column')} off"


def _stride(found: Shape, wanted: Shape) -> int | None:
    """The stride that takes a [C, H, W] map to the rows and columns of `wanted` (a 1x1 conv or a 1x1 pool with
    stride s gives ceil(H / s) rows), if one does."""
    (_, h, w), (_, h_w, w_w) = found, wanted
    stride = max(-(-h // h_w), -(-w // w_w))  # the least that gives no more rows or columns than wanted
    return stride if -(-h // stride) == h_w and -(-w // stride) == w_w else None


def _conflict(shapes: list[tuple[str, Shape]]) -> tuple[str, Shape, str, Shape]:
    """The first branch that torch cannot broadcast with those before it, its shape, and what it meets there:
    the first of them it cannot broadcast with, or all of them together, which it cannot broadcast with."""
    for number in range(1, len(shapes)):
        label, found = shapes[number]
        before = shapes[:number]
        if _broadcast([*before, (label, found)]) is not None:
            continue
        for other, wanted in before:
            if _broadcast([(other, wanted), (label, found)]) is None:
                return label, found, f"{other} gives", wanted
        together = [lb for lb, _ in before]
        names = f"{', '.join(together[:-1])} and {together[-1]}"
        return label, found, f"{names} give", _broadcast(before)  # type: ignore[return-value]
    raise ValueError("the shapes broadcast")


def _off(difference: int, word: str) -> str:
    return f"{plural(abs(difference), word)} {'more' if difference > 0 else 'fewer'}" if difference else f"no {word}s"


class Add(Merge):
    """The branches' outputs summed: equal shapes, or shapes torch broadcasts to one."""

    type: str = "add"
    kind = "add"

    def merge(self, shapes: list[tuple[str, Shape]], checks: Checks) -> Shape | None:
        out = _broadcast(shapes)
        if out is None:
            label, found, other, wanted = _conflict(shapes)
            checks.error(
                f"the {other} {show(wanted)}, the {label} {show(found)}: {_fix(label, found, wanted)}",
                ("branches", label),
            )
        return out


class Multiply(Merge):
    """The branches' outputs multiplied element-wise, as a gate scales its input: shapes torch broadcasts."""

    type: str = "multiply"
    kind = "multiply"

    def merge(self, shapes: list[tuple[str, Shape]], checks: Checks) -> Shape | None:
        out = _broadcast(shapes)
        if out is None:
            described = ", ".join(f"the {label} {show(shape)}" for label, shape in shapes)
            checks.error(
                f"{described}: these cannot be multiplied, as each axis must be equal or 1 in all but one "
                "(a gate gives [C, 1, 1] for a [C, H, W] input)",
                "branches",
            )
        return out

    def merge_kept(self, shapes: list[Shape], y: Shape, grads: list[bool]) -> list[tuple[int | None, Kept]]:
        """torch multiplies two at a time; each product keeps each factor whose partner needs a gradient."""
        kept: list[tuple[int | None, Kept]] = []
        left: tuple[int | None, Shape] = (0, shapes[0])
        grad = grads[0]
        for number in range(1, len(shapes)):
            if grads[number]:
                kept.append((left[0], Kept("input") if left[0] is not None else Kept.new(prod(left[1]))))
            if grad:
                kept.append((number, Kept("input")))
            product = _broadcast([("", left[1]), ("", shapes[number])]) or shapes[number]
            left, grad = (None, product), grad or grads[number]
        return kept


class Concat(Merge):
    """The branches' outputs joined along the channels (or features): every other axis equal."""

    type: str = "concat"
    kind = "concat"

    def merge(self, shapes: list[tuple[str, Shape]], checks: Checks) -> Shape | None:
        (first, wanted), *rest = shapes
        for label, found in rest:
            if len(found) != len(wanted):
                checks.error(
                    f"the {first} gives {show(wanted)}, the {label} {show(found)}: "
                    "features and feature maps cannot be joined; flatten both or neither",
                    ("branches", label),
                )
                return None
            if found[1:] != wanted[1:]:
                dh, dw = found[1] - wanted[1], found[2] - wanted[2]
                message = (
                    f"the {label} gives {show(found)}, {_off(dh, 'row')} and {_off(dw, 'column')} than the "
                    f"{first} {show(wanted)}: concat joins channels, so rows and columns must agree"
                )
                if stride := _stride(found, wanted):
                    message += f"; a 1x1 conv or pool with stride {stride} in the {label} would make them agree"
                checks.error(message, ("branches", label))
                return None
        return (sum(s[0] for _, s in shapes), *wanted[1:])


MERGES: dict[str, type[Merge]] = {"add": Add, "concat": Concat, "multiply": Multiply}
