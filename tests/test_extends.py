"""A spec that extends another: `extends: resnet50.yaml` with values for its parameters is the other spec bound
to them (ResNeXt-50 is ResNet-50 with groups: 32, width_per_group: 4), under its own name; every mistake in it is
said at its place, and what a checkpoint stores stands without either file."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pytest

from cnnforge.cli import main
from cnnforge.compiler import check_file, compile_spec
from cnnforge.spec import parse, read_text
from cnnforge.spec.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"

BASE = """\
name: base
description: the base
params: {classes: 10, width: 8, deep: false}
input: [1, 12, 12]
layers:
  - {type: conv, shape: [1, '${width}', 3, 3]}
  - {type: relu}
  - {type: conv, shape: ['${width}', '${width}', 3, 3], when: '${deep}'}
  - {type: flatten}
  - {type: linear, shape: ['${width * (8 if deep else 10) * (8 if deep else 10)}', '${classes}']}
"""


def numbers(compiled) -> tuple:
    return compiled.output, compiled.total_params, compiled.total_macs(), [layer.output for layer in compiled.layers]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


def errors(path: Path, **bindings) -> list[str]:
    return [str(d).replace(f"{path.parent}{os.sep}", "") for d in check_file(path, bindings or None).diagnostics]


@pytest.mark.parametrize(
    ("extending", "expected"),
    [
        ("resnext50_32x4d", {"groups": 32, "width_per_group": 4}),
        ("wide_resnet50_2", {"width_per_group": 128}),
    ],
)
def test_shipped_variants_are_their_family_bound(extending: str, expected: dict) -> None:
    variant = check_file(ARCHITECTURES / f"{extending}.yaml")
    family = check_file(ARCHITECTURES / "resnet50.yaml", expected)
    assert variant.ok and family.ok
    assert numbers(variant) == numbers(family)
    assert variant.spec.name == extending and family.spec.name == "resnet50"
    assert variant.file.endswith(f"{extending}.yaml")
    # bindings from outside reach the family through the variant
    assert numbers(check_file(ARCHITECTURES / f"{extending}.yaml", {"classes": 7})) == numbers(
        check_file(ARCHITECTURES / "resnet50.yaml", {**expected, "classes": 7})
    )


def test_an_extending_spec_takes_name_description_and_params(folder: Path) -> None:
    (folder / "deep.yaml").write_text("extends: base.yaml\nname: deep\ndescription: deeper\nparams: {deep: true}\n")
    compiled = check_file(folder / "deep.yaml")
    assert compiled.ok, compiled.diagnostics
    assert (compiled.spec.name, compiled.spec.description) == ("deep", "deeper")
    assert numbers(compiled) == numbers(check_file(folder / "base.yaml", {"deep": True}))
    assert len(compiled.layers) == 5
    # a spec extending an extending spec: the outer one's values win over the bindings inside, outside over both
    (folder / "wide.yaml").write_text("extends: deep.yaml\nname: wide\nparams: {width: 4}\n")
    wide = check_file(folder / "wide.yaml", {"classes": 3})
    assert wide.spec.name == "wide" and wide.spec.description == "deeper"
    assert numbers(wide) == numbers(check_file(folder / "base.yaml", {"deep": True, "width": 4, "classes": 3}))


def test_what_a_checkpoint_stores_stands_alone(folder: Path) -> None:
    (folder / "deep.yaml").write_text("extends: base.yaml\nname: deep\nparams: {deep: true}\n")
    compiled = check_file(folder / "deep.yaml", {"classes": 4})
    text, bindings = compiled.standalone
    assert bindings == {"deep": True, "classes": 4}
    for name in ("base.yaml", "deep.yaml"):
        (folder / name).unlink()  # the files are gone; the text and bindings are enough
    again = read_text(text, "anywhere.yaml", bindings)
    assert numbers(compile_spec(again.spec, again.file, again.source)) == numbers(compiled)
    plain = check_file(ARCHITECTURES / "resnet18.yaml", {"classes": 3})
    assert plain.standalone == ((ARCHITECTURES / "resnet18.yaml").read_text(), {"classes": 3})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "extends: base.yaml\nparams: {widht: 3}\n",
            "deep.yaml:2:10: error: base.yaml declares no parameter 'widht' (declared: classes, width, deep)",
        ),
        (
            "extends: base.yaml\nlayers: []\n",
            "deep.yaml:2:1: error: 'layers': a spec that extends another says only "
            "extends, name, description, params; its layers are base.yaml's",
        ),
        (
            "extends: missing.yaml\n",
            "deep.yaml:1:1: error: extends missing.yaml: cannot read file: No such file or directory",
        ),
        ("extends: base\n", "deep.yaml:1:1: error: 'extends' names a spec file (resnet50.yaml), found 'base'"),
        ("extends: deep.yaml\n", "deep.yaml:1:1: error: extends itself: deep.yaml -> deep.yaml"),
        ("extends: base.yaml\nparams: {width: [3]}\n", "deep.yaml:2:10: error: parameter 'width' is set to a number"),
        ("extends: base.yaml\nname: ''\n", "deep.yaml:2:1: error: 'name' is text, found ''"),
        ("extends: base.yaml\nparams: 3\n", "deep.yaml:2:1: error: 'params' maps the parameters of base.yaml"),
        # a value the base refuses is said where the base uses it
        ("extends: base.yaml\nparams: {width: 0}\n", "base.yaml:6:18: error: layer 0 'conv0' (conv): 'shape'"),
    ],
)
def test_mistakes_are_said_where_they_are(folder: Path, text: str, message: str) -> None:
    (folder / "deep.yaml").write_text(text)
    found = errors(folder / "deep.yaml")
    assert found and found[0].startswith(message), found


def test_a_cycle_through_files_and_a_deep_chain_end(folder: Path) -> None:
    (folder / "a.yaml").write_text("extends: b.yaml\n")
    (folder / "b.yaml").write_text("extends: a.yaml\n")
    assert errors(folder / "a.yaml") == ["b.yaml:1:1: error: extends itself: a.yaml -> b.yaml -> a.yaml"]
    for n in range(12):
        (folder / f"c{n}.yaml").write_text(f"extends: c{n + 1}.yaml\n")
    (folder / "c12.yaml").write_text(BASE)
    assert "extends more than 8 specs deep" in errors(folder / "c0.yaml")[0]


def test_check_says_the_extending_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "deep.yaml").write_text("extends: base.yaml\nname: deep\nparams: {deep: true}\n")
    assert main(["check", str(folder / "deep.yaml")]) == 0
    assert capsys.readouterr().out.startswith(f"{folder / 'deep.yaml'}: ok: [1, 12, 12] -> [10]")
    assert main(["check", str(folder / "deep.yaml"), "--set", "nope=1"]) == 1
    assert "cannot set parameter 'nope'" in capsys.readouterr().out


def test_the_schema_takes_an_extending_spec_and_only_its_keys() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    for path in ("resnext50_32x4d.yaml", "wide_resnet50_2.yaml"):
        validator.validate(parse((ARCHITECTURES / path).read_text()).data)
    assert not validator.is_valid({"extends": "base.yaml", "layers": [{"type": "relu"}]})
    assert not validator.is_valid({"extends": "base", "name": "x"})
    assert not validator.is_valid({"name": "x", "input": [1, 2, 2]})  # no extends: layers are required


def test_an_extended_file_that_is_not_a_regular_file_is_refused_without_waiting(folder: Path) -> None:
    os.mkfifo(folder / "pipe.yaml")  # opening it would wait for a writer, forever
    (folder / "deep.yaml").write_text("extends: pipe.yaml\n")
    (folder / "loop.yaml").symlink_to(folder / "loop.yaml")
    (folder / "deeper.yaml").write_text("extends: loop.yaml\n")
    assert errors(folder / "deep.yaml") == [
        "deep.yaml:1:1: error: extends pipe.yaml: cannot read file: it is a named pipe (FIFO), not a regular file "
        "(pipe.yaml)"  # the folder before it is left out by errors()
    ]
    assert errors(folder / "deeper.yaml")[0].startswith("deeper.yaml:1:1: error: extends loop.yaml: cannot read file")


def test_an_extended_file_that_does_not_parse_is_said_at_its_own_line(folder: Path) -> None:
    (folder / "broken.yaml").write_text("name: b\nparams: {classes: 10\n")
    (folder / "deep.yaml").write_text("extends: broken.yaml\nparams: {classes: 3}\n")
    (found,) = errors(folder / "deep.yaml")
    assert found.startswith("broken.yaml:2:9: error: "), found
