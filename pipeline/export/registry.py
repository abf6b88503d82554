"""The MLflow model registry: each export logs the ONNX model (mlflow.onnx) and the PyTorch model
(mlflow.pytorch) to the training's run, registers the ONNX model as a new version of one name
per task, and moves the alias (``champion``) to that version only when its key metric beats the
current champion's."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient

from pipeline.tasks import get_task
from pipeline.tracking import fluent_tracking_uri, tracking_uri
from pipeline.training import RUN_FILE


def key_metric(task: str, metrics: dict | None) -> float | None:
    value = metrics
    for part in get_task(task).key_metric:
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def register(cfg, task: str, bundle_dir: Path, model_dir: Path, graph, metrics: dict | None) -> dict:
    """Log, register and maybe promote; returns name, version, key metric, alias and whether it moved."""
    import mlflow
    import onnx

    name, alias = f"{cfg.export.registered_model_prefix}-{task}", str(cfg.export.alias)
    run_id = json.loads((model_dir / RUN_FILE).read_text())["run_id"]
    uri = tracking_uri(cfg.logger)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    score, metric_name = key_metric(task, metrics), ".".join(get_task(task).key_metric)
    trained = client.get_run(run_id).info  # reopening the run moves its end; the training's is put back
    with fluent_tracking_uri(uri):
        with mlflow.start_run(run_id=run_id):
            onnx_info = mlflow.onnx.log_model(onnx.load(str(bundle_dir / "model.onnx")), name=f"{task}_onnx",
                                              pip_requirements=["onnxruntime", "numpy"])
            # pickled (pt2 needs one output tensor; the detector has two): loading needs this package
            torch_info = mlflow.pytorch.log_model(graph, name=f"{task}_pytorch", serialization_format="pickle",
                                                  pip_requirements=["torch", "cvpipe"])
        if trained.end_time is not None:
            client.set_terminated(run_id, trained.status, end_time=trained.end_time)
        version = mlflow.register_model(onnx_info.model_uri, name, tags={
            "task": task, "key_metric": metric_name, "key_value": "" if score is None else f"{score:.6f}",
            "pytorch_model_uri": torch_info.model_uri, "training_run": run_id})
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
