"""`cnnforge train`: the Hydra app. Compiles the spec statically and checks it against the data before
anything is allocated, then trains, writing everything a run produces into its own folder under outputs/."""

from __future__ import annotations

import importlib.util
import logging
import re
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
from . import archs, augment, resume, sweep
from .settings import REPLACE, VERSION_BASE, quote_paths

if TYPE_CHECKING:
    from .distributed import Processes

log = logging.getLogger("cnnforge.train")
CONF = Path(__file__).resolve().parent.parent / "conf"
OTHERS_WAIT = 5.0  # seconds a process other than 0 waits before saying a problem that stops the run
CLASS_PARAMS = ("classes", "num_classes")  # a spec parameter by one of these names is bound to the data's classes
sweep.register_resolver()  # before Hydra names a sweep job's folder, in whichever process runs the job


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
    """One training run into `run_dir`; returns the best validation accuracy. Everything that can refuse the
    run is checked before the run folder gets a file of cnnforge's own."""
    import torch

    from ..builder import build
    from ..files import WriteError, replace
    from ..summary import as_table
    from .data import DataError
    from .loop import DeviceError, Interrupted, NonFiniteLoss, Trainer, pick_device
    from .settings import SettingsError, validate

    try:
        validate(config)
    except SettingsError as error:
        raise RunError(str(error)) from None
    if config.trainer.batch_size < procs.world:
        raise RunError(
            f"trainer.batch_size={config.trainer.batch_size} is the global batch, shared by {procs.world} "
            "processes: make it at least the number of processes"
        )
    resumed = resume.load(config) if config.trainer.resume else None
    if procs.main and (found := holds_run(run_dir, config.trainer.resume)):
        raise RunError(
            f"{run_dir}: this folder already holds a run ({found}); give a new hydra.run.dir (by default each "
            "run gets a folder of its own), or trainer.resume=<its checkpoint> to continue that run there"
        )
    if config.logger.name == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise RunError("logger=tensorboard needs the tensorboard package: pip install 'cnnforge[tensorboard]'")
    plan = prepare_run(config, data_config_file)
    if resumed is not None:
        resume.check_spec(resumed, plan.compiled, config)
    try:
        device = procs.device(pick_device(config.trainer.device))
    except DeviceError as error:
        raise RunError(f"trainer.device={error}") from None
    check_memory(plan.compiled, config, device)
    procs.start(device)
    compiled, data, prepare = plan.compiled, plan.data, plan.prepare
    for note in plan.notes:
        log.info(note)

    torch.manual_seed(config.trainer.seed)
    try:
        if line := normalise(prepare, config, data):
            log.info(line)
    except DataError as error:
        raise RunError(f"{data_config_file}: {error}") from None
    assert compiled.standalone is not None  # check_file, in prepare_run, sets it
    text, bindings = compiled.standalone
    meta = {
        "spec": {
            "name": compiled.spec.name,
            "file": compiled.file,
            "text": text,  # with the bindings, the spec without its file (for one that extends another, the other's)
            "bindings": bindings,
        },
        "config": OmegaConf.to_container(config, resolve=True),
        "data": {"name": data.name, "classes": data.classes},
        "prepare": prepare.state(),
    }
    model = build(compiled)
    if config.model.weights and resumed is None:
        for line in start_from(model, plan, config):
            log.info(line)
    if resumed is not None:
        for line in resume.check_weights(resumed, meta, model, config):
            log.info(line)
    try:
        trainer = Trainer(config, model, data, prepare, device, run_dir, meta, procs)
    except DataError as error:  # augmentation needs torchvision
        raise RunError(f"augment={config.augment.name}: {error}") from None
    if resumed is not None:
        trainer.restore(resumed)
        log.info(
            "resumed from %s at epoch %d, step %d",
            config.trainer.resume,
            trainer.progress.epoch + 1,
            trainer.progress.step,
        )
    summary = as_table(compiled)
    if procs.main:
        texts = {"summary.txt": summary + "\n", "config.yaml": OmegaConf.to_yaml(config, resolve=True)}
        try:
            for name, text in texts.items():
                replace(run_dir / name, lambda file, text=text: file.write(text.encode()))
            carried = resumed is not None and config.trainer.checkpoint.best
            if carried and (line := resume.carry_best(config, run_dir, resumed)):
                log.info(line)
        except WriteError as error:
            raise RunError(str(error)) from None
    log.info("run folder: %s", run_dir)
    log.info("model:\n%s", summary)
    where = str(device) if procs.world == 1 else f"{procs.world} processes ({device.type})"
    if line := augment.describe(trainer.augment, trainer.augment_in_loader):
        log.info(line)
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
        again = shlex.quote(f"trainer.resume={stop.path}")
        command = "cnnforge train" if procs.world == 1 else f"torchrun --nproc-per-node={procs.world} -m cnnforge train"
        log.warning("continue with: %s %s", command, " ".join([*_overrides(config), again]))
        raise SystemExit(128 + stop.signum) from None  # as the shell reports a process stopped by it
    log.info(
        "finished: %s; best validation accuracy %.4f; outputs in %s", epochs(trainer.progress.epoch), best, run_dir
    )
    return best


