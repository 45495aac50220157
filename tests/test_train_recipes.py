"""Training recipes: augmentation (torchvision.transforms.v2 is the oracle of every image stage), label smoothing,
gradient clipping and weight-decay groups (a hand-written torch step is the oracle), schedules with warm-up (their
closed forms, and torch's own OneCycleLR), EMA, early stopping, loggers, recipes, `cnnforge preview`, and Hydra's
Optuna sweeper."""

from __future__ import annotations

import copy
import math
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torchvision.transforms.v2 import functional as TF
from train_helpers import app_folder, read_metrics, spec_folder, train, write_spec

from cnnforge.builder import build
from cnnforge.train import augment, schedule
from cnnforge.train.app import CONF, normalise, prepare_run, register_archs
from cnnforge.train.data import load
from cnnforge.train.loop import EMA, Trainer
from cnnforge.train.settings import SettingsError, compose, validate

AUGMENTS = sorted(path.stem for path in (CONF / "augment").glob("*.yaml"))
RECIPES = sorted(path.stem for path in (CONF / "recipe").glob("*.yaml"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from spec_folder(tmp_path_factory, "recipes")


def run_command(*argv: str, cwd: Path) -> tuple[int, str]:
    """`cnnforge ARGV` in this process from `cwd`: its exit status and all it printed."""
    import contextlib
    import io
    import os

    from cnnforge.cli import main

    out, before = io.StringIO(), Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(list(argv))
    finally:
        os.chdir(before)
    return code, out.getvalue()


def config_of(*overrides: str):
    return compose(register_archs(list(overrides)))


# -- augmentation ------------------------------------------------------------------------------------------------


def test_crop_flip_on_a_batch_is_v2s_crop_and_flip_on_each_sample() -> None:
    """Every output sample is v2's crop (after zero padding) of its input at some place, flipped or not; every place
    and both flips occur."""
    n, padding = 600, 2
    x = (torch.arange(n * 3 * 6 * 6, dtype=torch.float32).view(n, 3, 6, 6) + 1) / (n * 108)  # no value repeats
    torch.manual_seed(0)
    out = augment.crop_flip(x, padding, 0.5)
    assert out.shape == x.shape
    places, flips = set(), 0
    for image, result in zip(x, out, strict=True):
        padded = TF.pad(image, [padding] * 4)
        found = [
            (top, left, flip)
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
            for flip in (False, True)
            if torch.equal(result, _flipped(TF.crop(padded, top, left, 6, 6), flip))
        ]
        assert len(found) == 1
        places.add(found[0][:2])
        flips += found[0][2]
    assert len(places) == (2 * padding + 1) ** 2  # every offset drawn, as v2.RandomCrop draws them
    assert abs(flips / n - 0.5) < 0.08


def _flipped(image: torch.Tensor, flip: bool) -> torch.Tensor:
    return TF.horizontal_flip(image) if flip else image


@pytest.mark.parametrize("option", AUGMENTS)
def test_every_augment_option_keeps_shapes_and_labels_and_is_seeded(option: str) -> None:
    config = config_of(f"augment={option}").augment
    validate(config_of(f"augment={option}"))
    augmentation = augment.build(config, 10, (16, 16))
    x, y = torch.rand(6, 3, 16, 16), torch.arange(6)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        return augmentation.normalised(augmentation.images(x), y)

    out, labels = run(0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(labels, y)  # no mixing as shipped: the labels are the samples'
    assert torch.equal(run(0)[0], out)  # the same seed, the same augmentation
    if option == "none":
        assert not augmentation and torch.equal(out, x)
    else:
        assert not torch.equal(out, x) and not torch.equal(run(1)[0], out)
        assert 0 <= out.min() and out.max() <= 1
        single = augmentation.per_sample()  # what loader processes apply, one image at a time
        assert single is not None and single(x[0]).shape == x[0].shape


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "both"])
def test_mixed_batches_have_soft_targets_of_two_labels(mix: str) -> None:
    alphas = {"mixup": ["augment.mixup=0.4"], "cutmix": ["augment.cutmix=1.0"]}
    overrides = alphas["mixup"] + alphas["cutmix"] if mix == "both" else alphas[mix]
    augmentation = augment.build(config_of(*overrides).augment, 10, (8, 8))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(10, (16,))
    torch.manual_seed(3)
    mixed, target = augmentation.normalised(x, y)
    assert mixed.shape == x.shape and target.shape == (16, 10)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(16))
    partner = y.roll(1)  # torchvision mixes each sample with the one before it
    for row, label, other in zip(target, y, partner, strict=True):
        assert set(torch.nonzero(row).flatten().tolist()) <= {int(label), int(other)}


