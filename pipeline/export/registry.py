"""The MLflow model registry: each export logs the ONNX model (mlflow.onnx) and the PyTorch model
(mlflow.pytorch) to the training's run, registers the ONNX model as a new version of one name
per task, and moves the alias (``champion``) to that version only when its key metric beats the
current champion's."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from mlflow import MlflowClient

from pipeline.tasks import get_task
from pipeline.tracking import ensure_experiment, fluent_tracking_uri, tracking_uri
from pipeline.training import RUN_FILE


def key_metric(task: str, metrics: dict | None) -> float | None:
    value = metrics
    for part in get_task(task).key_metric:
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def training_run(client: MlflowClient, cfg, task: str, run_id: str, model_dir: Path):
    """(the training run's info, the run the models are logged to): the training's own run, or, when
    the store no longer has it (``mlruns/`` removed, then DVC restored the training from its cache;
    another tracking URI), a new run that records the link to the training."""
    from mlflow.exceptions import MlflowException

    try:  # reopening the run moves its end; the training's is put back after
        return client.get_run(run_id).info, run_id
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    _, experiment_id = ensure_experiment(cfg.logger)
    note = (f"The training of {model_dir} was logged to run {run_id}, which this tracking store does not have "
            "(the store was removed or replaced after the training, e.g. DVC restored it from its cache). "
            "This run holds its export.")
    run = client.create_run(experiment_id, run_name=f"export {task} (training run {run_id[:8]} not in this store)",
                            tags={"training_run": run_id, "training_run_missing": "true",
                                  "mlflow.note.content": note})
    warnings.warn(f"export {task}: {note} (run {run.info.run_id})", stacklevel=2)
    return None, run.info.run_id


def register(cfg, task: str, bundle_dir: Path, model_dir: Path, graph, metrics: dict | None) -> dict:
    """Log, register and maybe promote; returns name, version, key metric, alias and whether it moved."""
    import mlflow
    import onnx

    name, alias = f"{cfg.export.registered_model_prefix}-{task}", cfg.export.alias
    run_id = json.loads((model_dir / RUN_FILE).read_text())["run_id"]
    uri = tracking_uri(cfg.logger)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    score, metric_name = key_metric(task, metrics), ".".join(get_task(task).key_metric)
    trained, log_run = training_run(client, cfg, task, run_id, model_dir)
    with fluent_tracking_uri(uri):
        with mlflow.start_run(run_id=log_run):
            onnx_info = mlflow.onnx.log_model(onnx.load(str(bundle_dir / "model.onnx")), name=f"{task}_onnx",
                                              pip_requirements=["onnxruntime", "numpy"])
            # pickled (pt2 needs one output tensor; the detector has two): loading needs this package
            torch_info = mlflow.pytorch.log_model(graph, name=f"{task}_pytorch", serialization_format="pickle",
                                                  pip_requirements=["torch", "cvpipe"])
        if trained is not None and trained.end_time is not None:
            client.set_terminated(run_id, trained.status, end_time=trained.end_time)
        version = mlflow.register_model(onnx_info.model_uri, name, tags={
            "task": task, "key_metric": metric_name, "key_value": "" if score is None else f"{score:.6f}",
            "pytorch_model_uri": torch_info.model_uri, "training_run": run_id,
            **({"export_run": log_run} if log_run != run_id else {})})
    try:
        current = client.get_model_version_by_alias(name, alias)
        current_value = current.tags.get("key_value", "")
        best = float(current_value) if current_value else None
    except mlflow.exceptions.MlflowException:
        current, best = None, None
    promote = score is not None and (best is None or score > best)
    if promote:
        client.set_registered_model_alias(name, alias, version.version)
    return {"registered_model": name, "version": int(version.version), "key_metric": metric_name,
            "key_value": score, "alias": alias, "promoted": promote,
            "champion_version": int(version.version) if promote else (int(current.version) if current else None)}
