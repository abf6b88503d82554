"""One tracked Lightning fit, shared by the classifier and the detector: an MLflow run (resumed
from run.json when asked), model.json, best/last checkpoints, and the artifacts logged after."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from pipeline.devices import accelerator_device
from pipeline.epoch_tables import FOLDER as EPOCHS
from pipeline.epoch_tables import EpochTables
from pipeline.hardware import deterministic
from pipeline.io.atomic import atomic_write_json, partial_dir, resumable_dir
from pipeline.lr_finder import lr_finder
from pipeline.precision import resolve_precision, set_dense_precision
from pipeline.schema import LrFind
from pipeline.tasks import LAST, get_task, headline_metrics, monitor_mode
from pipeline.throughput import Throughput
from pipeline.tracking import (
    check_reachable,
    ensure_experiment,
    flat_params,
    log_dataset,
    metric_keys,
    redact,
    redacted,
    run_label,
    run_tags,
    tracking_uri,
    ui_address,
)
from pipeline.tracking_offline import JOURNAL, Journal, ResilientMLFlowLogger, guarded

BEST = Path("best.ckpt")  # the weights evaluation and export use: the best epoch by `monitor`, or the last
LAST_CHECKPOINT = Path("last.ckpt")  # the last epoch's full state: what a resume continues
MODEL_FILE = "model.json"  # what rebuilds the network: model config, classes, input size
PREPROCESS_FILE = "preprocess.json"  # the eval pipeline, so the folder alone runs on new images
RUN_FILE = "run.json"  # the MLflow run of this training (evaluation logs to it too)
RUNTIME_KEYS = ("logger.tags.", "logger.run_name", "logger.parent_run_id")  # set by a sweep: tags, not params


def open_logger(cfg: DictConfig, stage: str, manifest: Path, run_id: str | None,
                journal_dir: Path | None = None) -> ResilientMLFlowLogger:
    """The stage's MLflow run: ``run_id`` resumed, else a new one. A sweep sets (at run time, not
    in conf/) ``logger.parent_run_id`` to nest it, ``logger.run_name`` and ``logger.tags``. With
    ``journal_dir``, what cannot reach a server that went away is kept there (tracking_offline)."""
    uri, _ = ensure_experiment(cfg.logger)
    tags = None if run_id else redacted({**run_tags(stage, manifest, cfg.logger.parent_run_id), **cfg.logger.tags})
    logger = ResilientMLFlowLogger(experiment_name=cfg.logger.experiment, tracking_uri=uri,
                                   run_name=cfg.logger.run_name or run_label(cfg, stage), tags=tags, run_id=run_id)
    logger.journal_dir = journal_dir
    return logger


def previous_run_id(out_dir: Path) -> str | None:
    path = out_dir / RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def training_run_id(out_dir: Path) -> str | None:
    """The MLflow run of the training of ``out_dir``: finished, or interrupted (in its work folder)."""
    return previous_run_id(out_dir) or previous_run_id(partial_dir(out_dir))


class PortableCheckpointPaths(Callback):
    """Checkpoints hold ModelCheckpoint's paths as file names, not absolute paths: no user's folders
    in a file that is logged and shared, the same bytes wherever the project lies, and a resume in a
    folder that was renamed since (a training's work folder becomes its output)."""

    PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")

    @staticmethod
    def states(checkpoint: dict):
        return [(key, state) for key, state in checkpoint.get("callbacks", {}).items()
                if key.startswith("ModelCheckpoint")]

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        for _, state in self.states(checkpoint):
            state["dirpath"] = "."
            state.update({k: os.path.basename(state[k]) for k in self.PATHS if state.get(k)})
            state["best_k_models"] = {os.path.basename(p): v for p, v in state.get("best_k_models", {}).items()}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        folders = {c.state_key: c.dirpath for c in trainer.checkpoint_callbacks}
        for key, state in self.states(checkpoint):
            if state.get("dirpath") != "." or folders.get(key) is None:
                continue  # written before this callback, or a different checkpoint setting
            folder = state["dirpath"] = folders[key]
            state.update({k: os.path.join(folder, state[k]) for k in self.PATHS if state.get(k)})
            state["best_k_models"] = {os.path.join(folder, p): v for p, v in state.get("best_k_models", {}).items()}


@dataclass
class FitSpec:
    """One training's fit: its data and module, for how many epochs, what it watches and what its
    run records. A task's hook (:func:`fit`'s ``build``) fills the first six; the template adds the
    rest from `train.<task>`."""

    data: L.LightningDataModule
    module: L.LightningModule
    epochs: int
    model_info: dict            # model.json: what rebuilds the network (model settings, classes, input size)
    derived: dict               # params logged beside the config: what the data and `auto` decided
    pipelines: str              # the `augment` section whose saved pipelines it trains on ("": none)
    result: Callable[[], dict] = dict  # the task's own fields of the training's result, read after the fit
    monitor: str = "val_loss"   # the best checkpoint's metric (lowest for a loss, else highest)
    patience: int | None = None  # early stopping after this many epochs without a better ``monitor``
    lr_find: LrFind | None = None  # the learning-rate finder's settings (pipeline.lr_finder); None: none
    callbacks: Sequence[Callback] = ()  # the task's own (e.g. the detector's average of its weights)
    artifacts: Sequence[Path] = ()  # files logged to the run after the fit
    files: dict[str, Path] = field(default_factory=dict)  # {name: source} copied into the model folder


@dataclass
class TrackedRun:
    """Where a fit runs: the stage (its MLflow run's name), the model folder, the data it records;
    ``resume`` continues an interrupted fit; ``run_id``: a later phase of one training, logged to
    that (earlier phase's) run, its files under ``artifact_folder``."""

    stage: str
    out_dir: Path
    manifest: Path
    resume: bool = False
    callbacks: Sequence[Callback] = ()
    run_id: str | None = None
    artifact_folder: str | None = None

    def __post_init__(self):
        self.out_dir, self.manifest = Path(self.out_dir), Path(self.manifest)


def tracked_fit(cfg: DictConfig, spec: FitSpec, run: TrackedRun):
    """Fit ``spec.module`` on ``spec.data`` for ``spec.epochs`` in the MLflow run of ``run.stage``;
    writes ``run.out_dir``/{best,last}.ckpt (best by ``spec.monitor``; with ``last``, the last), model.json,
    run.json and the copies of ``spec.files``. The folder appears complete or not at all: the training works in
    ``.<out_dir>.partial``, which an interrupted run leaves for ``resume``; its MLflow run then ends
    KILLED (interrupted) or FAILED (an error). Returns (trainer, logger)."""
    module, data, out_dir, manifest, monitor = spec.module, spec.data, run.out_dir, run.manifest, spec.monitor
    resume, run_id = run.resume, run.run_id
    primary = rank_zero_only.rank == 0  # under DDP every rank runs this; the run and its files are rank zero's
    settings = trainer_settings(cfg, module)
    # what `auto` chose: precision, determinism, loader processes
    derived = {**spec.derived, "precision": settings.get("precision"),
               "dense_layers_precision": getattr(module, "dense_precision", None) or settings.get("precision"),
               "deterministic": settings.get("deterministic"),
               "num_workers": getattr(data, "num_workers", None)}
    check_reachable(tracking_uri(cfg.logger))  # before any folder is made
    if primary and not resume:
        end_abandoned_run(cfg, partial_dir(out_dir))
    with resumable_dir(out_dir, resume, primary) as work:
        ckpt = work / LAST_CHECKPOINT
        resuming = resume and ckpt.is_file()
        logger = open_logger(cfg, run.stage, manifest, previous_run_id(work) if resuming else run_id, journal_dir=work)
        logger.shown_dir = out_dir
        with ended_on_error(logger):
            if not resuming and run_id is None:
                logger.log_hyperparams({k: v for k, v in flat_params(cfg).items() if not k.startswith(RUNTIME_KEYS)})
                logger.log_hyperparams({f"derived.{k}": v for k, v in derived.items()})
                if primary:
                    log_dataset(logger.experiment, logger.run_id, cfg.data, manifest)
            if primary:
                atomic_write_json(work / RUN_FILE, {"run_id": logger.run_id, "experiment": cfg.logger.experiment})
                atomic_write_json(work / MODEL_FILE, spec.model_info)
                for name, source in spec.files.items():
                    shutil.copyfile(source, work / name)
            # monitor last: no metric picks an epoch; best.ckpt is last.ckpt, copied after the fit (a second
            # ModelCheckpoint without a monitor would share last's state key, which Lightning refuses)
            checkpoint = None if monitor == LAST else ModelCheckpoint(
                dirpath=work, filename=BEST.stem, monitor=monitor, mode=monitor_mode(monitor),
                auto_insert_metric_name=False, enable_version_counter=False)
            # every epoch's end: Lightning 2.6's save_last writes only when the best one improved
            last = ModelCheckpoint(dirpath=work, filename=LAST_CHECKPOINT.stem, enable_version_counter=False)
            finder = lr_finder(spec.lr_find, work) if spec.lr_find is not None else []
            # best first: last holds its state
            all_callbacks = [*([checkpoint] if checkpoint else []), last, PortableCheckpointPaths(),
                             EpochTables(work / EPOCHS), Throughput(), *spec.callbacks, *run.callbacks, *finder]
            if spec.patience:
                all_callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode(monitor), patience=spec.patience))
            trainer = L.Trainer(max_epochs=spec.epochs, logger=logger, callbacks=all_callbacks,
                                reload_dataloaders_every_n_epochs=1, default_root_dir=str(work),
                                num_sanity_val_steps=0, **settings)
            with system_metrics(cfg, logger, primary, resuming or run_id is not None):
                trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if resuming else None, weights_only=True)
            if trainer.is_global_zero:
                if checkpoint is None:
                    shutil.copyfile(work / LAST_CHECKPOINT, work / BEST)
                for path in [work / BEST, work / MODEL_FILE, *spec.artifacts]:
                    if Path(path).is_file():
                        logger.log_artifact(path, run.artifact_folder)
                if logger.offline:
                    atomic_write_json(work / RUN_FILE, {**json.loads((work / RUN_FILE).read_text()),
                                                        "fully_logged": False, "pending": JOURNAL})
                    print(f"warning: the MLflow run {logger.run_id} is not fully logged: the server went away during "
                          f"training; the model is kept, and what was not sent is in {out_dir / JOURNAL} "
                          f"(send it later: python -m pipeline.tracking_offline {out_dir})", file=sys.stderr)
                elif tracking_uri(cfg.logger).startswith(("http://", "https://")):
                    base = redact(tracking_uri(cfg.logger))  # no password on the screen
                    print(f"MLflow run: {ui_address(base, logger.experiment_id, logger.run_id)}")
    return trainer, logger


