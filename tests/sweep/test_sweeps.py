"""Sweeps end to end (`python -m pipeline.sweep -m ...` in a subprocess, tiny synthetic config):
a grid with Hydra's basic sweeper and an Optuna study killed mid-way and resumed, both logged
to MLflow as a parent run with one child run per trial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.io.atomic import partial_dir
from pipeline.sweep.optuna_search import INTERRUPTED, RETRY_OF
from pipeline.sweep.parent import read_parent
from pipeline.sweep.runs import children
from tests.conftest import PROJECT_ROOT, empty_store

pytestmark = pytest.mark.slow

TINY = ["data=synthetic_tiny", "model/classifier=small_alexnet", "train.classifier.batch_size=16",
        "logger.progress_bar=false"]


def sweep_command(tmp_path: Path, data_cache: Path, *args: str) -> list[str]:
    empty_store(tmp_path / "mlruns/mlflow.db")
    return [sys.executable, "-m", "pipeline.sweep", "-m", *args, *TINY,
            f"logger.local_store={tmp_path / 'mlruns/mlflow.db'}",
            f"logger.artifact_root={tmp_path / 'mlruns/artifacts'}", f"sweep.data_cache={data_cache}"]


def run(command: list[str], timeout: int = 3600, status: int = 0) -> str:  # a net against a hang, not a speed check
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == status, f"{' '.join(command)}\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return done.stdout + done.stderr


def client_for(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")


def test_grid_sweep_is_a_parent_run_with_a_child_per_trial_and_goes_on_after_a_failed_trial(tmp_path, sweep_data_cache):
    sweep_dir = tmp_path / "grid"
    run(sweep_command(tmp_path, sweep_data_cache, "sweep=classifier", "train.classifier.epochs=2",
                      "train.classifier.lr=0.001,-1,0.01", f"hydra.sweep.dir={sweep_dir}"))
    client, parent = client_for(tmp_path), read_parent(sweep_dir)
    top = client.get_run(parent["run_id"])
    assert top.info.status == "FINISHED" and top.data.tags["sweep.sweeper"] == "BasicSweeper"
    assert top.data.metrics["trials_complete"] == 2 and top.data.metrics["trials_failed"] == 1
    runs = {r.data.tags["sweep.trial"]: r for r in children(client, parent)}
    assert sorted(runs) == ["0", "1", "2"]
    failed = runs["1"]  # the trial after it ran all the same
    assert failed.info.status == "FAILED" and failed.data.tags["sweep.state"] == "failed"
    error = client.download_artifacts(failed.info.run_id, "error.txt", str(tmp_path))
    assert "Invalid learning rate" in Path(error).read_text()
    for number, lr in (("0", "0.001"), ("2", "0.01")):
        child = runs[number]
        assert child.info.status == "FINISHED" and child.data.params["train.classifier.lr"] == lr
        assert 0 <= child.data.metrics["objective"] == child.data.metrics["eval_val_accuracy"] <= 1
        assert len(client.get_metric_history(child.info.run_id, "val_acc")) == 2  # per epoch
        assert "best.ckpt" in {a.path for a in client.list_artifacts(child.info.run_id)}
    parent_files = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert {"trials.csv", "trials.md", "objective_vs_params.png", "best_params.yaml",
            "best_overrides.txt"} <= parent_files
    rows = (sweep_dir / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial,state,objective,train.classifier.lr,run_id" and len(rows) == 4
    assert (sweep_dir / "objective_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    # The best configuration goes back into the pipeline: as overrides and as a whole params file.
    best = runs[top.data.tags["best_trial"]]
    assert best.data.metrics["objective"] == top.data.metrics["best_objective"]
    overrides = (sweep_dir / "best_overrides.txt").read_text().split()
    assert f"train.classifier.lr={best.data.params['train.classifier.lr']}" in overrides
    assert not any(o.startswith(("sweep", "hydra")) for o in overrides)
    assert compose(overrides).train.classifier.lr == float(best.data.params["train.classifier.lr"])
    best_params = OmegaConf.load(sweep_dir / "best_params.yaml")
    assert set(best_params) == set(OmegaConf.load(PROJECT_ROOT / "params.yaml"))
    assert best_params.train.classifier.lr == float(best.data.params["train.classifier.lr"])


def test_optuna_sweep_killed_mid_trial_resumes_the_same_study_and_parent_run(tmp_path, sweep_data_cache):
    storage, sweep_dir = f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "optuna"
    command = sweep_command(tmp_path, sweep_data_cache, "sweep=classifier_optuna", "hydra.sweeper.n_trials=4",
                            f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={sweep_dir}",
                            "train.classifier.epochs=5",
                            "hydra.sweeper.enqueue=[{train.classifier.label_smoothing: 5.0}]")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        deadline = time.monotonic() + 3600  # a net against a hung sweep, not a speed check: the wait is for an event
        while not (partial_dir(sweep_dir / "3/model") / "run.json").is_file():  # trial 3 is training, its run open
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-4000:]
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)  # no clean-up of any kind
        first.wait()
    parent = read_parent(sweep_dir)
    client = client_for(tmp_path)
    assert client.get_run(parent["run_id"]).info.status == "RUNNING"

    run(command)
    study = optuna.load_study(study_name="classifier_optuna", storage=storage)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]  # the count went on from the killed sweep
    states = [t.state.name for t in trials]
    assert states[0] == "FAIL" and trials[0].params["train.classifier.label_smoothing"] == 5.0  # fails on purpose
    assert states[3] == "FAIL" and trials[3].user_attrs[INTERRUPTED]
    assert trials[4].user_attrs[RETRY_OF] == 3 and trials[4].params == trials[3].params
    assert all(s in ("COMPLETE", "PRUNED") for s in (states[1], states[2], states[4]))
    assert read_parent(sweep_dir) == parent  # one parent run for the whole study
    top = client.get_run(parent["run_id"])
    assert top.info.status == "FINISHED" and top.data.tags["sweep.sweeper"] == "OptunaSweeper"
    runs = {r.data.tags["sweep.trial"]: r for r in children(client, parent)}
    assert sorted(runs) == ["0", "1", "2", "3", "4"]
    assert runs["0"].info.status == "FAILED" and runs["0"].data.tags["sweep.state"] == "failed"
    assert runs["3"].info.status == "KILLED" and runs["3"].data.tags["sweep.state"] == "interrupted"
    for number in ("1", "2", "4"):
        state = runs[number].data.tags["sweep.state"]
        assert state == {"COMPLETE": "complete", "PRUNED": "pruned"}[states[int(number)]]
        if state == "complete":
            assert runs[number].data.metrics["objective"] == trials[int(number)].value
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.trials == 5 and results.best_value == study.best_value
    assert json.loads(json.dumps(top.data.metrics))["trials_interrupted"] == 1


def test_detector_trials_sweep_the_anchor_preset_and_score_val_map(tmp_path, sweep_data_cache):
    sweep_dir = tmp_path / "detector"
    run(sweep_command(tmp_path, sweep_data_cache, "sweep=detector", "anchors@model.detector.anchors=ssd,fastai",
                      "train.detector.epochs=1", "train.detector.freeze_epochs=1", "train.detector.batch_size=8",
                      f"hydra.sweep.dir={sweep_dir}"))
    client, parent = client_for(tmp_path), read_parent(sweep_dir)
    runs = sorted(children(client, parent), key=lambda r: r.data.tags["sweep.trial"])
    assert [r.data.tags["sweep.state"] for r in runs] == ["complete", "complete"]
    zooms = [r.data.params["model.detector.anchors.zooms"] for r in runs]
    assert zooms == ["[1.0, 1.41]", "[0.75, 1.0, 1.3]"]  # ssd, then fastai
    for child in runs:
        assert child.data.tags["stage"] == "train@detector"
        assert child.data.metrics["objective"] == child.data.metrics["eval_val_map_50"]
    assert "anchors@model.detector.anchors" in (sweep_dir / "trials.csv").read_text().splitlines()[0]


def test_a_pruned_trial_stops_after_fewer_epochs_and_a_sweep_where_no_trial_completes_fails_with_its_summary(
        tmp_path, sweep_data_cache):
    """A pruner whose bound no accuracy reaches (ThresholdPruner, lower 1.01) stops the trial at the
    first epoch after its warm-up: PRUNED in the study, KILLED and tagged pruned in MLflow, with
    fewer epochs logged than configured, and counted as pruned by the parent run. With the other
    trial failed (an invalid setting, enqueued first), no trial completed: the sweep exits 1 with its
    summary, the parent run ends FAILED and the trials table is written all the same."""
    storage, sweep_dir = f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path / "pruned"
    output = run(sweep_command(tmp_path, sweep_data_cache, "sweep=classifier_optuna", "hydra.sweeper.n_trials=2",
                               "train.classifier.epochs=4", f"hydra.sweep.dir={sweep_dir}",
                               f"hydra.sweeper.storage={storage}", "~hydra.sweeper.pruner",
                               "+hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.01,"
                               "n_warmup_steps:1}",
                               "hydra.sweeper.enqueue=[{train.classifier.label_smoothing: 5.0}]"), status=1)
    assert "sweep: 2 trials, 0 complete: no trial completed (a failed trial's run" in output
    failed, trial = optuna.load_study(study_name="classifier_optuna", storage=storage).get_trials()
    assert failed.state.name == "FAIL" and failed.params["train.classifier.label_smoothing"] == 5.0
    assert trial.state.name == "PRUNED" and sorted(trial.intermediate_values) == [0, 1]
    client, parent = client_for(tmp_path), read_parent(sweep_dir)
    runs = {r.data.tags["sweep.trial"]: r for r in children(client, parent)}
    assert sorted(runs) == ["0", "1"]
    assert runs["0"].info.status == "FAILED" and runs["0"].data.tags["sweep.state"] == "failed"
    child = runs["1"]
    assert child.info.status == "KILLED" and child.data.tags["sweep.state"] == "pruned"
    assert len(client.get_metric_history(child.info.run_id, "val_acc")) == 2  # of 4 epochs
    top = client.get_run(parent["run_id"])
    assert top.info.status == "FAILED"
    assert top.data.metrics["trials_pruned"] == 1 and top.data.metrics["trials_failed"] == 1
    trials_table = (sweep_dir / "trials.csv").read_text()
    assert trials_table.count("failed") == 1 and trials_table.count("pruned") == 1  # written all the same
