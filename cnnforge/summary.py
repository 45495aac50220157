"""A compiled spec as a torchinfo-style table or as JSON; a graph as an indented tree of its groups."""

from __future__ import annotations

from .analysis import BFLOAT16, FLOAT32, LayerAnalysis, analyse
from .compiler import Compiled, CompiledGroup, MacConvention
from .layers import show
from .outline import branch_labels

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
    labels = branch_labels(compiled)
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
                "path": layer.path,
                "parent": layer.parent,
                "inputs": list(layer.inputs),
                "branches": labels.get(layer.path, []),
            }
            for layer, analysed in zip(compiled.layers, analysis.layers, strict=True)
        ],
        "groups": [_group(compiled, group, macs, analysis.layers) for group in compiled.groups],
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


def as_table(
    compiled: Compiled,
    macs: MacConvention = "cnnforge",
    batch: int = 1,
    analysis: bool = False,
    depth: int | None = None,
) -> str:
    """The summary as a fixed-width table with totals, like torchinfo's; with `analysis`, also each layer's
    receptive field (size, jump, start), output size per sample and memory kept for the backward pass. A graph's
    groups are rows of their own, with their nodes indented under them and their totals; `depth` shows that many
    levels of the tree (1: the top level only), each group's row standing for what it holds."""
    data = as_json(compiled, macs, batch)
    header: tuple[str, ...] = ("#", "name", "type", "output", "params", "MACs")
    tree = _tree(data, depth) if compiled.is_graph else [("", layer) for layer in data["layers"]]
    rows = [
        (
            str(row.get("index", "")),
            prefix + row["name"],
            _type(row, data),
            "?" if row["output"] is None else show(row["output"]),
            f"{row['params']:,}",
            f"{row['macs']:,}",
        )
        for prefix, row in tree
    ]
    right = {0, 4, 5}
    if analysis:
        header += ("RF", "jump", "start", "out/sample", f"saved (batch {batch})")
        rows = [(*line, *_analysis_cells(row)) for line, (_, row) in zip(rows, tree, strict=True)]
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


MERGE_SIGNS = {"add": " + ", "multiply": " × ", "concat": ", "}  # between a merge's branch labels


def _group(compiled: Compiled, group: CompiledGroup, macs: MacConvention, analysed: list[LayerAnalysis]) -> dict:
    """A group as JSON: what it is, where its nodes are, its output and its totals."""
    nodes = range(group.first, group.last + 1)
    layers = [compiled.layers[i] for i in nodes]
    saved = [analysed[i].saved_bytes for i in nodes]
    output = layers[-1].output if layers else None
    return {
        "path": group.path,
        "name": group.name,
        "kind": group.kind,
        "block": group.block,
        "repetitions": group.repetitions,
        "parent": group.parent,
        "first": group.first,
        "last": group.last,
        "output": None if output is None else list(output),
        "params": sum(layer.params for layer in layers),
        "macs": sum(layer.torchinfo_macs if macs == "torchinfo" else layer.macs for layer in layers),
        "saved_bytes": None if None in saved else sum(saved),  # type: ignore[arg-type]
    }


def _tree(data: dict, depth: int | None) -> list[tuple[str, dict]]:
    """The rows of a graph's table, in order: (the tree's lines before the name, a node or a group); levels
    deeper than `depth` left out."""
    children: dict[str, list[tuple[tuple[int, int], dict]]] = {}
    for group in data["groups"]:
        children.setdefault(group["parent"], []).append(((group["first"], 0), group))
    for layer in data["layers"]:
        children.setdefault(layer["parent"], []).append(((layer["index"], 1), layer))
    rows: list[tuple[str, dict]] = []

    def emit(parent: str, prefix: str, level: int) -> None:
        if depth is not None and level >= depth:
            return
        kids = sorted(children.get(parent, []), key=lambda kid: kid[0])  # stable: outer groups first
        for number, (_, row) in enumerate(kids):
            last = number == len(kids) - 1
            rows.append((prefix + ("" if not level else "└─ " if last else "├─ "), _shown(row, data)))
            if "index" not in row:
                emit(row["path"], prefix + ("" if not level else "   " if last else "│  "), level + 1)

    emit("", "", 0)
    return rows


def _shown(row: dict, data: dict) -> dict:
    """A node as it is; a group with the analysis of its last node (its output), and its own totals."""
    if "index" in row:
        return row
    last = data["layers"][row["last"]] if row["last"] >= row["first"] else None
    analysed = {key: last[key] for key in ("receptive_field", "output_bytes")} if last else _UNKNOWN
    return {**row, **analysed}


_UNKNOWN = {"receptive_field": None, "output_bytes": {"float32": None, "bfloat16": None}}


def _type(row: dict, data: dict) -> str:
    """A node's type, a merge's with its branches: 'add (body + shortcut)'; a group's block, 'sequence', or what
    it repeats: 'basic ×2'."""
    if "index" in row:
        return f"{row['type']} ({MERGE_SIGNS[row['type']].join(row['branches'])})" if row["branches"] else row["type"]
    if row["kind"] != "repeat":
        return row["block"] or "sequence"
    first = f"{row['path']}.0"
    inner = next((g for g in data["groups"] if g["path"] == first), None)
    if inner is not None:
        what = inner["block"] or "sequence"
    else:
        what = next(layer["type"] for layer in data["layers"] if layer["path"] == first)
    return f"{what} ×{row['repetitions']}"