def fit(cfg: DictConfig, task: str, build: Callable[[DictConfig, Path, Path], FitSpec], pipelines_dir: str | Path,
        run: TrackedRun, preview: str | Path | None = None) -> dict:
    """The one training template: seed, the task's data and module (``build(cfg, manifest,
    pipelines_dir)``), its pipelines and preview as artifacts, :func:`tracked_fit` with the settings
    of `train.<task>`, the result. Writes to ``run.out_dir``: best.ckpt (by `train.<task>.monitor`),
    last.ckpt, model.json, preprocess.json (the eval pipeline), run.json."""
    pipelines_dir = Path(pipelines_dir)
    tc = get_task(task).step("settings").train.of(cfg.train[task])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    spec = build(cfg, run.manifest, pipelines_dir)
    train_pipeline, eval_pipeline = (pipelines_dir / f"{spec.pipelines}_{mode}.json" for mode in ("train", "eval"))
    artifacts = [train_pipeline, eval_pipeline] + ([Path(preview)] if preview and Path(preview).is_file() else [])
    spec = replace(spec, monitor=tc.monitor, patience=tc.early_stopping_patience, lr_find=tc.lr_find,
                   artifacts=artifacts, files={PREPROCESS_FILE: eval_pipeline})
    trainer, logger = tracked_fit(cfg, spec, run)
    return {"run_id": logger.run_id, "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "classes": spec.model_info["classes"], "epochs": trainer.current_epoch,
            "best": str(run.out_dir / BEST), **spec.result()}


