"""`cnnforge train`: the Hydra app. Compiles the spec statically and checks it against the data before
anything is allocated, then trains, writing everything a run produces into its own folder under outputs/."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..compiler import Compiled, check_file
from . import archs

if TYPE_CHECKING:
    from .distributed import Processes

log = logging.getLogger("cnnforge.train")
CONF = Path(__file__).resolve().parent.parent / "conf"
OTHERS_WAIT = 5.0  # seconds a process other than 0 waits before saying a problem that stops the run
CLASS_PARAMS = ("classes", "num_classes")  # a spec parameter by one of these names is bound to the data's classes


class RunError(Exception):
    """A problem that stops a run before training: said in a few lines, never as a traceback."""


@dataclass
class Plan:
    """What a run will train: the compiled spec (its parameters bound), the data, and how batches are
    prepared; `notes` are the lines to tell the user before training."""

    compiled: Compiled
    bindings: dict[str, Any]
    data: Any
    prepare: Any
    notes: list[str]


def prepare_run(config: DictConfig, data_config_file: str) -> Plan:
    """Resolve and compile the spec, load the data and reconcile the two; allocate no model yet."""
    from .data import DataError, Prepare, load

    try:
        spec_path = archs.resolve(config.arch.spec)
    except archs.ArchError as error:
        raise RunError(str(error)) from None
    compiled = check_file(spec_path)
    if not compiled.ok:
        raise RunError("\n".join(str(d) for d in compiled.diagnostics))
    try:
        data = load(config.data, tuple(compiled.spec.input))
    except DataError as error:
        raise RunError(f"{data_config_file}: {error}") from None
    notes = list(data.notes)
    classes = len(data.classes)
    declared = compiled.spec.params or {}
    bound = next((name for name in CLASS_PARAMS if name in declared), None)
    bindings = {bound: classes} if bound else {}
    if bound:
        compiled = check_file(spec_path, bindings)
        if not compiled.ok:
            raise RunError("\n".join(str(d) for d in compiled.diagnostics))
        notes.append(f"{spec_path.name}: parameter {bound} bound to {classes} ({data.name} has {classes} classes)")
    if compiled.output != (classes,):
        hint = (
            f"make the last layer give {classes} features, or declare `params: {{classes: {classes}}}` and "
            "use '${classes}' there so cnnforge binds it to the data"
        )
        raise RunError(
            f"{spec_path}: the network's output is {list(compiled.output)} but {data_config_file} "
            f"({data.name}) has {classes} classes; {hint}"
        )
    try:
        prepare = Prepare(data.shape, tuple(compiled.spec.input), data.scale)
    except DataError as error:
        raise RunError(f"{spec_path} and {data_config_file}: {error}") from None
    if line := prepare.describe():
        notes.append(f"{data.name}: {line}")
    notes += [str(warning) for warning in compiled.diagnostics]
    return Plan(compiled, bindings, data, prepare, notes)


def run(config: DictConfig, run_dir: Path, data_config_file: str, procs: Processes) -> float:
    """One training run into `run_dir`; returns the best validation accuracy."""
    import torch

    from ..builder import build
    from ..files import WriteError
    from ..summary import as_table
    from .checkpoint import CheckpointError, load
    from .data import DataError
    from .loop import DeviceError, Interrupted, NonFiniteLoss, Trainer, check_settings, pick_device

    if problems := check_settings(config.trainer):
        raise RunError("\n".join(problems))
    if config.trainer.batch_size < procs.world:
        raise RunError(
            f"trainer.batch_size={config.trainer.batch_size} is the global batch, shared by {procs.world} "
            "processes: make it at least the number of processes"
        )
    plan = prepare_run(config, data_config_file)
    try:
        device = procs.device(pick_device(config.trainer.device))
    except DeviceError as error:
        raise RunError(f"trainer.device={error}") from None
    procs.start(device)
    compiled, data, prepare = plan.compiled, plan.data, plan.prepare
    for note in plan.notes:
        log.info(note)
    summary = as_table(compiled)
    if procs.main:
        (run_dir / "summary.txt").write_text(summary + "\n")
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))
    log.info("run folder: %s", run_dir)
    log.info("model:\n%s", summary)

    torch.manual_seed(config.trainer.seed)
    try:
        prepare.fit(data.train)
    except DataError as error:
        raise RunError(f"{data_config_file}: {error}") from None
    spec_file = Path(compiled.file)
    meta = {
        "spec": {
            "name": compiled.spec.name,
            "file": str(spec_file),
            "text": spec_file.read_text(),
            "bindings": plan.bindings,
        },
        "config": OmegaConf.to_container(config, resolve=True),
        "data": {"name": data.name, "classes": data.classes},
        "prepare": prepare.state(),
    }
    trainer = Trainer(config, build(compiled), data, prepare, device, run_dir, meta, procs)
    if config.trainer.resume:
        try:
            trainer.restore(load(config.trainer.resume))
        except CheckpointError as error:
            raise RunError(str(error)) from None
        except (RuntimeError, KeyError, ValueError) as error:
            raise RunError(f"{config.trainer.resume}: does not fit this run's model or optimizer ({error})") from None
        log.info(
            "resumed from %s at epoch %d, step %d",
            config.trainer.resume,
            trainer.progress.epoch + 1,
            trainer.progress.step,
        )
    where = str(device) if procs.world == 1 else f"{procs.world} processes ({device.type})"
    log.info(
        "training on %s, precision %s, batch %d: %d train / %d validation samples",
        where,
        config.trainer.precision,
        config.trainer.batch_size,
        len(data.train),
        len(data.val),
    )
    try:
        best = trainer.fit()
    except (NonFiniteLoss, DataError, WriteError) as error:
        raise RunError(str(error)) from None
    except KeyboardInterrupt:
        log.warning("stopped at once by a second Ctrl-C; the last complete epoch's checkpoint is last.pt")
        raise SystemExit(130) from None
    except Interrupted as stop:
        log.warning("stopped at epoch %d, step %d; saved %s", stop.epoch + 1, stop.step, stop.path)
        resume = shlex.quote(f"trainer.resume={stop.path}")
        command = "cnnforge train" if procs.world == 1 else f"torchrun --nproc-per-node={procs.world} -m cnnforge train"
        log.warning("continue with: %s %s", command, " ".join([*_overrides(config), resume]))
        raise SystemExit(128 + stop.signum) from None  # as the shell reports a process stopped by it
    log.info("best validation accuracy %.4f; outputs in %s", best, run_dir)
    return best


def _overrides(config: DictConfig) -> list[str]:
    """This run's command-line overrides, quoted for a shell, with `arch=` as the user wrote it (register_archs
    turned a path into an option name)."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return []
    result = []
    for override in overrides:
        key, _, _ = override.partition("=")
        if key == "trainer.resume":
            continue
        if key.lstrip("+") == "arch":
            override = f"{key}={config.arch.spec}"
        result.append(shlex.quote(override))
    return result


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def train(config: DictConfig) -> float:
    from .distributed import LaunchError, processes

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    data_file = str(CONF / "data" / f"{hydra_config.runtime.choices.get('data')}.yaml")
    rank = 0
    try:
        procs = processes()
        rank = procs.rank
        if rank:
            logging.getLogger().setLevel(logging.ERROR)  # process 0 tells the story
        return run(config, run_dir, data_file, procs)
    except (RunError, LaunchError) as error:
        if rank:  # most problems are every process's: process 0 says them, and torchrun then stops this one
            time.sleep(OTHERS_WAIT)
        for line in str(error).splitlines():
            log.error(f"process {rank}: {line}" if rank else line)
        raise SystemExit(1) from None


