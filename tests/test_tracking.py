import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    RUNS_VIEW_TAG,
    ensure_experiment,
    file_sha256,
    fluent_tracking_uri,
    runs_view,
    tracking_uri,
)


def logger_cfg(**overrides):
    return OmegaConf.merge(compose().logger, OmegaConf.create(overrides))


def test_local_defaults_sqlite_store_and_artifact_folder_in_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = logger_cfg()
    uri, experiment_id = ensure_experiment(cfg)
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    with fluent_tracking_uri(uri):
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("x", 1.0)
            mlflow.log_text("hello", "note.txt")
        artifact = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="note.txt",
                                                            dst_path=str(tmp_path / "dl")))
    assert "MLFLOW_TRACKING_URI" not in os.environ  # not left behind for later runs and subprocesses
    assert artifact.read_text() == "hello"
    stored = list((tmp_path / "mlruns" / "artifacts").rglob("note.txt"))
    assert len(stored) == 1
    assert ensure_experiment(cfg)[1] == experiment_id  # reused, not duplicated


def test_env_var_and_config_select_the_tracking_server(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(logger_cfg()) == "http://127.0.0.1:5999"
    assert tracking_uri(logger_cfg(tracking_uri="sqlite:////tmp/x.db")) == "sqlite:////tmp/x.db"


def test_telemetry_and_update_checks_are_off():
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "1"


def test_relative_local_store_is_taken_from_the_dvc_project_root(tmp_path, monkeypatch):
    """Queued `dvc exp run` experiments run in temporary copies; DVC points $DVC_ROOT at the project."""
    project, copy = tmp_path / "project", tmp_path / "project/.dvc/tmp/exps/tmpabc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(project))
    assert tracking_uri(logger_cfg()) == f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    assert tracking_uri(logger_cfg()) == f"sqlite:///{copy / 'mlruns' / 'mlflow.db'}"


def test_runs_of_a_dvc_experiment_and_of_a_sweep_trial_are_tagged(tmp_path, monkeypatch):
    from pipeline.tracking import PARENT_TAG, run_tags

    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lamb")
    tags = run_tags("train@classifier", manifest, parent_run_id="abc")
    assert tags["dvc_experiment"] == "brisk-lamb" and tags[PARENT_TAG] == "abc"
    monkeypatch.delenv("DVC_EXP_NAME")
    assert "dvc_experiment" not in run_tags("train@classifier", manifest)


def test_a_training_run_is_named_and_carries_its_dataset_and_system_metrics(tiny_data, tmp_path):
    from pipeline.classify.train import train_classifier
    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path, "model/classifier=small_alexnet", "train.classifier.epochs=2",
                      "train.classifier.freeze_epochs=0", "logger.system_metrics_seconds=30")
    result = train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model")
    client = MlflowClient(tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.info.run_name == "synthetic_tiny · classifier small_alexnet"
    assert run.data.tags["stage"] == "train@classifier"
    (dataset,) = run.inputs.dataset_inputs
    manifest = tiny_data / "prepared/manifest.json"
    assert (dataset.dataset.name, dataset.dataset.digest) == ("synthetic_tiny", file_sha256(manifest)[:16])
    profile = json.loads(dataset.dataset.profile)
    assert profile["train"] > 0 and profile["val"] > 0 and profile["task"] == "detection"
    # an interval longer than the training: the samples taken are logged when it ends
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # model development


def test_make_ui_prints_each_project_experiment_in_the_training_view(tmp_path):
    from pipeline.ui import experiment_lines

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, experiment_id = ensure_experiment(logger_cfg(tracking_uri=store, experiment="cvpipe"))
    client = MlflowClient(store)
    client.create_run(experiment_id)
    client.create_experiment("made by another tool")  # not the project's: not listed
    # made by an earlier version of the pipeline: the project's, without the saved runs view
    older = client.create_experiment("older", tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    assert sorted(experiment_lines(store, "http://127.0.0.1:5000")) == [
        f"cvpipe: http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?viewStateShareKey=headline"
        "&workflowType=machine_learning  (1 run)",
        f"older: http://127.0.0.1:5000/#/experiments/{older}/runs?viewStateShareKey=headline"
        "&workflowType=machine_learning  (0 runs)"]
    for experiment in (experiment_id, older):  # the view the addresses name is there
        assert client.get_experiment(experiment).tags[RUNS_VIEW_TAG] == runs_view()


def test_metrics_of_any_class_name_reach_the_run_under_distinct_valid_keys(tmp_path, monkeypatch):
    from pipeline.training import log_to_run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = OmegaConf.create({"logger": logger_cfg()})
    uri, experiment_id = ensure_experiment(cfg.logger)
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(experiment_id).info.run_id
    names = ["delfín 🐬", "dolphin (bottlenose)", "a+b", "a#b", "a_b", "x,y", "plain"]
    log_to_run(cfg, tmp_path, {f"eval_val_recall_{n}": i / 10 for i, n in enumerate(names)}, [], "evaluation",
               tmp_path / "pending", run_id)
    logged = client.get_run(run_id).data.metrics
    assert len(logged) == len(names)  # none lost, none merged
    assert sorted(logged.values()) == [i / 10 for i in range(len(names))]
    assert logged["eval_val_recall_plain"] == 0.6 and logged["eval_val_recall_a_b"] == 0.4  # valid names kept
    assert logged["eval_val_recall_dolphin _bottlenose_"] == 0.1


# A stage that opens a new local store, with the gap between MLflow's check for its tables and their
# creation widened (in MLflow it is unguarded), then makes the experiment.
FIRST_USE = """import sys, time
sys.path.insert(0, {root!r})
import mlflow.store.db.utils as db
create = db._initialize_tables
db._initialize_tables = lambda engine: (time.sleep(1.0), create(engine))
from omegaconf import OmegaConf
from pipeline.tracking import ensure_experiment
print(ensure_experiment(OmegaConf.create({{"tracking_uri": None, "local_store": "mlruns/mlflow.db",
                                          "artifact_root": "mlruns/artifacts", "experiment": "cv-pipeline"}}))[1])
"""


def test_two_stages_that_start_at_once_on_a_new_store_both_log_to_one_experiment(tmp_path):
    script = FIRST_USE.format(root=str(Path(__file__).resolve().parents[1]))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    stages = [subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [stage.communicate(timeout=120) for stage in stages]
    assert [stage.returncode for stage in stages] == [0, 0], [err[-2000:] for _, err in done]
    assert done[0][0] == done[1][0] and done[0][0].strip()  # the same experiment id
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    assert [e.name for e in client.search_experiments()].count("cv-pipeline") == 1
