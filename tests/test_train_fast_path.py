"""The fast path's options (channels_last, torch.compile, data kept on the device), run on the CPU: each changes
how the steps run but not what they compute, and bad values are refused before anything is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import Run, app_folder, train

from cnnforge.train.data import TensorSplit
from cnnforge.train.loop import DEVICE_MEMORY_SHARE, Trainer, keep_on_device

# 3 channels (digits are copied to them): with one channel NHWC and NCHW are the same layout. No dropout:
# compiled code draws its masks from a random stream of its own.
SPEC = """\
name: rgb
input: [3, 8, 8]
layers:
  - {type: conv, shape: [3, 8, 3, 3], padding: 1}
  - {type: batchnorm}
  - {type: relu}
  - {type: maxpool, kernel: 2}
  - {type: flatten}
  - {type: linear, shape: [128, 10]}
"""
ON_DIGITS = ("arch=rgb.yaml", "trainer.epochs=1", "trainer.batch_size=128")


def write_spec(folder: Path) -> None:
    (folder / "rgb.yaml").write_text(SPEC)


def weights(run: Run) -> dict[str, torch.Tensor]:
    return torch.load(run.folder / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("eager")
    write_spec(folder)
    with app_folder(folder):
        run = train(*ON_DIGITS)
    assert run.code in (0, None), run.output
    return run


def assert_same_training(run: Run, reference: Run, tolerance: float) -> None:
    assert run.code in (0, None), run.output
    (a,), (b,) = run.rows(), reference.rows()
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert float(a[key]) == pytest.approx(float(b[key]), rel=tolerance, abs=tolerance), key
    wa, wb = weights(run), weights(reference)
    assert wa.keys() == wb.keys()  # plain names: no wrapper's prefix in the checkpoint
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=tolerance, atol=tolerance, msg=key)


def test_channels_last_feeds_nhwc_and_trains_the_same(
    tmp_path: Path, eager: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    formats: set[bool] = set()
    prepared = Trainer._input

    def recording(self: Trainer, x: torch.Tensor) -> torch.Tensor:
        y = prepared(self, x)
        formats.add(y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous())
        return y

    monkeypatch.setattr(Trainer, "_input", recording)
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*ON_DIGITS, "trainer.channels_last=true")
    assert formats == {True}
    assert_same_training(run, eager, 1e-4)


def test_compiled_model_trains_the_same(tmp_path: Path, eager: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile with its default backend (inductor, C++ on the CPU); the checkpoint holds the plain model."""
    nets: list[torch.nn.Module] = []
    wrap = Trainer._wrap
    monkeypatch.setattr(Trainer, "_wrap", lambda self, model: nets.append(wrap(self, model)) or nets[-1])
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*ON_DIGITS, "trainer.compile=true")
    (net,) = nets
    assert type(net).__name__ == "OptimizedModule"
    assert_same_training(run, eager, 1e-4)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("trainer.compile=fast", "trainer.compile=fast: must be true, false or one of default, reduce-overhead"),
        ("trainer.channels_last=yes please", "trainer.channels_last=yes please: must be true or false"),
        ("trainer.data_on_device=maybe", "trainer.data_on_device=maybe: must be auto, true or false"),
    ],
)
def test_bad_fast_path_settings_are_refused(tmp_path: Path, setting: str, message: str) -> None:
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*ON_DIGITS, setting)
    assert run.code == 1 and "Traceback" not in run.output
    assert message in run.output
    assert run.folders == []


def test_when_data_stays_on_the_device() -> None:
    gib = 2**30
    assert not keep_on_device("auto", "cpu", 1, None)
    assert not keep_on_device(True, "cpu", 1, None)  # the data is already there
    assert keep_on_device("auto", "cuda", int(DEVICE_MEMORY_SHARE * 8 * gib), 8 * gib)
    assert not keep_on_device("auto", "cuda", int(DEVICE_MEMORY_SHARE * 8 * gib) + 1, 8 * gib)
    assert keep_on_device(True, "cuda", 100 * gib, 8 * gib)  # asked for: the user knows best
    assert not keep_on_device(False, "cuda", 1, 8 * gib)
    assert not keep_on_device("auto", "mps", 1, None)  # unified memory: nothing to gain
    assert keep_on_device(True, "mps", 1, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_whole_fast_path_on_a_gpu(tmp_path: Path) -> None:
    """bf16, channels_last, torch.compile and data on the GPU together (on machines that have one)."""
    write_spec(tmp_path)
    places: list[str] = []
    with app_folder(tmp_path):
        place = Trainer._place
        Trainer._place = lambda self, data, device: (
            places.append(place(self, data, device).train.x.device.type) or (place(self, data, device))
        )
        try:
            run = train(
                *ON_DIGITS,
                "trainer.device=cuda",
                "trainer.precision=bf16",
                "trainer.channels_last=true",
                "trainer.compile=true",
            )
        finally:
            Trainer._place = place
    assert run.code in (0, None), run.output
    assert places == ["cuda"]
    (row,) = run.rows()
    assert float(row["val_acc"]) > 0.1


def test_data_already_on_a_device_is_not_pinned() -> None:
    """Pinning is for batches copied from host memory; data kept on the GPU (here: the meta device) is served as
    it is (pin_memory() refuses tensors that are not on the CPU)."""
    split = TensorSplit(torch.empty(5, 1, 2, 2, device="meta"), torch.empty(5, dtype=torch.long, device="meta"))
    batches = list(split.batches(2, pin=True))
    assert [len(y) for _, y in batches] == [2, 2, 1]
    assert all(x.device.type == "meta" for x, _ in batches)
