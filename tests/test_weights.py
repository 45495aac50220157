"""Weights from elsewhere: `cnnforge weights SPEC FILE` puts a torchvision state_dict in the spec's layout (and
`build(compiled, state_dict=...)` takes one directly), checked tensor by tensor; what does not fit, what is not a
state_dict and what holds code are refused with one line naming the file and the tensor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_torchvision_specs import smaller
from torch import nn

from cnnforge.builder import build
from cnnforge.cli import main
from cnnforge.compiler import compile_file
from cnnforge.weights import WeightsError, children_first, map_state

ROOT = Path(__file__).resolve().parent.parent
RESNET18 = ROOT / "architectures" / "resnet18.yaml"


@pytest.fixture(scope="module")
def models():
    return pytest.importorskip("torchvision.models")


@pytest.fixture(scope="module")
def resnet18_file(models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 file as torch's hub cache holds one: the state_dict saved with torch.save."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hub") / "resnet18-f37072fd.pth"
    torch.save(models.resnet18().state_dict(), path)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_converted_file_is_torchvisions_network(
    models, resnet18_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "weights", RESNET18, resnet18_file, "-o", tmp_path / "r18.pt")
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'r18.pt'}: 122 tensors of {resnet18_file} in the layout of {RESNET18}")
    converted = torch.load(tmp_path / "r18.pt", weights_only=True)
    built = build(compile_file(RESNET18)).eval()
    built.load_state_dict(converted)  # the spec's own names: a plain load_state_dict takes it
    reference = models.resnet18()
    reference.load_state_dict(torch.load(resnet18_file, weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(built(x), reference.eval()(x))
    # nothing is overwritten: a second conversion takes a new name
    code, out, _ = run(capsys, "weights", RESNET18, resnet18_file, "-o", tmp_path / "r18.pt")
    assert code == 0 and out.startswith(f"{tmp_path / 'r18-2.pt'}: ")
    assert torch.load(tmp_path / "r18.pt", weights_only=True).keys() == converted.keys()


def test_build_takes_a_state_dict_and_names_the_first_tensor_that_differs(models) -> None:
    torch.manual_seed(0)
    reference = models.resnet18()
    with pytest.raises(WeightsError) as error:
        build(compile_file(ROOT / "architectures" / "resnet50.yaml"), state_dict=reference.state_dict())
    assert str(error.value) == (
        "tensor 7 differs: the file's 'layer1.0.conv1.weight' [64, 64, 3, 3], the spec's 'layer1.0.conv1.weight' "
        "[64, 64, 1, 1] (layer layer1.0.conv1); the file holds 122 tensors, the spec "
        f"{len(models.resnet50().state_dict())}"
    )
    ten = compile_file(RESNET18, {"classes": 10})
    with pytest.raises(WeightsError, match=r"tensor 121 differs: the file's 'fc.weight' \[1000, 512\], the spec's"):
        build(ten, state_dict=reference.state_dict())


def test_extra_tensors_are_named_with_the_pattern_that_leaves_them_out(models) -> None:
    state = models.resnet18().state_dict()
    state["aux1.conv.weight"] = torch.zeros(8, 4, 1, 1)
    state["aux1.conv.bias"] = torch.zeros(8)
    compiled = compile_file(RESNET18)
    with pytest.raises(WeightsError) as error:
        build(compiled, state_dict=state)
    assert str(error.value) == (
        "the weights hold 124 tensors, the spec 122: the file's 'aux1.conv.weight' [8, 4, 1, 1] and 1 more after "
        "it have no place in the spec; leave out what the spec does not have with a skip pattern (--skip 'aux1.*')"
    )
    with torch.device("meta"):
        ours = build(compiled).state_dict()
    mapped = map_state(ours, state, ["AUX*"])  # case-insensitive, as torchvision spells aux1 and AuxLogits
    assert mapped.skipped == ["aux1.conv.weight", "aux1.conv.bias"]
    assert list(mapped.state) == list(ours)


def test_skipped_tensors_are_listed(models, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = models.resnet18().state_dict()
    state = {**{f"aux.{i}": torch.zeros(3) for i in range(2)}, **state}
    torch.save(state, tmp_path / "with-aux.pth")
    code, out, _ = run(
        capsys, "weights", RESNET18, tmp_path / "with-aux.pth", "--skip", "aux*", "-o", tmp_path / "o.pt"
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        f"skipped 2 tensors of {tmp_path / 'with-aux.pth'} matching aux*:",
        "  aux.0",
        "  aux.1",
    ]


def test_a_modules_own_tensors_come_after_its_childrens() -> None:
    """torchvision's ConvNeXt block registers layer_scale before its layers; the spec computes with it after."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer_scale = nn.Parameter(torch.ones(4, 1, 1))
            self.block = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 1))

    keys = list(nn.Sequential(Block(), nn.Linear(2, 2)).state_dict())
    assert keys[0] == "0.layer_scale"
    assert children_first(keys) == [
        "0.block.0.weight",
        "0.block.0.bias",
        "0.block.1.weight",
        "0.block.1.bias",
        "0.layer_scale",
        "1.weight",
        "1.bias",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pickled", "refused: the file holds Python code (a pickled object, torch.nn.modules.linear.Linear)"),
        ("text", "not a readable weights file (not a file that torch.save wrote"),
        ("list", "not a state_dict (a mapping of names to tensors)"),
        ("empty", "not a state_dict (a mapping of names to tensors)"),
        ("fifo", "not a regular file"),
        ("missing", "no such weights file"),
    ],
)
def test_files_that_are_not_weights_are_refused(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.pth"
    if content == "pickled":
        torch.save(nn.Linear(2, 2), path)  # a whole module: loading it would run its classes' code
    elif content == "text":
        path.write_text("not weights")
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    elif content == "empty":
        torch.save({}, path)
    elif content == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer, forever
    code, out, err = run(capsys, "weights", RESNET18, path, "-o", tmp_path / "o.pt")
    assert code == 1 and out == ""
    assert err.startswith(f"cnnforge weights: error: {path}: ") and message in err, err
    assert "Traceback" not in err and not (tmp_path / "o.pt").exists()


def test_a_spec_with_errors_writes_nothing(resnet18_file: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "weights", RESNET18, resnet18_file, "--set", "classes=0", "-o", tmp_path / "o.pt")
    assert code == 1 and "error" in err and not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize(("name", "skipped"), [("googlenet", "aux1.conv.conv.weight"), ("inception_v3", "AuxLogits.")])
def test_torchvisions_files_with_auxiliary_classifiers_load_when_told_to_skip_them(
    models, name: str, skipped: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """torchvision's pretrained GoogLeNet and Inception v3 files hold auxiliary classifiers (Inception v3's in the
    middle of the file) that the shipped specs leave out: refused, unless skipped, each skipped tensor listed."""
    torch.manual_seed(0)
    reference = models.get_model(name, weights=None, aux_logits=True, init_weights=False)
    torch.save(reference.state_dict(), tmp_path / f"{name}.pth")
    spec = ROOT / "architectures" / f"{name}.yaml"
    code, _, err = run(capsys, "weights", spec, tmp_path / f"{name}.pth", "-o", tmp_path / "o.pt")
    assert code == 1 and "differs: the file's 'A" in err.replace("'aux", "'A") and "--skip '" in err, err
    code, out, err = run(capsys, "weights", spec, tmp_path / f"{name}.pth", "--skip", "aux*", "-o", tmp_path / "o.pt")
    assert code == 0, err
    listed = [line.strip() for line in out.splitlines()[2:]]
    assert listed == [key for key in reference.state_dict() if key.lower().startswith("aux")]
    assert any(key.startswith(skipped) for key in listed)
    # what is left is torchvision's network without the classifiers: the same outputs in evaluation mode (on the
    # smallest input the spec takes with the same layers)
    compiled = smaller(compile_file(spec))
    built = build(compiled).eval()
    built.load_state_dict(torch.load(tmp_path / "o.pt", weights_only=True))
    reference.aux_logits, reference.transform_input = False, False
    x = torch.randn(1, *compiled.spec.input)
    with torch.no_grad():
        torch.testing.assert_close(built(x), reference.eval()(x), rtol=0, atol=1e-4)


def test_a_missing_file_named_relatively_is_said_once(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "weights", RESNET18, "./missing.pth")
    assert (code, err) == (1, "cnnforge weights: error: missing.pth: no such weights file\n")