def normalise(prepare: Any, config: DictConfig, data: Any) -> str | None:
    """Set how `prepare` normalises samples, as data.normalize says; the line to tell the user, if any."""
    from .settings import IMAGENET_MEAN, IMAGENET_STD

    how = config.data.get("normalize", "auto")
    channels = prepare.target[0]
    if how == "auto" and config.model.weights and channels == 3:
        return _normalised(prepare, IMAGENET_MEAN, IMAGENET_STD, "ImageNet's, as pretrained weights expect")
    if how == "imagenet":
        if channels != 3:
            raise RunError(
                f"data.normalize=imagenet: ImageNet's mean and std are for 3 channels; the spec takes {channels}"
            )
        return _normalised(prepare, IMAGENET_MEAN, IMAGENET_STD, "ImageNet's (data.normalize=imagenet)")
    if how == "none":
        return _normalised(prepare, [0.0] * channels, [1.0] * channels, "none (data.normalize=none)")
    prepare.fit(data.train)  # data, or auto without weights
    return None


def _normalised(prepare: Any, mean: list[float], std: list[float], why: str) -> str:
    prepare.normalise_with(mean, std)
    return f"normalisation: {why}: mean {mean}, std {std}"


def start_from(model: Any, plan: Plan, config: DictConfig) -> list[str]:
    """Load model.weights into `model` (a file in another layout, torchvision's, mapped by position); the last
    layer starts afresh when the data's classes differ from the file's. Returns the lines that say what was done."""
    from ..weights import WeightsError, map_state, read_state

    path = config.model.weights
    last = [layer.path for layer in plan.compiled.layers if layer.params][-1]
    try:
        mapped = map_state(model.state_dict(), read_state(path), config.model.skip, last if plan.bindings else None)
    except WeightsError as error:
        raise RunError(f"model.weights={path}: {error}") from None
    model.load_state_dict(mapped.state)
    lines = [f"weights: {len(mapped.state) - len(mapped.fresh)} tensors from {path}"]
    if mapped.skipped:
        lines.append(f"weights: left out {len(mapped.skipped)} of the file's (model.skip): {', '.join(mapped.skipped)}")
    if mapped.fresh:
        classes = len(plan.data.classes)
        lines.append(
            f"weights: the last layer, {last}, starts afresh: the file's is for another class count, "
            f"{plan.data.name} has {classes} classes"
        )
    return lines


RUN_FILES = ("config.yaml", "summary.txt", "metrics.csv", "last.pt", "best.pt", "interrupted.pt")


def epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def holds_run(folder: Path, resume: str | None) -> str | None:
    """The first file in `folder` that a run writes (a run's or the user's own: either would be replaced), or
    None when there is none or when `resume` continues a run from a checkpoint in that folder."""
    if resume and Path(resume).resolve().parent == folder.resolve():
        return None
    return next((name for name in RUN_FILES if (folder / name).exists()), None)


def check_memory(compiled: Compiled, config: DictConfig, device: Any) -> None:
    """Refuse a network whose weights, gradients and optimizer state alone would not fit the device's memory."""
    import os

    import torch

    states = {"torch.optim.SGD": 1 if config.optim.get("momentum") else 0}.get(config.optim._target_, 2)
    states += 1 if config.trainer.get("ema") else 0  # the EMA's copy of the weights
    need = compiled.total_params * 4 * (2 + states)  # float32 weights, gradients, and per-weight optimizer state
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[1]
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise RunError(
            f"{compiled.file}: {compiled.total_params:,} parameters need {need / 2**30:,.1f} GiB for their weights, "
            f"gradients and {config.optim._target_} state alone, more than this {device.type} device's "
            f"{have / 2**30:,.1f} GiB (see cnnforge summary {compiled.file})"
        )


def remove_unstarted(run_dir: Path) -> None:
    """Remove what Hydra wrote for a run refused before it started (its .hydra/ and train.log), and the
    folder when that leaves it empty, so nothing is left that looks like a run."""
    if holds_run(run_dir, None):
        return
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run_dir / ".hydra" / name).unlink(missing_ok=True)
    (run_dir / "train.log").unlink(missing_ok=True)
    for folder in (run_dir / ".hydra", run_dir, run_dir.parent):
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break
        if folder == run_dir and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", run_dir.parent.name):
            break  # a date folder of outputs/ goes when it is empty; a folder of the user's stays


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


