"""`cnnforge train`'s configuration: every config-group option composes, command-line overrides land, and
`arch=` finds its spec (a path, ./architectures/NAME.yaml, or a shipped spec)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from train_helpers import app_folder, cnnforge, train, write_spec

from cnnforge.train import archs, schedule
from cnnforge.train.app import CONF, register_archs
from cnnforge.train.data import LOADERS
from cnnforge.train.settings import OPTIM_EXTRAS, compose, validate

GROUPS = ("arch", "data", "optim", "sched", "augment", "trainer", "logger")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def composed(*overrides: str) -> DictConfig:
    return compose(list(overrides))


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    with app_folder(tmp_path):
        yield tmp_path


def test_every_group_has_options() -> None:
    assert {group for group, _ in OPTIONS} == set(GROUPS)
    defaults = OmegaConf.load(CONF / "config.yaml").defaults
    recipes = [path.stem for path in (CONF / "recipe").glob("*.yaml")]  # recipes set other groups' keys
    for entry in defaults:  # every default names an existing option
        if isinstance(entry, DictConfig):
            ((group, option),) = entry.items()
            assert (group, option) in OPTIONS or (group == "recipe" and option in recipes)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes(group: str, option: str) -> None:
    config = composed(f"{group}={option}")
    assert set(config) == {*GROUPS, "model"}  # model: where the weights start, in config.yaml itself
    chosen = OmegaConf.load(CONF / group / f"{option}.yaml")
    assert set(chosen.keys()) <= set(config[group].keys())  # the option's own keys land under its group


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_is_valid_as_shipped(group: str, option: str) -> None:
    """Every key of every option is declared in settings.py, with a type its shipped value has."""
    required = ["data.root=images"] if (group, option) == ("data", "imagefolder") else []  # root: ??? as shipped
    validate(composed(f"{group}={option}", *required))


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "arch"])
def test_arch_option_names_a_shipped_spec(option: str, tmp_path: Path) -> None:
    config = composed(f"arch={option}")
    assert archs.resolve(config.arch.spec, tmp_path) == archs.SHIPPED / f"{option}.yaml"
    assert config.arch.name == option


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "data"])
def test_data_option_names_a_loader(option: str) -> None:
    import cnnforge.train.vision  # noqa: F401  (registers the torchvision data sets)

    assert composed(f"data={option}").data.name in LOADERS


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2))


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "optim"])
def test_optim_option_instantiates(option: str) -> None:
    config = composed(f"optim={option}", "optim.lr=0.125")
    optimizer = schedule.optimizer(config, tiny_model())
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert type(optimizer).__name__ == config.optim._target_.rsplit(".", 1)[1]
    assert optimizer.param_groups[0]["lr"] == 0.125
    for key, value in config.optim.items():  # every setting reaches the optimizer (but the loss's and groups')
        if key not in ("_target_", "lr", *OPTIM_EXTRAS):
            found = optimizer.defaults[key]
            assert (list(found) if isinstance(found, tuple) else found) == value


@pytest.mark.parametrize("option", [o for g, o in OPTIONS if g == "sched"])
def test_sched_option_instantiates(option: str) -> None:
    milestones = ["sched.milestones=[2,4]"] if option == "multistep" else []
    config = composed(f"sched={option}", "trainer.epochs=7", *milestones)
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=1.0)
    scheduler = schedule.scheduler(config, optimizer, steps_per_epoch=1)
    if config.sched.get("_target_") is None:  # a constant learning rate: no scheduler
        assert scheduler is None
        return
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 1.0
    if option == "cosine":  # T_max follows trainer.epochs
        assert scheduler.T_max == 7


def test_command_line_overrides_land() -> None:
    config = composed("optim.lr=0.01", "trainer.epochs=3", "optim=adam", "sched=step", "sched.step_size=2")
    assert config.optim.lr == 0.01
    assert config.optim._target_ == "torch.optim.Adam"
    assert config.trainer.epochs == 3
    assert config.sched.step_size == 2
    assert composed().trainer.epochs != 3  # and the defaults are not changed by them


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    write_spec(tmp_path, "mine")
    result = cnnforge("train", "--cfg", "job", "arch=mine.yaml", "optim.lr=0.01", "trainer.epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = OmegaConf.create(result.stdout)
    assert config.optim.lr == 0.01
    assert config.trainer.epochs == 3
    assert config.arch == {"name": "mine", "spec": "mine.yaml"}
    assert config.data.name == "digits"
    assert not (tmp_path / "outputs").exists()  # printing the config runs nothing


# -- arch resolution ------------------------------------------------------------------------------------------


def test_resolve_shipped_name(tmp_path: Path) -> None:
    assert archs.resolve("lenet", tmp_path) == archs.SHIPPED / "lenet.yaml"
    assert set(archs.shipped()) >= {"lenet", "alexnet", "alexnet2012"}


def test_resolve_local_architectures_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "architectures").mkdir()
    local = write_spec(tmp_path / "architectures", "lenet")
    assert archs.resolve("lenet", tmp_path) == local
    assert archs.resolve("alexnet", tmp_path) == archs.SHIPPED / "alexnet.yaml"
    other = write_spec(tmp_path / "architectures", "mine")
    assert archs.resolve("mine", tmp_path) == other


def test_resolve_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write_spec(tmp_path / "sub", "net")
    assert archs.resolve("sub/net.yaml", tmp_path) == path
    assert archs.resolve(str(path), Path("/")) == path
    with pytest.raises(archs.ArchError, match=r"arch=sub/missing\.yaml: no such file"):
        archs.resolve("sub/missing.yaml", tmp_path)


def test_resolve_unknown_name_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(archs.ArchError) as error:
        archs.resolve("nosuchnet", tmp_path)
    message = str(error.value)
    assert "arch=nosuchnet" in message
    assert "./architectures/nosuchnet.yaml" in message
    for name in archs.shipped():
        assert name in message


def test_app_trains_the_local_spec_over_the_shipped_one(work: Path) -> None:
    (work / "architectures").mkdir()
    write_spec(work / "architectures", "lenet", name="locallenet")
    run = train("arch=lenet", "trainer.epochs=1")
    assert run.code == 0, run.output
    assert "locallenet" in (run.folder / "summary.txt").read_text()
    assert run.folder.name.endswith("_lenet")


def test_app_trains_a_path_whose_name_is_also_shipped(work: Path) -> None:
    # my/lenet.yaml is the user's file, not the shipped lenet that shares its name
    (work / "my").mkdir()
    write_spec(work / "my", "lenet", name="mylenet")
    run = train("arch=my/lenet.yaml", "trainer.epochs=1")
    assert run.code == 0, run.output
    assert "mylenet" in (run.folder / "summary.txt").read_text()
    assert run.folder.name.endswith("_lenet")


def test_register_archs_gives_each_path_its_own_option(tmp_path: Path) -> None:
    argv = register_archs(["trainer.epochs=1", "arch=a/net.yaml,b/net.yaml,lenet,mine", "+arch=c/lenet.yaml"])
    assert argv[0] == "trainer.epochs=1"
    options = argv[1].removeprefix("arch=").split(",")
    assert options[2:] == ["lenet", "mine"]
    assert len(set(options)) == 4
    specs = [composed(f"arch={option}").arch for option in options]
    assert [s.spec for s in specs] == ["a/net.yaml", "b/net.yaml", "lenet", "mine"]
    assert [s.name for s in specs] == ["net", "net", "lenet", "mine"]
    (option,) = register_archs(["arch=c/lenet.yaml"])
    assert composed(option).arch == {"name": "lenet", "spec": "c/lenet.yaml"}


def test_unknown_arch_exits_1_with_a_message(work: Path) -> None:
    run = train("arch=nosuchnet", "trainer.epochs=1")
    assert run.code == 1
    assert "arch=nosuchnet: no ./architectures/nosuchnet.yaml here and no shipped spec" in run.output
    assert "Traceback" not in run.output
    assert run.folders == []  # a run refused before it starts leaves no folder


SHIPPED = ", ".join(
    [
        "alexnet, alexnet2012, convnext_tiny, densenet121, efficientnet_b0, efficientnet_v2_s, googlenet",
        "inception_v3, lenet, mnasnet1_0, mobilenet_v2, mobilenet_v3_large, regnet_y_400mf, resnet18",
        "resnet50, resnext50_32x4d, shufflenet_v2_x1_0, squeezenet1_1, vgg16, vgg16_bn, wide_resnet50_2",
    ]
)


def test_train_help_lists_the_specs_in_architectures(tmp_path: Path) -> None:
    (tmp_path / "architectures").mkdir()
    write_spec(tmp_path / "architectures", "mynet")
    write_spec(tmp_path / "architectures", "lenet")  # a local spec by a shipped one's name: arch=lenet takes it
    (tmp_path / "architectures" / "notes.txt").write_text("not a spec")
    result = cnnforge("train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "== Specs (arch=NAME) ==",
        "shipped: " + SHIPPED,
        "in ./architectures/: lenet (before the shipped lenet), mynet",
        "or a path: arch=path/to/spec.yaml",
    ]
    # Hydra's own listing of the arch group
    assert "arch: " + ", ".join(sorted([*SHIPPED.split(", "), "mynet"])) in lines
    assert "== Config ==" in lines and "Use --hydra-help to view Hydra specific help" in lines  # its help, kept
    assert not (tmp_path / "outputs").exists()
    bare = cnnforge("train", "--help", cwd=tmp_path / "architectures")  # a folder without ./architectures/
    assert "in ./architectures/: none (put NAME.yaml there to train it with arch=NAME)" in bare.stdout.splitlines()
    assert "arch: " + SHIPPED in bare.stdout.splitlines()
