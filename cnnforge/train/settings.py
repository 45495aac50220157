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


# -- data --------------------------------------------------------------------------------------------------------


Normalize = Literal["auto", "data", "imagenet", "none"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # torchvision's pretrained weights'


class DataSection(Section):
    """What every data option has: its name (each option's own word) and how its inputs are normalised."""

    name: str
    normalize: Normalize = "auto"


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


class SGD(Section):
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


class Adam(Section):
    target: Literal["torch.optim.Adam", "torch.optim.AdamW"] = Field(alias="_target_")
    lr: Annotated[float, Field(gt=0)]
    betas: Annotated[list[Beta], Field(min_length=2, max_length=2)] = [0.9, 0.999]
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    amsgrad: bool = False


class NoSchedule(Section):
    target: None = Field(alias="_target_")


class StepLR(Section):
    target: Literal["torch.optim.lr_scheduler.StepLR"] = Field(alias="_target_")
    step_size: Positive
    gamma: Annotated[float, Field(gt=0)]


class CosineAnnealingLR(Section):
    target: Literal["torch.optim.lr_scheduler.CosineAnnealingLR"] = Field(alias="_target_")
    T_max: Positive  # torch's argument name
    eta_min: Annotated[float, Field(ge=0)]


OPTIM: dict[str, type[Section]] = {"torch.optim.SGD": SGD, "torch.optim.Adam": Adam, "torch.optim.AdamW": Adam}
SCHED: dict[str | None, type[Section]] = {
    None: NoSchedule,
    "torch.optim.lr_scheduler.StepLR": StepLR,
    "torch.optim.lr_scheduler.CosineAnnealingLR": CosineAnnealingLR,
}
TARGETS = tuple(t for t in (*OPTIM, *SCHED) if t)  # the execution whitelist: all that a config may instantiate


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
    trainer: Trainer


# -- validation --------------------------------------------------------------------------------------------------


def validate(
    config: DictConfig, groups: tuple[str, ...] = ("arch", "model", "data", "optim", "sched", "trainer")
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
    key, choices = {"data": ("name", DATA), "optim": ("_target_", OPTIM), "sched": ("_target_", SCHED)}[group]
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
            fields = [f.alias or name for name, f in model.model_fields.items()]
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
