"""The training config, typed: every key of every config group is declared here with its type and range, so a
composed config is checked before anything is compiled or allocated, and a new setting is validated by
declaring it. Problems are said one line each, naming the key, the value found and what is allowed.

Also the one place that talks to Hydra's version-dependent API: `instantiate` with an execution whitelist of
exactly the targets declared here, and `compose` for commands that read the config without running the app."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import hydra
import omegaconf
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

HYDRA_LINE = tuple(int(part) for part in hydra.__version__.split(".")[:2])
# Hydra 1.3 wants version_base said (None: today's defaults); 1.4 deprecates the parameter.
VERSION_BASE: dict[str, Any] = {"version_base": None} if HYDRA_LINE < (1, 4) else {}
OMEGACONF_LINE = tuple(int(part) for part in omegaconf.__version__.split(".")[:2])
# Hydra 1.4 warns when a ConfigStore entry is stored again without saying to replace it; 1.3 has no such argument.
REPLACE: dict[str, Any] = {"replace": True} if HYDRA_LINE >= (1, 4) else {}

SEED_MAX = 2**32 - 1  # numpy's range; the per-epoch shuffle seed seed * 1_000_003 + epoch stays within 64 bits
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's


class SettingsError(Exception):
    """A composed config that cannot be run; one problem per line."""


def _word(expected: str, *allowed: Any) -> BeforeValidator:
    """Accept exactly the values `allowed` (compared by value and type: true is not 1), saying `expected`."""

    def check(value: Any) -> Any:
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ValueError(f"must be {expected}")
        return value

    return BeforeValidator(check)


class Section(BaseModel):
    """A config group's keys: strict types (a word is not a number, 1 is not true) and no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


Positive = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


# -- trainer -----------------------------------------------------------------------------------------------------


class Checkpoints(Section):
    last: bool  # write last.pt after every epoch
    best: bool  # write best.pt when validation accuracy improves
    best_on: Literal["auto", "raw", "ema"] = "auto"  # whose accuracy picks best.pt, and whose weights are served


class EarlyStop(Section):
    patience: Positive | None = None  # epochs without improvement before stopping; None: never
    min_delta: Annotated[float, Field(ge=0)] = 0.0  # an improvement must exceed this


def _device(value: Any) -> Any:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return value


def _precision(value: Any) -> str:
    if str(value) not in ("32", "bf16", "16-mixed") or isinstance(value, bool):
        raise ValueError("must be 32, bf16 or 16-mixed")
    return str(value)


class Trainer(Section):
    epochs: Positive
    batch_size: Positive
    device: Annotated[str, BeforeValidator(_device)]
    precision: Annotated[str, BeforeValidator(_precision)]
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)]
    num_workers: Count
    log_every: Positive
    checkpoint: Checkpoints
    resume: str | None
    channels_last: bool
    compile: Annotated[
        bool | str, _word(f"true, false or one of {', '.join(COMPILE_MODES)}", True, False, *COMPILE_MODES)
    ]
    data_on_device: Annotated[bool | str, _word("auto, true or false", "auto", True, False)]
    sync_batchnorm: bool
    clip_grad_norm: Annotated[float, Field(gt=0)] | None = None
    ema: bool = False
    ema_decay: Fraction = 0.999
    early_stop: EarlyStop = EarlyStop()

    @model_validator(mode="after")
    def _ema(self) -> Trainer:
        if self.checkpoint.best_on == "ema" and not self.ema:
            raise ValueError("trainer.checkpoint.best_on=ema needs trainer.ema=true")
        return self


# -- data --------------------------------------------------------------------------------------------------------


Normalize = Literal["auto", "data", "imagenet", "none"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # torchvision's pretrained weights'


class DataSection(Section):
    """What every data option has: its name (each option's own word), how its inputs are normalised, and the share
    of the training split to train on."""

    name: str
    normalize: Normalize = "auto"
    train_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0


class Digits(DataSection):
    name: Literal["digits"]
    root: str | None = None
    val_fraction: Fraction


class Synthetic(DataSection):
    name: Literal["synthetic"]
    root: str | None = None
    shape: Annotated[list[Positive], Field(min_length=3, max_length=3)] | None
    classes: Positive
    train_size: Positive
    val_size: Positive
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)]


class Downloadable(DataSection):
    name: Literal["mnist", "fashion_mnist", "cifar10"]
    root: str
    download: bool


class ImageFolder(DataSection):
    name: Literal["imagefolder"]
    root: str
    val_fraction: Fraction
    memory_gb: Annotated[float, Field(ge=0)]
    num_workers: Count


DATA: dict[str, type[Section]] = {
    "digits": Digits,
    "synthetic": Synthetic,
    "mnist": Downloadable,
    "fashion_mnist": Downloadable,
    "cifar10": Downloadable,
    "imagefolder": ImageFolder,
}