@hydra.main(config_path="../conf", config_name="config", **VERSION_BASE)
def train(config: DictConfig) -> float:
    from hydra.types import RunMode

    from .distributed import LaunchError, processes

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    data_file = str(CONF / "data" / f"{hydra_config.runtime.choices.get('data')}.yaml")
    job = None
    if hydra_config.mode == RunMode.MULTIRUN:
        job = sweep.Job(Path(hydra_config.sweep.dir), hydra_config.job.num, run_dir, _overrides(config))
    rank = 0
    try:
        procs = processes()
        rank = procs.rank
        if rank:
            logging.getLogger().setLevel(logging.ERROR)  # process 0 tells the story
        best = run(config, run_dir, data_file, procs)
    except (RunError, LaunchError, resume.ResumeError) as error:
        if rank:  # most problems are every process's: process 0 says them, and torchrun then stops this one
            time.sleep(OTHERS_WAIT)
        for line in str(error).splitlines():
            log.error(f"process {rank}: {line}" if rank else line)
        if not rank:
            remove_unstarted(run_dir)
            _record(job, str(error))
        raise SystemExit(1) from None
    except SystemExit as stop:  # stopped by a signal (run() has said how to continue)
        if not rank:
            _record(job, f"stopped (exit status {stop.code})")
        raise
    except Exception as error:
        if not rank:
            _record(job, f"{type(error).__name__}: {error}")
        raise
    if not rank and not _record(job, None, best):
        raise SystemExit(1)
    return best


def _record(job: sweep.Job | None, error: str | None, best: float | None = None) -> bool:
    """Record a sweep job's end in its sweep.csv (nothing outside a sweep); False, said, when it cannot be."""
    from ..files import WriteError

    if job is None:
        return True
    try:
        job.finished(error, best)
    except WriteError as problem:
        log.error(str(problem))
        return False
    return True


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
            store.store(group="arch", name=name, node={"name": stem, "spec": choice}, **REPLACE)
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
    sweeping = "-m" in argv or "--multirun" in argv
    if problem := _reused_folder(argv, sweeping):
        print(problem, file=sys.stderr)
        return 1
    if "hydra/sweeper=optuna" in argv:
        if problem := _optuna():
            print(f"hydra/sweeper=optuna: {problem}", file=sys.stderr)
            return 2
        if not any(arg.startswith("hydra.sweeper.direction=") for arg in argv):
            argv = [*argv, "hydra.sweeper.direction=maximize"]  # the app returns the best validation accuracy
        _optuna_sampler_made()
    argv = quote_paths(argv)
    if "--help" in argv or "-h" in argv:  # the specs arch= can name here, then Hydra's own help
        print(archs.listing())
        register_archs([f"arch={name}" for name in archs.local()])  # listed in Hydra's arch group too
    sys.argv = ["cnnforge train", *register_archs(argv), *extra, *(sweep.exclude_unswept(argv) if sweeping else [])]
    train()
    return 0


def _optuna() -> str | None:
    """Why Hydra's Optuna sweeper cannot run here, or None when it can."""
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        return "needs Hydra's Optuna sweeper, in the sweep extra: pip install 'cnnforge[sweep]'"
    return None


def _optuna_sampler_made() -> None:
    """Hydra 1.4 makes a sweeper without making the objects its config describes (_recursive_=False), and
    hydra-optuna-sweeper 1.3 takes its sampler as made: under Hydra 1.4 the sampler is made from its config here,
    as Hydra 1.3 made it, allowing only Optuna's samplers."""
    from hydra.utils import instantiate
    from omegaconf import DictConfig

    from .settings import HYDRA_LINE

    if HYDRA_LINE < (1, 4):
        return
    from hydra_plugins.hydra_optuna_sweeper import _impl

    made = _impl.OptunaSweeperImpl.__init__
    if getattr(made, "makes_sampler", False):
        return

    def init(self: Any, sampler: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(sampler, DictConfig) and "_target_" in sampler:
            sampler = instantiate(sampler, _execution_whitelist_=["optuna.samplers.*"])
        made(self, sampler, *args, **kwargs)

    init.makes_sampler = True  # type: ignore[attr-defined]
    _impl.OptunaSweeperImpl.__init__ = init


def _reused_folder(argv: list[str], sweeping: bool) -> str | None:
    """A run or sweep folder given on the command line that already holds a run, said before Hydra writes
    its own files there. (Folders named with interpolations are checked by `run` once they are known.)"""
    options = dict(arg.partition("=")[::2] for arg in argv if "=" in arg)
    key = "hydra.sweep.dir" if sweeping else "hydra.run.dir"
    folder = options.get(key)
    if not folder or "${" in folder:
        return None
    found = "multirun.yaml" if sweeping and (Path(folder) / "multirun.yaml").exists() else None
    found = found or holds_run(Path(folder), None if sweeping else options.get("trainer.resume"))
    found = found or (None if sweeping or options.get("trainer.resume") else _exists(Path(folder) / ".hydra"))
    if not found:
        return None
    return (
        f"{key}={folder}: this folder already holds a run ({found}); give a new folder (by default each run gets "
        "one of its own), or trainer.resume=<its checkpoint> to continue that run there"
    )


def _exists(path: Path) -> str | None:
    return path.name if path.exists() else None