def register_archs(argv: list[str]) -> list[str]:
    """Make every `arch=` value a Hydra option: ./architectures/*.yaml names and paths to spec files
    become options of the `arch` group. Returns argv with paths replaced by their option names.

    A packaged option outranks a stored one of the same name, and two paths may share a file name, so each
    value gets an option name of its own (`lenet_2` for my/lenet.yaml); `arch.name` stays the file's stem."""
    store = ConfigStore.instance()
    packaged = {p.stem for p in (CONF / "arch").glob("*.yaml")}
    taken: dict[str, str] = {}  # option name -> the arch= value it stands for
    result = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if key.lstrip("+") != "arch" or not eq or "(" in value:
            result.append(arg)
            continue
        names = []
        for choice in value.split(","):
            if choice in packaged:
                names.append(choice)
                continue
            stem = name = archs.option_name(choice)
            number = 1
            while name in packaged or taken.get(name, choice) != choice:
                number += 1
                name = f"{stem}_{number}"
            taken[name] = choice
            store.store(group="arch", name=name, node={"name": stem, "spec": choice})
            names.append(name)
        result.append(f"{key}={','.join(names)}")
    return result


def main(argv: list[str]) -> int:
    """Run the Hydra app with `argv` as its command line (`cnnforge train ARGS...`)."""
    from .distributed import LaunchError, hydra_overrides, processes

    try:
        extra = hydra_overrides(processes())
    except LaunchError:
        extra = []
    sys.argv = ["cnnforge train", *register_archs(argv), *extra]
    train()
    return 0
