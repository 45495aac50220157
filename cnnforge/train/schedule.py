"""The optimizer and its learning-rate schedule, as the optim and sched config groups describe them.

Every schedule advances once per optimizer step, so a warm-up and a cosine rise and fall smoothly within epochs.
The sched keys counted in epochs (step_size, milestones, T_max, epochs, warmup_epochs) are turned into steps here;
they count from the start of the run, the warm-up's epochs included.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from .settings import OPTIM_EXTRAS, SCHED_EXTRAS, arguments, instantiate

Scheduler = torch.optim.lr_scheduler.LRScheduler


def parameter_groups(model: nn.Module, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """The model's parameters for the optimizer: one group, or with `decay_norm_and_bias` false two, the second,
    biases and normalisation weights (every parameter of one dimension), without weight decay."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": parameters}]
    return [
        {"params": [p for p in parameters if p.ndim > 1]},
        {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},
    ]


def optimizer(config: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer config.optim describes, over `model`'s parameters."""
    groups = parameter_groups(model, config.optim.get("decay_norm_and_bias", True))
    make = instantiate(arguments(config.optim, OPTIM_EXTRAS), _partial_=True)  # groups of tensors stay as they are
    return make(groups)


def settings(config: DictConfig) -> dict[str, Any]:
    """The optimizer's settings of config.optim that every parameter group takes (a resumed run's new ones)."""
    values = arguments(config.optim, OPTIM_EXTRAS)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k != "_target_"}


def warmup_steps(config: DictConfig, steps_per_epoch: int) -> int:
    return round(config.sched.get("warmup_epochs", 0) * steps_per_epoch)


def scheduler(config: DictConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Scheduler | None:
    """The schedule config.sched describes, stepped once per optimizer step; None for a constant learning rate."""
    warmup = warmup_steps(config, steps_per_epoch)
    main = _main(config, optimizer, steps_per_epoch, warmup)
    if not warmup:
        return main
    factor = config.sched.get("warmup_factor", 0.01)
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=factor, end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp  # after total_iters it keeps the learning rate at optim.lr
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _main(config: DictConfig, optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> Scheduler | None:
    """The schedule after the warm-up, its epoch-counted arguments in steps."""
    values = arguments(config.sched, SCHED_EXTRAS)
    target = values.get("_target_")
    if not target:
        return None
    name = target.rsplit(".", 1)[-1]
    if name == "StepLR":
        values["step_size"] = values["step_size"] * steps
    elif name == "MultiStepLR":
        values["milestones"] = [m * steps - warmup for m in values["milestones"]]
    elif name == "CosineAnnealingLR":
        values["T_max"] = max(values["T_max"] * steps - warmup, 1)
    elif name == "OneCycleLR":
        values["steps_per_epoch"] = steps
    return instantiate(values, optimizer=optimizer)


def advance(scheduler: Scheduler, steps: int) -> None:
    """Step a new `scheduler` through `steps` optimizer steps already taken (a resumed run's)."""
    with warnings.catch_warnings():  # stepping a schedule before the optimizer has stepped is the point
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        for _ in range(steps):
            scheduler.step()