def test_a_padding_larger_than_the_input_is_refused() -> None:
    from cnnforge.train.data import DataError

    with pytest.raises(DataError, match=r"augment.padding=33 is more than the spec's input side \(32 pixels\)"):
        augment.build(config_of("augment=crop_flip", "augment.padding=33").augment, 10, (32, 32))
    assert augment.build(config_of("augment=crop_flip", "augment.padding=32").augment, 10, (32, 32))


def test_random_erasing_fills_with_the_mean() -> None:
    augmentation = augment.build(config_of("augment.erasing=1.0").augment, 10, (16, 16))
    x = torch.rand(8, 3, 16, 16) + 1  # normalised values, none zero
    erased, _ = augmentation.normalised(x, torch.zeros(8, dtype=torch.long))
    assert all((sample == 0).any() for sample in erased)  # every sample has a zero (the mean colour) patch


def test_train_fraction_keeps_a_share_of_each_class() -> None:
    whole = load(config_of().data, (1, 8, 8))
    part = load(config_of("data.train_fraction=0.1").data, (1, 8, 8))
    assert len(part.val) == len(whole.val)
    counts, kept = torch.bincount(whole.train.y), torch.bincount(part.train.y)
    assert kept.tolist() == [max(1, round(c * 0.1)) for c in counts.tolist()]


def test_loader_processes_augment_as_the_main_process_does(tmp_path: Path) -> None:
    """Images read from disk are augmented per sample, seeded by their place in the epoch: the same batches with
    loader processes or without, and after skipping batches (a resumed epoch)."""
    from cnnforge.train.vision import FolderSplit

    dataset = [(torch.full((1, 4, 4), i, dtype=torch.uint8), i % 3) for i in range(10)]

    def noisy(image: torch.Tensor) -> torch.Tensor:
        return image + torch.randint(0, 100, (1,), dtype=torch.uint8)

    def batches(workers: int, skip: int = 0) -> list[torch.Tensor]:
        split = FolderSplit(dataset, (1, 4, 4), workers)  # type: ignore[arg-type]
        generator = torch.Generator().manual_seed(7)
        return [x for x, _ in split.batches(4, generator, skip, augment=noisy)]

    alone = batches(0)
    assert [b.tolist() for b in batches(2)] == [b.tolist() for b in alone]
    assert [b.tolist() for b in batches(0, skip=1)] == [b.tolist() for b in alone[1:]]
    unaugmented = torch.cat(
        [x for x, _ in FolderSplit(dataset, (1, 4, 4)).batches(4, torch.Generator().manual_seed(7))]
    )
    assert not torch.equal(torch.cat(alone), unaugmented)


# -- the training step -------------------------------------------------------------------------------------------


def trainer_for(folder: Path, *overrides: str) -> Trainer:
    config = config_of("arch=tiny.yaml", "trainer.device=cpu", *overrides)
    validate(config)
    plan = prepare_run(config, "digits.yaml")
    normalise(plan.prepare, config, plan.data)
    torch.manual_seed(0)
    model = build(plan.compiled)
    return Trainer(config, model, plan.data, plan.prepare, torch.device("cpu"), folder, {"spec": {"name": "tiny"}})


def test_a_step_is_torchs_with_label_smoothing_clipping_and_decay_groups(folder: Path) -> None:
    """One step over the whole training split against the same step written with torch: cross-entropy with label
    smoothing, the gradients' norm clipped, no weight decay on biases."""
    trainer = trainer_for(
        folder,
        "trainer.batch_size=2048",
        "optim.label_smoothing=0.1",
        "trainer.clip_grad_norm=0.5",
        "optim.decay_norm_and_bias=false",
        "optim.weight_decay=0.01",
    )
    groups = trainer.optimizer.param_groups
    assert [p.ndim for p in groups[1]["params"]] == [1, 1] and groups[1]["weight_decay"] == 0.0  # the two biases
    assert all(p.ndim > 1 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.01
    model = copy.deepcopy(trainer.model)
    x, y = trainer.data.train.x, trainer.data.train.y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0 * 1_000_003 + 0))
    torch.manual_seed(5)
    trainer.train_epoch(0)
    optimizer = torch.optim.SGD(
        [
            {"params": [p for p in model.parameters() if p.ndim > 1]},
            {"params": [p for p in model.parameters() if p.ndim == 1], "weight_decay": 0.0},
        ],
        lr=0.05,
        momentum=0.9,
        weight_decay=0.01,
    )
    torch.manual_seed(5)  # the same dropout
    model.train()
    loss = F.cross_entropy(model(trainer.prepare(x[order])), y[order], label_smoothing=0.1)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    assert norm > 0.5  # clipping happened
    optimizer.step()
    for (name, ours), theirs in zip(trainer.model.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)