@contextlib.contextmanager
def system_metrics(cfg: DictConfig, logger: MLFlowLogger, primary: bool, resumed: bool):
    """CPU, memory, disk, network (and GPU when pynvml finds one) logged to the run while the block
    runs, as MLflow's ``system/*`` metrics, every ``logger.system_metrics_seconds`` (0: off)."""
    seconds = cfg.logger.system_metrics_seconds
    if not primary or seconds <= 0:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(logger.run_id, sampling_interval=seconds, resume_logging=resumed,
                                   tracking_uri=tracking_uri(cfg.logger))
    first_step = getattr(monitor, "_logging_step", None)  # private: no public reader (below)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        # MLflow's monitor logs only after a whole interval: a training shorter than one would have no
        # system metrics at all. Log the samples it took (its step counter has no public reader).
        # Best effort, as MLflow's own monitor: a server gone drops them with a warning, never the training.
        taken = monitor.aggregate_metrics()
        if getattr(monitor, "_logging_step", None) == first_step and taken:
            try:
                monitor.publish_metrics(taken)
                monitor.mlflow_logger.flush()
            except Exception as exc:
                print(f"warning: the system metrics of MLflow run {logger.run_id} were not logged: {exc}",
                      file=sys.stderr)


def trainer_settings(cfg: DictConfig, module: L.LightningModule) -> dict:
    """Lightning Trainer arguments: the `trainer` section (its precision resolved for ``module``,
    pipeline.precision), with the display settings of `logger`."""
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    accelerator = str(settings.get("accelerator", "auto"))
    device = accelerator_device(accelerator)  # a GPU asked for where there is none: one line, before any work
    if "precision" in settings:
        requested = settings["precision"]
        settings["precision"] = resolve_precision(requested, accelerator, module)
        # the layers a network marks dense may run in bf16 where the rest trains in fp32 (pipeline.precision)
        module.dense_precision = set_dense_precision(requested, device, module)
    if "deterministic" in settings:
        settings["deterministic"] = deterministic(settings["deterministic"], device)
    return {**settings, "enable_progress_bar": cfg.logger.progress_bar,
            "log_every_n_steps": cfg.logger.log_every_n_steps}