# -- optim and sched: what `instantiate` may build ------------------------------------------------------------


class OptimSection(Section):
    """What every optimizer option has besides the optimizer's own arguments: settings of the loss and of which
    weights decay (OPTIM_EXTRAS, left out when the optimizer is made)."""

    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    decay_norm_and_bias: bool = True


OPTIM_EXTRAS = tuple(OptimSection.model_fields)


class SGD(OptimSection):
    target: Literal["torch.optim.SGD"] = Field(alias="_target_")
    lr: Annotated[float, Field(gt=0)]
    momentum: Annotated[float, Field(ge=0)] = 0.0
    dampening: Annotated[float, Field(ge=0)] = 0.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov(self) -> SGD:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("optim.nesterov=true needs optim.momentum > 0 and optim.dampening=0")
        return self


Beta = Annotated[float, Field(ge=0, lt=1)]


class Adam(OptimSection):
    target: Literal["torch.optim.Adam", "torch.optim.AdamW"] = Field(alias="_target_")
    lr: Annotated[float, Field(gt=0)]
    betas: Annotated[list[Beta], Field(min_length=2, max_length=2)] = [0.9, 0.999]
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    amsgrad: bool = False


class ScheduleSection(Section):
    """What every schedule option has besides the scheduler's own arguments: a linear warm-up before it
    (SCHED_EXTRAS, left out when the scheduler is made)."""

    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0
    warmup_factor: Annotated[float, Field(gt=0, le=1)] = 0.01


SCHED_EXTRAS = tuple(ScheduleSection.model_fields)


class NoSchedule(ScheduleSection):
    target: None = Field(alias="_target_")


class StepLR(ScheduleSection):
    target: Literal["torch.optim.lr_scheduler.StepLR"] = Field(alias="_target_")
    step_size: Positive
    gamma: Annotated[float, Field(gt=0)]


class MultiStepLR(ScheduleSection):
    target: Literal["torch.optim.lr_scheduler.MultiStepLR"] = Field(alias="_target_")
    milestones: Annotated[list[Positive], Field(min_length=1)]
    gamma: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _increasing(self) -> MultiStepLR:
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise ValueError(f"sched.milestones={self.milestones}: must be increasing epochs")
        return self


class CosineAnnealingLR(ScheduleSection):
    target: Literal["torch.optim.lr_scheduler.CosineAnnealingLR"] = Field(alias="_target_")
    T_max: Positive  # torch's argument name
    eta_min: Annotated[float, Field(ge=0)]


class OneCycleLR(ScheduleSection):
    target: Literal["torch.optim.lr_scheduler.OneCycleLR"] = Field(alias="_target_")
    max_lr: Annotated[float, Field(gt=0)]
    pct_start: Fraction
    anneal_strategy: Literal["cos", "linear"]
    div_factor: Annotated[float, Field(gt=0)]
    final_div_factor: Annotated[float, Field(gt=0)]
    epochs: Positive

    @model_validator(mode="after")
    def _no_warmup(self) -> OneCycleLR:
        if self.warmup_epochs:
            raise ValueError("sched=onecycle warms up itself (pct_start): sched.warmup_epochs must be 0")
        return self


OPTIM: dict[str, type[Section]] = {"torch.optim.SGD": SGD, "torch.optim.Adam": Adam, "torch.optim.AdamW": Adam}
SCHED: dict[str | None, type[Section]] = {
    None: NoSchedule,
    "torch.optim.lr_scheduler.StepLR": StepLR,
    "torch.optim.lr_scheduler.MultiStepLR": MultiStepLR,
    "torch.optim.lr_scheduler.CosineAnnealingLR": CosineAnnealingLR,
    "torch.optim.lr_scheduler.OneCycleLR": OneCycleLR,
}
TARGETS = tuple(t for t in (*OPTIM, *SCHED) if t)  # the execution whitelist: all that a config may instantiate


# -- augment and logger ------------------------------------------------------------------------------------------


Probability = Annotated[float, Field(ge=0, le=1)]
Alpha = Annotated[float, Field(ge=0)]


class AugmentSection(Section):
    """What every augment option has: random erasing and batch mixing, which go with any image augmentation."""

    name: str
    erasing: Probability = 0.0
    mixup: Alpha = 0.0
    cutmix: Alpha = 0.0


class NoAugment(AugmentSection):
    name: Literal["none"]


class CropFlip(AugmentSection):
    name: Literal["crop_flip"]
    padding: Count
    flip: Probability


Range = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)]


