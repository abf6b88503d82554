"""Loading the project's configuration: params.yaml (what DVC tracks) or conf/ via Hydra, checked
against the schema (pipeline/schema.py) and the task registry before any work starts."""

from __future__ import annotations

import copy
import difflib
import functools
import re
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from pipeline.augment.input_size import check_input_size
from pipeline.data.sources import get_source
from pipeline.hardware import check_loading, check_trainer
from pipeline.io.workspace import claim_for_dvc_stage
from pipeline.schema import ConfigError, validate
from pipeline.tasks import LAST, TASKS, resolve

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"


def load_params(path: str | Path = "params.yaml") -> DictConfig:
    """params.yaml, validated: an unknown or missing key, a wrong type or models that the data cannot
    train raise :class:`pipeline.schema.ConfigError` naming the key and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found; run from the project root or "
                                "create it with `python stages/sync_params.py`")
    cfg = validate(OmegaConf.load(path), str(path))
    check_models(cfg, str(path))
    check_values(cfg, lambda key: str(path))
    claim_for_dvc_stage(path)  # one pipeline run per workspace (pipeline/io/workspace.py)
    return cfg


def data_kind(data_format: str) -> str:
    return get_source(data_format).TASK


def check_models(cfg, source: str = "params.yaml") -> None:
    """Refuse, in one line, a model list the data cannot train (a detector on image folders) or a
    training monitor its task does not log."""
    for task in TASKS.values():
        chosen = cfg.train[task.name].monitor
        if chosen not in (*task.monitors, LAST):
            raise ValueError(f"{source}: train.{task.name}.monitor: {chosen!r} is not a metric the {task.name} "
                             f"logs every epoch; choose one of {', '.join(task.monitors)}, or {LAST}")
        if chosen == LAST and cfg.train[task.name].early_stopping_patience is not None:
            raise ValueError(f"{source}: train.{task.name}.early_stopping_patience needs a metric to watch, and "
                             f"monitor is {LAST}; set monitor to one of {', '.join(task.monitors)}, or the "
                             f"patience to null")
    kind = data_kind(cfg.data.format)
    for name in cfg.data.models:
        if name not in TASKS:
            close = difflib.get_close_matches(name, TASKS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"{source}: data.models names {name!r}, which is not a task; {hint}"
                             f"choose from {', '.join(TASKS)}")
        if kind not in TASKS[name].data:
            fits = [t for t in cfg.data.models if kind in TASKS[t].data]
            raise ValueError(f"{source}: data.models has {name!r}, which needs {' or '.join(TASKS[name].data)} "
                             f"data, but data.format={cfg.data.format} is {kind} data; train only what fits "
                             f"with -S 'data.models=[{','.join(fits)}]'")


# Keys that take a value or `auto` (typed Any in the schema), checked before any work starts.
def check_root(data: DictConfig) -> None:
    """``~`` is the shell's: DVC takes ``data.root=~/images`` (a stage's dependency) as a folder named
    ``~`` in the project, so it is refused here too rather than meaning something else by hand."""
    if str(data.root).startswith("~"):
        raise ValueError(f"data.root: {data.root!r} starts with '~', which DVC and Hydra do not expand; give the "
                         f"folder's full path, e.g. data.root={Path(str(data.root)).expanduser()}")


VALUE_CHECKS = (*((f"augment.{section}.input_size",
                  lambda cfg, section=section: check_input_size(cfg.augment[section], section))
                 for section in sorted({task.augment for task in TASKS.values()})),
                ("trainer.deterministic", lambda cfg: check_trainer(cfg.trainer)),
                ("data.root", lambda cfg: check_root(cfg.data)))


def value_checks(cfg: DictConfig):
    yield from VALUE_CHECKS
    for task in TASKS.values():  # the tasks' own (pipeline/tasks.py `checks`)
        for key, reference in task.checks:
            yield key, lambda cfg, reference=reference: resolve(reference)(cfg)
    for name in cfg.train:  # every training's schedule and loader settings
        yield f"train.{name}.epochs", lambda cfg, name=name: check_schedule(cfg.train[name], f"train.{name}")
        yield f"train.{name}.num_workers", lambda cfg, name=name: check_loading(cfg.train[name], f"train.{name}")


def check_schedule(section: DictConfig, key: str) -> None:
    """Counts that must be positive: epochs (or auto where a training has it) and batch sizes; a
    frozen phase of 0 or more epochs. (A negative count would train for ever, 0 would train nothing.)"""
    if isinstance(section.epochs, int) and section.epochs < 1:
        raise ValueError(f"{key}.epochs: {section.epochs} is not a number of epochs to train; give 1 or more")
    if section.freeze_epochs < 0:
        raise ValueError(f"{key}.freeze_epochs: {section.freeze_epochs} is below 0; give 0 (no frozen phase) or more")
    for sub, inner in (("", section), (".dense", section.get("dense"))):
        if inner is not None and inner.batch_size < 1:
            raise ValueError(f"{key}{sub}.batch_size: {inner.batch_size} is not a batch; give 1 or more")


def check_values(cfg: DictConfig, where) -> None:
    """``where(key)``: the file that sets ``key``, for the message."""
    for key, check in value_checks(cfg):
        try:
            check(cfg)
        except ValueError as exc:
            raise ConfigError(f"{where(key)}: {exc}") from None


def compose(overrides: Sequence[str] = (), config_dir: str | Path = CONF_DIR) -> DictConfig:
    """Compose conf/ with Hydra overrides and resolve interpolations, as `dvc exp run -S` does;
    validated like :func:`load_params`, with errors naming the conf/ file of the key.

    Composing (Hydra's defaults tree, then the schema and value checks) takes about a quarter of a
    second on 2 cores, and the result depends on the overrides and conf/'s files alone: a process that
    composes the same overrides again (the trials of a sweep, a test session) gets a copy of its first
    result, until a file under conf/ changes."""
    config_dir = Path(config_dir).resolve()
    return copy.deepcopy(composed(str(config_dir), tuple(overrides), conf_files(config_dir)))


def conf_files(config_dir: Path) -> tuple:
    """Each YAML file under ``config_dir`` with its modification time and size: what a composition read."""
    return tuple(sorted((str(path), stat.st_mtime_ns, stat.st_size)
                        for path in config_dir.rglob("*.yaml") for stat in (path.stat(),)))


@functools.lru_cache(maxsize=64)
def composed(config_dir: str, overrides: tuple[str, ...], files: tuple) -> DictConfig:
    """:func:`compose`'s work; ``files`` (:func:`conf_files`) keys the cache, so an edited file composes anew.
    Callers get copies: the cached config is never handed out."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir, version_base=None):
        cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    choices = {group: choice for group, choice in cfg.hydra.runtime.choices.items() if not group.startswith("hydra/")}
    with open_dict(cfg):
        del cfg["hydra"]
    OmegaConf.resolve(cfg)
    config_dir = Path(config_dir)
    source = f"{display(config_dir)} (with {' '.join(overrides)})" if overrides else display(config_dir)
    locate = lambda key: conf_file(key, choices, config_dir)  # noqa: E731
    cfg = validate(cfg, source, locate=locate)
    check_models(cfg, source)
    check_values(cfg, lambda key: locate(key) or source)
    return cfg


def open_dict(cfg: DictConfig):
    from omegaconf import open_dict as omegaconf_open_dict

    return omegaconf_open_dict(cfg)


def conf_file(key: str, choices: dict[str, str], config_dir: Path) -> str:
    """The conf/ file that sets ``key``: the chosen option of the config group whose package holds
    it (the option itself, or one of the files it builds on that names the key), else config.yaml."""
    best, best_len = config_dir / "config.yaml", -1
    for group, choice in choices.items():
        name, _, package = group.partition("@")
        package = package or name.replace("/", ".")
        if (key == package or key.startswith(package + ".")) and len(package) > best_len and choice:
            best, best_len = config_dir / name / f"{choice}.yaml", len(package)
            leaf = key.rsplit(".", 1)[-1]
            setting = re.compile(rf"^\s*{re.escape(leaf)}\s*:", re.M)
            if best.is_file() and not setting.search(best.read_text()):
                for base in sorted((config_dir / name).glob("_*.yaml")):  # shared bases (_base, _common)
                    if setting.search(base.read_text()):
                        best = base
                        break
    return display(best)


def display(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)
