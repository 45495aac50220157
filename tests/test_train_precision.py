"""Mixed precision on the CPU: bf16 and 16-mixed train with autocast active, and a bad value is refused."""

import math
from pathlib import Path

import pytest
import torch
from train_helpers import app_folder, train, write_spec

from cnnforge.train.loop import Trainer

SMALL = ("arch=tiny.yaml", "data=synthetic", "data.train_size=64", "data.val_size=32", "trainer.epochs=1")


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("16-mixed", torch.float16)])
def test_reduced_precision_trains_under_autocast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str, dtype: torch.dtype
) -> None:
    seen: list[torch.dtype] = []
    autocast = Trainer._autocast

    def recording(self: Trainer):  # the dtype autocast gives a matmul inside the training step
        context = autocast(self)
        with context:
            seen.append((torch.ones(2, 2, device=self.device) @ torch.ones(2, 2, device=self.device)).dtype)
        return autocast(self)

    monkeypatch.setattr(Trainer, "_autocast", recording)
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*SMALL, f"trainer.precision={precision}")
    assert run.code in (0, None), run.output
    (row,) = run.rows()
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_loss"]))
    assert seen and set(seen) == {dtype}


def test_unknown_precision_is_refused(tmp_path: Path) -> None:
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*SMALL, "trainer.precision=8")
    assert run.code == 1
    assert run.output == "trainer.precision=8: must be 32, bf16 or 16-mixed\n"
    assert "Traceback" not in run.output


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [
        ("trainer.batch_size=0", "must be at least 1"),
        ("trainer.epochs=-1", "must be at least 1"),
        ("trainer.log_every=x", "must be a whole number"),
    ],
)
def test_bad_trainer_settings_are_refused(tmp_path: Path, setting: str, allowed: str) -> None:
    write_spec(tmp_path)
    with app_folder(tmp_path):
        run = train(*SMALL, setting)
    assert run.code == 1
    assert run.output == f"{setting}: {allowed}\n"
    assert run.folders == []