class ResizedCrop(AugmentSection):
    name: Literal["imagenet"]
    scale: Range
    ratio: Range
    flip: Probability

    @model_validator(mode="after")
    def _ranges(self) -> ResizedCrop:
        if self.scale[0] > self.scale[1] or self.scale[1] > 1 or self.ratio[0] > self.ratio[1]:
            raise ValueError(
                f"augment.scale={self.scale}, augment.ratio={self.ratio}: each must be [low, high] with low <= high, "
                "and the scale at most 1 (the whole image)"
            )
        return self


class ShiftRotate(AugmentSection):
    name: Literal["shift_rotate"]
    degrees: Annotated[float, Field(ge=0, le=180)]
    translate: Annotated[float, Field(ge=0, le=1)]


class TrivialAugment(CropFlip):
    name: Literal["trivialaugment"]  # type: ignore[assignment]
    num_magnitude_bins: Annotated[int, Field(ge=2)]


class RandAugment(CropFlip):
    name: Literal["randaugment"]  # type: ignore[assignment]
    num_ops: Positive
    magnitude: Count
    num_magnitude_bins: Annotated[int, Field(ge=2)]

    @model_validator(mode="after")
    def _magnitude(self) -> RandAugment:
        if self.magnitude >= self.num_magnitude_bins:
            raise ValueError(f"augment.magnitude={self.magnitude}: must be less than num_magnitude_bins")
        return self


class AutoAugment(CropFlip):
    name: Literal["autoaugment"]  # type: ignore[assignment]
    policy: Literal["cifar10", "imagenet", "svhn"]


AUGMENT: dict[str, type[Section]] = {
    "none": NoAugment,
    "crop_flip": CropFlip,
    "imagenet": ResizedCrop,
    "shift_rotate": ShiftRotate,
    "trivialaugment": TrivialAugment,
    "randaugment": RandAugment,
    "autoaugment": AutoAugment,
}


class CsvLogger(Section):
    name: Literal["csv"]


class TensorBoardLogger(Section):
    name: Literal["tensorboard"]
    dir: str


LOGGER: dict[str, type[Section]] = {"csv": CsvLogger, "tensorboard": TensorBoardLogger}


class Arch(Section):
    name: str
    spec: str


class Model(Section):
    weights: str | None = None
    skip: list[str] = []


class Settings(BaseModel):
    """A whole training config, validated."""

    arch: Arch
    model: Model
    data: Section
    optim: Section
    sched: Section
    augment: Section
    logger: Section
    trainer: Trainer


# -- validation --------------------------------------------------------------------------------------------------


def validate(
    config: DictConfig,
    groups: tuple[str, ...] = ("arch", "model", "data", "optim", "sched", "augment", "logger", "trainer"),
) -> Settings:
    """The composed config's `groups`, checked; SettingsError says every problem, one line each."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for group in groups:
        try:
            missing = sorted(OmegaConf.missing_keys(config[group]))
            values = OmegaConf.to_container(config[group], resolve=True)
        except OmegaConfBaseException as error:
            problems.append(f"{group}: {str(error).splitlines()[0]}")
            continue
        if missing:
            problems += [f"{key}: missing; give it a value, e.g. {key}=..." for key in missing]  # full keys
            continue
        model, known = _model(group, values)
        if model is None:
            problems.append(known)
            continue
        try:
            sections[group] = model.model_validate(values)
        except ValidationError as error:
            problems += _lines(group, values, model, error)
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings.model_construct(**sections)


def validate_data(config: Any) -> Section:
    """A data config alone (as evaluate and predict read it), checked as `validate` checks a run's."""
    return validate(OmegaConf.create({"data": config}), ("data",)).data


def _model(group: str, values: Any) -> tuple[type[Section] | None, str]:
    """The model that describes `values`, or None and a line saying why there is none."""
    if not isinstance(values, dict):
        return None, f"{group}={_show(values)}: must be a mapping of {group} settings"
    choices: dict[Any, type[Section]]
    single = {"arch": Arch, "model": Model, "trainer": Trainer}
    if group in single:
        return single[group], ""
    key, choices = {
        "data": ("name", DATA),
        "optim": ("_target_", OPTIM),
        "sched": ("_target_", SCHED),
        "augment": ("name", AUGMENT),
        "logger": ("name", LOGGER),
    }[group]
    value = values.get(key)
    if value in choices:
        return choices[value], ""
    known = ", ".join("null" if c is None else str(c) for c in choices)
    return None, f"{group}.{key}={_show(value)}: not one of {known}{_did_you_mean(value, choices)}"


