"""A compiled spec as a torchinfo-style table or as JSON."""

from __future__ import annotations

from .analysis import BFLOAT16, FLOAT32, LayerAnalysis, analyse
from .compiler import Compiled, MacConvention
from .layers import show

CONVENTIONS: dict[str, str] = {
    "cnnforge": "bias excluded; conv H_o*W_o*C_o*(C_i/groups)*K_h*K_w, linear F_i*F_o",
    "torchinfo": "as torchinfo counts: every parameter, bias included, once per output position",
}


MEMORY = "kept by autograd for the backward pass while training in float32, as torch on the CPU"


def _field(layer: LayerAnalysis) -> dict | None:
    """A receptive field as JSON; on an axis where it is uneven, start is null and size and jump are bounds."""
    if layer.field is None:
        return None
    axes = layer.field.h, layer.field.w
    return {
        "size": [a.size for a in axes],
        "jump": [a.jump for a in axes],
        "start": [a.start for a in axes],
        "whole_input": layer.whole_input,
    }


def as_json(compiled: Compiled, macs: MacConvention = "cnnforge", batch: int = 1) -> dict:
    """The summary as one JSON-ready object; shapes are lists of ints. Receptive fields and memory are for
    `batch` samples where they depend on it."""
    spec = compiled.spec
    assert spec is not None and compiled.output is not None
    analysis = analyse(compiled, batch)
    return {
        "name": spec.name,
        "input": list(spec.input),
        "output": list(compiled.output),
        "total_params": compiled.total_params,
        "total_macs": compiled.total_macs(macs),
        "macs_convention": macs,
        "layers": [
            {
                "index": layer.index,
                "name": layer.name,
                "type": layer.type,
                "output": list(layer.output or ()),
                "params": layer.params,
                "macs": layer.torchinfo_macs if macs == "torchinfo" else layer.macs,
                "receptive_field": _field(analysed),
                "output_bytes": {
                    "float32": analysed.output_elements * FLOAT32,
                    "bfloat16": analysed.output_elements * BFLOAT16,
                },
                "saved_bytes": analysed.saved_bytes,
            }
            for layer, analysed in zip(compiled.layers, analysis.layers, strict=True)
        ],
        "batch": batch,
        "param_bytes": analysis.param_bytes,
        "saved_bytes": analysis.saved_bytes,
    }


def human_bytes(count: int | None) -> str:
    """Bytes for people: '588.0 KiB'; '?' when unknown."""
    if count is None:
        return "?"
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _pair(values: list, bound: list[bool]) -> str:
    """[h, w] as 'hxw', a bound marked '<='; '-' where unknown."""
    cells = ["-" if v is None else ("<=" if b else "") + str(v) for v, b in zip(values, bound, strict=True)]
    return "x".join(cells)


def _analysis_cells(layer: dict) -> tuple[str, ...]:
    field = layer["receptive_field"]
    if field is None:
        return "?", "?", "?", human_bytes(layer["output_bytes"]["float32"]), human_bytes(layer["saved_bytes"])
    uneven = [start is None for start in field["start"]]
    features = len(layer["output"]) == 1  # one position: no step between positions, nothing to place
    return (
        "all" if field["whole_input"] else _pair(field["size"], uneven),
        "-" if features else _pair(field["jump"], uneven),
        "-" if features else ",".join("-" if s is None else str(s) for s in field["start"]),
        human_bytes(layer["output_bytes"]["float32"]),
        human_bytes(layer["saved_bytes"]),
    )


def as_table(compiled: Compiled, macs: MacConvention = "cnnforge", batch: int = 1, analysis: bool = False) -> str:
    """The summary as a fixed-width table with totals, like torchinfo's; with `analysis`, also each layer's
    receptive field (size, jump, start), output size per sample and memory kept for the backward pass."""
    data = as_json(compiled, macs, batch)
    header: tuple[str, ...] = ("#", "name", "type", "output", "params", "MACs")
    rows = [
        (str(r["index"]), r["name"], r["type"], show(r["output"]), f"{r['params']:,}", f"{r['macs']:,}")
        for r in data["layers"]
    ]
    right = {0, 4, 5}
    if analysis:
        header += ("RF", "jump", "start", "out/sample", f"saved (batch {batch})")
        rows = [(*row, *_analysis_cells(r)) for row, r in zip(rows, data["layers"], strict=True)]
        right |= {6, 7, 8, 9, 10}
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join(
        [
            f"{data['name']}: input {show(data['input'])} -> output {show(data['output'])}",
            line(header),
            rule,
            *map(line, rows),
            rule,
            f"Total params: {data['total_params']:,}",
            f"Total MACs:   {data['total_macs']:,} per sample ({macs} convention: {CONVENTIONS[macs]})",
            f"Parameters:   {human_bytes(data['param_bytes'])} in float32",
            f"Activations:  {human_bytes(data['saved_bytes'])} at batch {batch}, {MEMORY}",
        ]
    )