@contextlib.contextmanager
def ended_on_error(logger: MLFlowLogger):
    """An exception ends the run FAILED, an interruption (Ctrl+C, SIGTERM) KILLED; never left RUNNING.
    (Lightning ends the run FAILED for both, from inside ``fit`` only.)"""
    try:
        yield
    except BaseException as exc:
        run_id = getattr(logger, "_run_id", None)  # not .run_id, which would start a run
        if rank_zero_only.rank == 0 and run_id is not None:
            logger.terminate("KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED")
        raise


def end_abandoned_run(cfg: DictConfig, work: Path) -> None:
    """A training killed outright (SIGKILL, power loss) left its run RUNNING; a new training in its
    place, which discards the work, ends that run KILLED."""
    run_id = previous_run_id(work)
    if run_id is None:
        return
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")
    except MlflowException:
        pass  # the run is gone, or in another store: nothing to end


def record_train_seconds(model_dir: str | Path, seconds: float) -> None:
    """Note in the training's run.json how long the train stage took (``train_seconds``, Python's
    start excluded; a resumed training counts the part after the resume). Rank zero only."""
    path = Path(model_dir) / RUN_FILE
    if rank_zero_only.rank == 0 and path.is_file():
        atomic_write_json(path, {**json.loads(path.read_text()), "train_seconds": round(seconds, 1)})


def train_seconds(model_dir: str | Path) -> float | None:
    """The seconds :func:`record_train_seconds` noted (None for a model trained outside the stage)."""
    path = Path(model_dir) / RUN_FILE
    return json.loads(path.read_text()).get("train_seconds") if path.is_file() else None


def log_headline(cfg: DictConfig, task, results: dict, model_dir: str | Path, pending_dir: str | Path) -> dict:
    """``task``'s headline of the evaluation ``results`` (pipeline.tasks.headline_metrics, with the
    training's seconds), logged to the training's MLflow run under the same keys as in
    metrics/<task>.json: the runs table opens on them (pipeline.tracking.runs_view)."""
    headline = headline_metrics(task, results, train_seconds(model_dir))
    log_to_run(cfg, model_dir, {k: v for k, v in headline.items() if v is not None}, [], "evaluation", pending_dir)
    return headline


def stamp_run_id(metrics_path: str | Path, model_dir: str | Path) -> str | None:
    """Add the training's MLflow run id to an evaluation's results file (``mlflow_run_id``), so that
    an experiment's reports/<model>.json leads to its run."""
    run_id = previous_run_id(Path(model_dir))
    if run_id is not None:
        metrics = json.loads(Path(metrics_path).read_text())
        atomic_write_json(metrics_path, {**metrics, "mlflow_run_id": run_id})
    return run_id


def log_to_run(cfg: DictConfig, model_dir: str | Path, metrics: dict[str, float], artifacts: list[Path],
               folder: str, pending_dir: str | Path, run_id: str | None = None) -> None:
    """Add metrics and artifacts (under ``folder``) to the MLflow run of the training in ``model_dir``
    (or to ``run_id``: an evaluation on another dataset has a run of its own). When the tracking
    server is gone, they are kept in ``pending_dir``'s journal (tracking_offline)."""
    from mlflow.entities import Metric

    run_id = run_id or json.loads((Path(model_dir) / RUN_FILE).read_text())["run_id"]
    uri = tracking_uri(cfg.logger)
    client = MlflowClient(tracking_uri=uri)
    journal = Journal(pending_dir)
    now = int(time.time() * 1000)
    keys = metric_keys(metrics)
    values = {keys[name]: float(value) for name, value in metrics.items()}
    sent = not values or guarded(uri, journal, run_id,
                                 lambda: client.log_batch(run_id, [Metric(k, v, now, 0) for k, v in values.items()]),
                                 "metrics", metrics=values, step=0, timestamp=now)
    for path in artifacts:
        if sent:
            sent = guarded(uri, journal, run_id, lambda p=path: client.log_artifact(run_id, str(p), folder),
                           "artifact", path=path, folder=folder)
        else:  # the server is gone: not asked again for each file
            journal.artifact(run_id, path, folder)
    if not sent:
        print(f"warning: MLflow run {run_id} did not receive this stage's results (its server is not answering); "
              f"they are kept in {journal.path} (send them later: python -m pipeline.tracking_offline {pending_dir})",
              file=sys.stderr)
