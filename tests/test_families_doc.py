"""docs/families.md's tables are what the specs and torchvision say: the gallery (each family's parameters and
MACs from the checker, beside torchvision's published figures and weights file) and the variants (each
torchvision network that is a family spec with parameters set). Regenerate them with
`python tests/test_families_doc.py`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from test_torchvision_specs import FAMILIES, VARIANTS, compiled

DOC = Path(__file__).resolve().parent.parent / "docs" / "families.md"


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def gallery() -> str:
    from torchvision.models import get_model_weights

    rows = [
        "| network | spec | input | parameters | MACs | torchvision: parameters | GFLOPS | at | top-1 | weights file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in FAMILIES:
        spec = compiled(name)
        weights = get_model_weights(name).DEFAULT
        meta = weights.meta
        top1 = meta["_metrics"]["ImageNet-1K"]["acc@1"]
        crop = weights.transforms().crop_size[0]  # the size torchvision evaluates its weights at
        rows.append(
            f"| {name} | `architectures/{name}.yaml` | {'x'.join(map(str, spec.spec.input[1:]))} | "
            f"{spec.total_params:,} | {spec.total_macs() / 1e9:.3f} G | {meta['num_params']:,} | {meta['_ops']:.3f} | "
            f"{crop}x{crop} | {top1:.1f}% | `{weights.url.rsplit('/', 1)[1]}` |"
        )
    return "\n".join(rows)


def variants() -> str:
    rows = ["| torchvision | spec | parameters set | parameters | MACs |", "|---|---|---|---|---|"]
    for name, (family, bindings) in VARIANTS.items():
        spec = compiled(name)
        sets = " ".join(f"{key}={_value(value)}" for key, value in bindings.items())
        rows.append(
            f"| {name} | `{family}.yaml` | `{sets}` | {spec.total_params:,} | {spec.total_macs() / 1e9:.3f} G |"
        )
    return "\n".join(rows)


def _between(text: str, marker: str) -> str:
    found = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    assert found, f"docs/families.md has no <!-- {marker} --> ... <!-- /{marker} --> section"
    return found[1]


def _replace(text: str, marker: str, table: str) -> str:
    return re.sub(rf"(<!-- {marker} -->\n).*?(\n<!-- /{marker} -->)", lambda m: m[1] + table + m[2], text, flags=re.S)


def test_the_gallery_is_what_the_specs_and_torchvision_say() -> None:
    pytest.importorskip("torchvision")
    assert _between(DOC.read_text(), "gallery") == gallery(), "regenerate: python tests/test_families_doc.py"


def test_the_variants_table_is_what_the_specs_say() -> None:
    assert _between(DOC.read_text(), "variants") == variants(), "regenerate: python tests/test_families_doc.py"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    text = _replace(_replace(DOC.read_text(), "gallery", gallery()), "variants", variants())
    DOC.write_text(text)


def test_the_docs_choice_example_is_what_check_prints() -> None:
    import subprocess

    text = (DOC.parent / "spec-format.md").read_text()
    command, shown = re.search(
        r"\$ (cnnforge check architectures/vgg16\.yaml --set depth=12)\n(.*?)```", text, re.S
    ).groups()
    root = DOC.parent.parent
    run = subprocess.run([sys.executable, "-m", *command.split()], cwd=root, capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (1, shown)
