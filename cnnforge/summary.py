"""A compiled spec as a torchinfo-style table or as JSON."""

from __future__ import annotations

from .compiler import Compiled, MacConvention
from .layers import show

CONVENTIONS: dict[str, str] = {
    "cnnforge": "bias excluded; conv H_o*W_o*C_o*(C_i/groups)*K_h*K_w, linear F_i*F_o",
    "torchinfo": "as torchinfo counts: every parameter, bias included, once per output position",
}


def as_json(compiled: Compiled, macs: MacConvention = "cnnforge") -> dict:
    """The summary as one JSON-ready object; shapes are lists of ints."""
    spec = compiled.spec
    assert spec is not None and compiled.output is not None
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
            }
            for layer in compiled.layers
        ],
    }


def as_table(compiled: Compiled, macs: MacConvention = "cnnforge") -> str:
    """The summary as a fixed-width table with totals, like torchinfo's."""
    data = as_json(compiled, macs)
    header = ("#", "name", "type", "output", "params", "MACs")
    rows = [
        (str(r["index"]), r["name"], r["type"], show(r["output"]), f"{r['params']:,}", f"{r['macs']:,}")
        for r in data["layers"]
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {0, 4, 5}

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
        ]
    )