def _lines(group: str, values: dict, model: type[Section], error: ValidationError) -> list[str]:
    """One line per problem: `group.key=value: what is allowed`."""
    lines = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        path = [group, *(_alias(model, loc[0]), *loc[1:])] if loc else [group]
        key = ".".join(path)
        if problem["type"] == "extra_forbidden":
            fields = _fields(model)
            lines.append(f"{key}: unknown key{_did_you_mean(loc[-1], fields)} (known: {', '.join(fields)})")
        elif problem["type"] == "missing":
            lines.append(f"{key}: missing; give it a value, e.g. {key}=...")
        elif problem["type"] in ("model_type", "dict_type"):
            fields = ", ".join(_nested(model, loc).model_fields)
            lines.append(f"{key}={_show(problem['input'])}: must be a mapping of {fields}")
        elif loc:
            lines.append(f"{key}={_show(problem['input'])}: {_reason(problem)}")
        else:  # a rule across keys, which names them itself
            lines.append(_reason(problem))
    return lines


def _fields(model: type[Section]) -> list[str]:
    """The keys of `model` as a config writes them, its own before those every option of its group has."""

    def declared(name: str) -> int:  # how far up the class tree the key is declared
        return next(i for i, kind in enumerate(model.__mro__) if name in getattr(kind, "__annotations__", {}))

    names = sorted(model.model_fields, key=declared)
    return [model.model_fields[name].alias or name for name in names]


def _nested(model: type[BaseModel], loc: list[str]) -> type[BaseModel]:
    """The model of the mapping at `loc` inside `model`."""
    for name in loc:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    return model


def _alias(model: type[Section], name: str) -> str:
    field = model.model_fields.get(name)
    return field.alias if field is not None and field.alias else name


def _reason(problem: Any) -> str:
    """What is allowed, in a few words."""
    context = problem.get("ctx") or {}
    kind = problem["type"]
    phrases = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a word or path",
        "none_required": "must be null",
        "literal_error": "must be {expected}",
        "model_type": "must be a mapping",
        "dict_type": "must be a mapping",
        "list_type": "must be a list",
        "tuple_type": "must be a list",
        "too_short": "must have {min_length} items",
        "too_long": "must have {max_length} items",
    }
    if kind in phrases:
        return phrases[kind].format(**{k: _show(v) if not isinstance(v, str) else v for k, v in context.items()})
    return str(problem["msg"]).removeprefix("Value error, ")


def _show(value: Any) -> str:
    """A value as it would be written on the command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (bool, type(None), list, dict)) else str(value)


def _did_you_mean(value: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices if c is not None], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# -- Hydra -------------------------------------------------------------------------------------------------------


def arguments(config: Any, extras: tuple[str, ...]) -> dict[str, Any]:
    """An optim or sched config as the arguments of what it makes (its `_target_` kept): resolved, without
    cnnforge's own keys `extras`."""
    values = OmegaConf.to_container(config, resolve=True)
    assert isinstance(values, dict)
    return {key: value for key, value in values.items() if key not in extras}


def instantiate(config: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, allowed to build only the optimizers and schedulers declared here."""
    from hydra.utils import instantiate as hydra_instantiate

    if HYDRA_LINE >= (1, 4):
        kwargs["_execution_whitelist_"] = list(TARGETS)
    return hydra_instantiate(config, **kwargs)


def register_resolver(name: str, resolver: Any) -> None:
    """Make `${NAME:...}` call `resolver` in configs: OmegaConf 2.4 calls this register_resolver (the old name,
    register_new_resolver, warns), while 2.3's register_resolver is a deprecated older one."""
    if OmegaConf.has_resolver(name):
        return
    if OMEGACONF_LINE >= (2, 4):
        OmegaConf.register_resolver(name, resolver)
    else:
        OmegaConf.register_new_resolver(name, resolver)


def compose(overrides: list[str]) -> DictConfig:
    """The training config that `cnnforge train OVERRIDES` would run, composed without running the app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("cnnforge.conf", **VERSION_BASE):
        return hydra_compose("config", overrides=quote_paths(overrides))


PATH_KEYS = ("trainer.resume", "data.root", "hydra.run.dir", "hydra.sweep.dir")  # their values are paths


def quote_paths(overrides: list[str]) -> list[str]:
    """Overrides with a path value that Hydra's grammar would not read as written (a sweep's job folder such as
    `1_lr=0.01` holds '=', a folder may hold spaces) quoted for Hydra, so `trainer.resume=sweep/1_lr=0.01/last.pt`
    means that file. A value already quoted, or with a comma (a sweep over paths), is left as it is."""
    quoted = []
    for override in overrides:
        key, eq, value = override.partition("=")
        if eq and key.lstrip("+") in PATH_KEYS and value[:1] not in ("'", '"') and "," not in value:
            if "=" in value or any(c.isspace() for c in value) or "'" in value:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                override = f'{key}="{escaped}"'
        quoted.append(override)
    return quoted


def parse_overrides(overrides: list[str]) -> Iterator[tuple[str, Any]]:
    """KEY=VALUE command-line overrides as Hydra's grammar reads them (so `0.5` is a number, `false` a bool)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(quote_paths(overrides)):
        yield override.key_or_group, override.value()
