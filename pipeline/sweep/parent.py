"""The sweep's MLflow parent run, opened and closed by a Hydra callback around the multirun.

Every trial's run is nested under it (MLflow's ``mlflow.parentRunId`` tag). Its id is kept in
``<sweep dir>/mlflow_parent.json`` so that trials launched elsewhere find it and a resumed sweep
(the Optuna presets keep one sweep folder per study) goes on in the same parent run. At the
end the parent gets the summary (pipeline.sweep.summary) and ends FINISHED, or FAILED with exit
status 1 when no trial completed; `sweep` ends it KILLED or FAILED when the sweep is interrupted
or raises.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from pipeline.io.atomic import atomic_write_json
from pipeline.sweep.runs import STATE_TAG, children
from pipeline.sweep.summary import summarise
from pipeline.tracking import ensure_experiment, flat_params, git_commit, redact

log = logging.getLogger(__name__)

PARENT_FILE = "mlflow_parent.json"
OPEN_PARENTS: list[dict] = []  # parents opened by this process, for `sweep` to close on interruption


def read_parent(sweep_dir: Path) -> dict | None:
    path = sweep_dir / PARENT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def close_stale_children(client: MlflowClient, parent: dict) -> None:
    """Trials still RUNNING when a sweep (re)starts were killed with their process: end them KILLED."""
    for run in children(client, parent):
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, STATE_TAG, "interrupted")
            client.set_terminated(run.info.run_id, "KILLED")


def open_parent(config: DictConfig) -> dict:
    sweep_dir = Path(str(config.hydra.sweep.dir))
    uri, experiment_id = ensure_experiment(config.logger)
    client = MlflowClient(tracking_uri=uri)
    parent = read_parent(sweep_dir)
    if parent is not None:
        client.update_run(parent["run_id"], status="RUNNING")
        close_stale_children(client, parent)
        log.info(f"MLflow: resuming sweep run {parent['run_id']}")
    else:
        sweeper = str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1]
        run = client.create_run(experiment_id, run_name=f"sweep-{config.sweep.name}",
                                tags={"sweep.role": "parent", "sweep.name": str(config.sweep.name),
                                      "sweep.sweeper": sweeper, "git_commit": git_commit(),
                                      "sweep.dir": redact(str(sweep_dir))})
        parent = {"run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": uri}
        space = config.hydra.sweeper.get("params")
        search = OmegaConf.to_container(space, resolve=True) if space else {}
        params = {**flat_params(config.sweep, "sweep"), **{f"search.{k}": str(v) for k, v in search.items()},
                  "sweep.overrides": " ".join(config.hydra.overrides.task)[:6000]}
        client.log_batch(parent["run_id"], params=[Param(k, str(v)) for k, v in params.items()])
        sweep_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(sweep_dir / PARENT_FILE, parent)
        log.info(f"MLflow: sweep run {parent['run_id']} in experiment {config.logger.experiment}")
    OPEN_PARENTS.append(parent)
    return parent


def end_open_parents(status: str) -> None:
    """End the parent runs this process left open (the sweep stopped early) as ``status``."""
    while OPEN_PARENTS:
        parent = OPEN_PARENTS.pop()
        client = MlflowClient(tracking_uri=parent["tracking_uri"])
        close_stale_children(client, parent)
        client.set_terminated(parent["run_id"], status)


class MlflowSweepCallback(Callback):
    """Hydra callback (conf/sweeps.yaml, hydra.callbacks): the parent run around a multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        open_parent(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent = OPEN_PARENTS[-1]  # popped once summarised: if that fails, `sweep` ends it FAILED
        client = MlflowClient(tracking_uri=parent["tracking_uri"])
        summary, complete = summarise(client, parent, Path(str(config.hydra.sweep.dir)))
        status = RunStatus.FINISHED if complete else RunStatus.FAILED
        client.set_terminated(parent["run_id"], RunStatus.to_string(status))
        OPEN_PARENTS.pop()
        log.info(summary)
        if not complete:  # nothing to choose from: the sweep failed, whatever Hydra's own status
            raise SystemExit(f"{summary}: no trial completed (a failed trial's run in MLflow holds its error.txt; "
                             f"a pruned one stopped below the pruner's bound; parent run {parent['run_id']})")