STEPS, EPOCHS, LR = 10, 4, 0.05


def rates(*overrides: str) -> list[float]:
    """The learning rate of each step of a run of EPOCHS epochs of STEPS steps."""
    config = config_of(f"trainer.epochs={EPOCHS}", f"optim.lr={LR}", *overrides)
    validate(config)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = schedule.scheduler(config, optimizer, STEPS)
    found = []
    for _ in range(EPOCHS * STEPS):
        found.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return found


def warm(k: int, steps: int, factor: float = 0.01) -> float:
    return LR * (factor + (1 - factor) * k / steps)


def test_warmup_then_cosine_step_by_step() -> None:
    total, w = EPOCHS * STEPS, 15  # 1.5 epochs of warm-up
    expected = [warm(k, w) if k < w else LR * (1 + math.cos(math.pi * (k - w) / (total - w))) / 2 for k in range(total)]
    assert rates("sched=cosine", "sched.warmup_epochs=1.5") == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_warmup_alone_then_constant() -> None:
    assert rates("sched.warmup_epochs=1") == pytest.approx([warm(k, 10) if k < 10 else LR for k in range(40)])


def test_step_and_multistep_drop_at_epoch_boundaries() -> None:
    step = rates("sched=step", "sched.step_size=1", "sched.gamma=0.5")
    assert step == pytest.approx([LR * 0.5 ** (k // STEPS) for k in range(40)])
    multi = rates("sched=multistep", "sched.milestones=[2,3]", "sched.warmup_epochs=1")
    expected = [warm(k, 10) if k < 10 else LR * 0.1 ** ((k >= 20) + (k >= 30)) for k in range(40)]
    assert multi == pytest.approx(expected)  # milestones counted from the start of the run


def test_onecycle_is_torchs_over_the_run() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    oracle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=EPOCHS * STEPS)
    expected = []
    for _ in range(EPOCHS * STEPS):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        oracle.step()
    assert rates("sched=onecycle") == pytest.approx(expected)


def test_ema_averages_as_its_formula_says() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    ema = EMA(model, decay=0.9)
    average = model.weight.detach().clone()
    for n in range(6):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model)
        if n == 0:
            average = model.weight.detach().clone()  # the first update copies
        else:
            decay = min(0.9, (1 + n) / (10 + n))
            average = decay * average + (1 - decay) * model.weight.detach()
        torch.testing.assert_close(ema.module.weight, average)


# -- runs --------------------------------------------------------------------------------------------------------

RUN = (
    "arch=tiny.yaml",
    "trainer.device=cpu",
    "trainer.epochs=2",
    "trainer.batch_size=256",  # 6 steps an epoch
    "sched=cosine",
    "sched.warmup_epochs=0.5",
    "trainer.ema=true",
    "trainer.ema_decay=0.9",
    "augment=crop_flip",
    "augment.padding=1",
    "augment.flip=0",
)


@pytest.fixture(scope="module")
def recipe_run(folder: Path):
    run = train(*RUN, "logger=tensorboard")
    assert run.code == 0, run.output
    return run


def test_metrics_have_a_row_per_step_and_the_emas_scores(recipe_run) -> None:
    rows = read_metrics(recipe_run.folder / "metrics.csv")
    steps = [row for row in rows if not row["val_acc"]]
    epochs = [row for row in rows if row["val_acc"]]
    assert [int(row["epoch"]) for row in epochs] == [1, 2]
    assert [int(row["step"]) for row in steps] == list(range(1, 13))
    expected = [
        warm(k, 3) / LR * 0.05 if k < 3 else 0.05 * (1 + math.cos(math.pi * (k - 3) / 9)) / 2 for k in range(12)
    ]
    assert [float(row["lr"]) for row in steps] == pytest.approx(expected, rel=1e-5)
    for row in epochs:
        assert 0 <= float(row["ema_val_acc"]) <= 1 and float(row["val_top5"]) >= float(row["val_acc"])
    assert "augment=crop_flip: images augmented on the training device" in recipe_run.output


def test_tensorboard_holds_what_metrics_csv_holds(recipe_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (recipe_run.folder / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    rows = [row for row in read_metrics(recipe_run.folder / "metrics.csv") if row["val_acc"]]
    for tag, column in (("val/acc", "val_acc"), ("train/loss", "train_loss"), ("ema_val/acc", "ema_val_acc")):
        scalars = accumulator.Scalars(tag)
        assert [s.step for s in scalars] == [6, 12]  # at the optimizer step that ends each epoch
        assert [s.value for s in scalars] == pytest.approx([float(row[column]) for row in rows], rel=1e-5)
    assert len(accumulator.Scalars("lr/step")) == 12


def test_best_pt_serves_the_ema_weights(recipe_run, folder: Path) -> None:
    from cnnforge.train import checkpoint

    state = checkpoint.load(recipe_run.folder / "best.pt")
    assert state["served"] == "ema" and state["raw"].keys() == state["model"].keys()
    assert any(not torch.equal(state["raw"][k], state["model"][k]) for k in state["model"])
    rows = [row for row in read_metrics(recipe_run.folder / "metrics.csv") if row["val_acc"]]
    best = max(rows, key=lambda row: float(row["ema_val_acc"]))
    code, output = run_command("evaluate", f"ckpt={recipe_run.folder / 'best.pt'}", cwd=folder)
    assert code == 0, output
    accuracy = float(re.search(r"accuracy (\d\.\d+)", output)[1])
    assert accuracy == pytest.approx(float(best["ema_val_acc"]), abs=5e-5)  # evaluate scores the EMA's weights


def test_resume_with_augmentation_mixup_ema_and_warmup_is_exact(folder: Path) -> None:
    from test_train_resume import assert_same_weights, history, stop_after, weights

    overrides = (*RUN, "trainer.batch_size=64", "augment.mixup=0.2", "augment.erasing=0.25")
    reference = train(*overrides)
    assert reference.code == 0, reference.output
    with stop_after(0, 9):
        stopped = train(*overrides)
    assert stopped.code == 130, stopped.output
    command = re.search(r"continue with: cnnforge train (.*)$", stopped.output, re.MULTILINE)[1]
    resumed = train(*shlex.split(command))
    assert resumed.code == 0, resumed.output
    assert history(resumed.folder / "last.pt") == history(reference.folder / "last.pt")
    assert_same_weights(weights(resumed), weights(reference))  # the EMA's, which the checkpoint serves
    from cnnforge.train import checkpoint

    raw = [checkpoint.load(run.folder / "last.pt")["raw"] for run in (resumed, reference)]
    assert_same_weights(*raw)


def test_early_stopping_keeps_the_best(folder: Path) -> None:
    run = train("arch=tiny.yaml", "trainer.epochs=10", "optim.lr=1e-9", "trainer.early_stop.patience=2")
    assert run.code == 0, run.output
    assert "early stop after epoch 3: validation accuracy has not improved by more than 0 for 2 epochs" in run.output
    assert len(run.rows()) == 3 and "finished: 3 epochs" in run.output
    from cnnforge.train import checkpoint

    assert checkpoint.load(run.folder / "best.pt")["progress"]["epoch"] == 1


# -- config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r != "none"])
def test_recipes_set_their_groups_and_yield_to_the_command_line(recipe: str) -> None:
    config = config_of(f"recipe={recipe}")
    validate(config)
    written = OmegaConf.load(CONF / "recipe" / f"{recipe}.yaml")
    for entry in written.defaults:  # override /group: option
        ((key, option),) = entry.items()
        group = key.removeprefix("override /")
        chosen = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"), resolve=False)
        kept = {k: v for k, v in chosen.items() if k not in written.get(group, {}) and "${" not in str(v)}
        assert {k: config[group][k] for k in kept} == kept
    for group, values in written.items():
        if group != "defaults":
            assert {key: config[group][key] for key in values} == dict(values)
    assert config_of(f"recipe={recipe}", "optim.lr=0.0123").optim.lr == 0.0123
    assert config_of(f"recipe={recipe}", "augment=none").augment.name == "none"


def test_cifar_recipe_is_what_the_docs_say() -> None:
    config = config_of("recipe=cifar")
    assert config.augment.name == "crop_flip" and config.augment.padding == 4 and config.augment.flip == 0.5
    assert config.sched._target_.endswith("CosineAnnealingLR")
    assert (config.optim.lr, config.optim.momentum, config.optim.nesterov) == (0.1, 0.9, True)
    assert (config.optim.weight_decay, config.optim.label_smoothing) == (5e-4, 0.1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["augment=crop_flip", "augment.flip=2"], "augment.flip=2: must be at most 1"),
        (["augment=crop_flip", "augment.padding=-1"], "augment.padding=-1: must be at least 0"),
        (["augment=autoaugment", "augment.policy=mnist"], "augment.policy=mnist: must be 'cifar10', 'imagenet'"),
        (["sched=onecycle", "sched.warmup_epochs=1"], "sched=onecycle warms up itself"),
        (["sched=multistep", "sched.milestones=[3,2]"], "must be increasing epochs"),
        (["trainer.checkpoint.best_on=ema"], "trainer.checkpoint.best_on=ema needs trainer.ema=true"),
        (["optim.label_smoothing=1"], "optim.label_smoothing=1: must be less than 1"),
        (["data.train_fraction=0"], "data.train_fraction=0: must be greater than 0"),
        (["trainer.clip_grad_norm=0"], "trainer.clip_grad_norm=0: must be greater than 0"),
        (["augment.name=crop"], "augment.name=crop: not one of none, crop_flip"),
    ],
)
def test_settings_say_what_is_wrong(overrides: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        validate(config_of(*overrides))
    assert message in str(error.value)


# -- preview and search -------------------------------------------------------------------------------------------


def test_preview_writes_the_samples_as_a_grid(tmp_path: Path) -> None:
    from PIL import Image

    from cnnforge.use import grid

    def preview(*args: str) -> Image.Image:
        code, output = run_command("preview", "augment=crop_flip", "n=12", *args, cwd=tmp_path)
        assert code == 0, output
        written = re.search(r"wrote (\S+): 12 training samples", output)[1]
        return Image.open(tmp_path / written)

    first, again, other = preview("seed=0"), preview("seed=0"), preview("seed=1")
    assert first.size == grid.layout(12, (32, 32)).size  # 12 digits at LeNet-5's 32x32
    assert first.tobytes() == again.tobytes() and first.tobytes() != other.tobytes()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["preview-2.png", "preview-3.png", "preview.png"]
    code, output = run_command("preview", "n=0", cwd=tmp_path)
    assert code == 2 and "n=0: must be a whole number from 1 to 1024" in output


def test_optuna_sweeper_maximises_the_best_accuracy(tmp_path: Path) -> None:
    write_spec(tmp_path)
    overrides = ["hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=1", "optim.lr=interval(0.01,0.3)"]
    with app_folder(tmp_path):
        run = train("-m", "hydra/sweeper=optuna", *overrides, "arch=tiny.yaml", "trainer.epochs=1")
    assert run.code == 0, run.output[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*/")
    jobs = read_metrics(sweep / "sweep.csv")
    assert [job["status"] for job in jobs] == ["ok"] * 3
    assert len({job["overrides"] for job in jobs}) == 3  # three learning rates tried
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(float(job["best_val_acc"]) for job in jobs), abs=1e-6)


def test_a_checkpoint_from_before_the_new_groups_resumes_with_one_line_each() -> None:
    from cnnforge.train import resume

    config = config_of("augment=crop_flip")
    model = torch.nn.Linear(2, 2)
    saved = OmegaConf.to_container(config, resolve=True)
    del saved["augment"], saved["logger"]  # as a checkpoint of a cnnforge without them holds its config
    state = {"model": model.state_dict(), "spec": {"name": "t", "file": "t.yaml"}, "config": saved}
    lines = resume.check_weights(state, {"spec": {"file": "t.yaml"}}, model, config)
    assert lines == [
        "resuming with augment=crop_flip: the checkpoint's run had no augment settings",
        "resuming with logger=csv: the checkpoint's run had no logger settings",
    ]
