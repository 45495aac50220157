"""`cnnforge train model.weights=FILE`: a run starts from weights in another layout (torchvision's); a last
layer for another class count starts afresh and the run says so; anything else that does not fit stops the run
before it starts; the data's normalisation defaults to ImageNet's with pretrained weights, as data.normalize says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import app_folder, run_dirs, train

from cnnforge.train import checkpoint

# Three channels (digits are copied to them), a classifier for `classes`.
SPEC = """\
name: small
params: {classes: 10}
input: [3, 8, 8]
layers:
  - {type: conv, name: conv, shape: [3, 4, 3, 3], padding: 1}
  - {type: batchnorm, name: bn}
  - {type: relu}
  - {type: flatten}
  - {type: linear, name: fc, shape: [256, '${classes}']}
"""
COMMON = ("arch=small.yaml", "trainer.epochs=1", "trainer.num_workers=0", "trainer.batch_size=128")


def other_layout(classes: int) -> nn.Module:
    """The same network written by hand, its modules named otherwise (as torchvision's would be)."""
    torch.manual_seed(1)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()))
    net.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(256, classes)))
    net[0][1].running_mean.uniform_(0, 1)
    return net


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("weights")
    (folder / "small.yaml").write_text(SPEC)
    torch.save(other_layout(10).state_dict(), folder / "ten.pth")
    torch.save(other_layout(1000).state_dict(), folder / "thousand.pth")
    with app_folder(folder):
        yield folder


def weights(run_folder: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run_folder / "last.pt")["model"]


def test_a_run_starts_from_the_files_weights(folder: Path) -> None:
    run = train(*COMMON, "model.weights=ten.pth", "optim.lr=1e-9", "optim.momentum=0")
    assert run.code == 0, run.output
    assert "weights: 9 tensors from ten.pth" in run.output
    source = torch.load(folder / "ten.pth", weights_only=True)
    trained = weights(run.folder)
    # a step of 1e-9 leaves each weight as the file has it; the running statistics moved with the data
    for ours, theirs in (
        ("conv.weight", "features.0.weight"),
        ("fc.weight", "head.1.weight"),
        ("fc.bias", "head.1.bias"),
    ):
        torch.testing.assert_close(trained[ours], source[theirs], rtol=0, atol=1e-6)
    state = checkpoint.load(run.folder / "last.pt")
    assert state["prepare"]["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's, as weights expect
    assert state["prepare"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert "normalisation: ImageNet's, as pretrained weights expect" in run.output


def test_a_classifier_for_other_classes_starts_afresh(folder: Path) -> None:
    run = train(*COMMON, "model.weights=thousand.pth", "optim.lr=1e-9", "optim.momentum=0", "data.normalize=data")
    assert run.code == 0, run.output
    assert (
        "weights: the last layer, fc, starts afresh: the file's is for another class count, digits has 10" in run.output
    )
    assert "weights: 7 tensors from thousand.pth" in run.output
    source, trained = torch.load(folder / "thousand.pth", weights_only=True), weights(run.folder)
    torch.testing.assert_close(trained["conv.weight"], source["features.0.weight"], rtol=0, atol=1e-6)
    assert trained["fc.weight"].shape == (10, 256)
    state = checkpoint.load(run.folder / "last.pt")
    assert state["prepare"]["mean"] != pytest.approx([0.485, 0.456, 0.406])  # data.normalize=data: the digits'


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("model.weights=ten.pth", "arch=mismatch.yaml"),
            "model.weights=ten.pth: tensor 1 differs: the file's 'features.0.weight' [4, 3, 3, 3], the spec's "
            "'conv.weight' [5, 3, 3, 3] (layer conv)",
        ),
        (("model.weights=nothere.pth",), "model.weights=nothere.pth: nothere.pth: no such weights file"),
        (("model.weights=ten.pth", "model.skip=[features*]"), "the file holds 2 tensors, the spec 9"),
        (("model.weightz=ten.pth",), "Did you mean: 'weights'?"),
        (("data.normalize=imagenet", "arch=gray.yaml"), "data.normalize=imagenet: ImageNet's mean and std are for 3"),
        (("data.normalize=ImageNet",), "data.normalize=ImageNet: "),
    ],
)
def test_what_does_not_fit_stops_the_run_before_it_starts(folder: Path, overrides: tuple, message: str) -> None:
    (folder / "mismatch.yaml").write_text(SPEC.replace("[3, 4, 3, 3]", "[3, 5, 3, 3]").replace("[256,", "[320,"))
    (folder / "gray.yaml").write_text(SPEC.replace("input: [3, 8, 8]", "input: [1, 8, 8]").replace("[3, 4,", "[1, 4,"))
    before = run_dirs(folder)
    run = train(*COMMON, *overrides)
    assert run.code != 0 and message in run.output, run.output
    assert "Traceback" not in run.output
    assert run_dirs(folder) == before  # no run folder is left behind
