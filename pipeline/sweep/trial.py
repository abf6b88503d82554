"""One trial of a sweep: train and evaluate on the trial's composed config, return the objective.

The trial's MLflow run is the training run (params, per-epoch metrics, artifacts, evaluation),
nested under the sweep's parent run and tagged with the trial number and its overrides; the
objective is logged to it as the metric ``objective``. A trial that raises is recorded as a
FAILED run (with error.txt) and, with ``sweep.on_failure: continue``, returns NaN so that the
sweep goes on; a trial pruned by Optuna ends as a KILLED run tagged ``sweep.state=pruned``.
Every run is tagged ``sweep.state``: complete | failed | pruned (| interrupted, see parent.py).
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict

from pipeline.sweep.data import trial_data
from pipeline.sweep.parent import read_parent
from pipeline.sweep.runs import DIR_TAG, OVERRIDES_TAG, STATE_TAG, TRIAL_TAG
from pipeline.tasks import TASKS, get_task
from pipeline.tracking import PARENT_TAG, ensure_experiment, run_label
from pipeline.training import log_headline, training_run_id

log = logging.getLogger(__name__)



def objective(cfg: DictConfig, data: tuple, trial_dir: Path, callbacks: list) -> float:
    """Train ``sweep.task`` on the trial's config, evaluate it, return its validation objective."""
    task = get_task(cfg.sweep.task)
    manifest, pipelines, previews = data
    model = trial_dir / "model"
    task.step("train")(cfg, manifest, pipelines, model, callbacks=callbacks,
                       preview=previews / f"{task.augment}_preview.png")
    results = task.step("evaluate")(cfg, manifest, pipelines, model, trial_dir / "metrics.json",
                                    trial_dir / "reports", trial_dir / "tables")
    log_headline(cfg, task, results, model, trial_dir / "reports")  # the runs table's columns, as for a training
    return float(results["val"][cfg.sweep.objective])


def check_settings(sweep: DictConfig) -> None:
    sweepable = [name for name, task in TASKS.items() if task.objectives]
    if sweep.task not in sweepable:
        raise ValueError(f"sweep.task={sweep.task!r}: expected one of {', '.join(sweepable)}")
    objectives = get_task(sweep.task).objectives
    if sweep.objective not in objectives:
        raise ValueError(f"sweep.objective={sweep.objective!r} is not a {sweep.task} metric; "
                         f"choose one of {', '.join(objectives)} (validation split, higher is better)")


def trial_overrides(task_overrides) -> list[str]:
    """The overrides of the pipeline's config that define the trial: the sweep's own settings
    (``sweep``, ``sweep.*``, ``hydra.*``) left out, so that they can be fed back to `dvc exp run -S`."""
    keys = [o.lstrip("+~").split("=", 1)[0] for o in task_overrides]
    return [o for o, key in zip(task_overrides, keys)
            if key != "sweep" and not key.startswith(("sweep.", "hydra.", "hydra/"))]


def pruning_callbacks(cfg: DictConfig, hydra_cfg) -> list:
    """Optuna's Lightning callback when the Optuna sweeper launched this trial: it reports
    ``sweep.monitor`` every validation and stops the trial when the study's pruner says so."""
    spec = cfg.sweep.get("optuna")
    if not spec:
        return []
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    pruner_cfg = hydra_cfg.sweeper.get("pruner")
    pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=str(spec.study), storage=str(spec.storage), pruner=pruner)
    return [PyTorchLightningPruningCallback(optuna.trial.Trial(study, int(spec.trial_id)), cfg.sweep.monitor)]


def finish_run(cfg: DictConfig, model_dir: Path, run_name: str, tags: dict, status: str,
               objective: float | None = None, error: str | None = None) -> str:
    """Tag, score and close the trial's run; a trial that failed before its training opened a
    run gets a run of its own, so that every trial is in MLflow."""
    uri, experiment_id = ensure_experiment(cfg.logger)
    client = MlflowClient(tracking_uri=uri)
    run_id = training_run_id(model_dir)
    if run_id is None:
        parent = cfg.logger.get("parent_run_id")
        run_id = client.create_run(experiment_id, run_name=run_name,
                                   tags={PARENT_TAG: parent} if parent else None).info.run_id
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    if objective is not None:
        client.log_metric(run_id, "objective", objective)
    if error:
        client.log_text(run_id, error, "error.txt")
    client.set_terminated(run_id, status)
    return run_id


def run_trial(cfg: DictConfig):
    """Hydra task function of `sweep`: one trial; returns the objective (NaN if it failed, the
    optuna.TrialPruned exception if Optuna's pruner stopped it)."""
    import optuna

    hc = HydraConfig.get()
    if hc.mode.name != "MULTIRUN":
        raise SystemExit("sweep: add -m (Hydra's --multirun), e.g. `python -m pipeline.sweep -m sweep=classifier_grid`")
    trial_dir, number, sweep = Path(hc.runtime.output_dir), int(hc.job.num), cfg.sweep
    parent = read_parent(Path(hc.sweep.dir))
    if parent is None:
        log.warning(f"no MLflow sweep run in {hc.sweep.dir}: trial {number} is logged as a run of its own")
    run_name = f"{run_label(cfg, sweep.task)} · trial {number}"  # the parent run is the sweep
    overrides = trial_overrides(hc.overrides.task)
    tags = {TRIAL_TAG: str(number), OVERRIDES_TAG: json.dumps(overrides), DIR_TAG: str(trial_dir),
            "sweep.name": str(sweep.name)}
    with open_dict(cfg):
        cfg.logger.parent_run_id = parent["run_id"] if parent else None
        cfg.logger.run_name = run_name
        cfg.logger.tags = {**tags, STATE_TAG: "running"}
    try:
        check_settings(sweep)
        value = objective(cfg, trial_data(cfg, sweep.data_cache), trial_dir, pruning_callbacks(cfg, hc))
    except optuna.TrialPruned as pruned:  # returned, not raised: Hydra would log it as a job error
        finish_run(cfg, trial_dir / "model", run_name, {**tags, STATE_TAG: "pruned"}, "KILLED")
        log.info(f"trial {number} ({' '.join(overrides)}) pruned: {pruned}")
        return pruned
    except Exception:
        error = traceback.format_exc()
        finish_run(cfg, trial_dir / "model", run_name, {**tags, STATE_TAG: "failed"}, "FAILED", error=error)
        if sweep.on_failure == "raise":
            raise
        log.error(f"trial {number} ({' '.join(overrides)}) failed; the sweep goes on:\n{error}")
        return float("nan")
    finish_run(cfg, trial_dir / "model", run_name, {**tags, STATE_TAG: "complete"}, "FINISHED", value)
    log.info(f"trial {number} ({' '.join(overrides)}): val {sweep.objective} {value:.4f}")
    return value
