"""MLflow tracking defaults that MLflow 3.17 accepts.

MLflow 3.17 refuses its old folder store, so the local default is a SQLite database
inside the project (``mlruns/mlflow.db``) with artifacts in ``mlruns/artifacts``, both
git-ignored. ``logger.tracking_uri`` or ``$MLFLOW_TRACKING_URI`` select a server instead.
Telemetry is switched off when ``pipeline`` is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

REMOTE_SCHEMES = ("http://", "https://", "databricks")


def tracking_uri(cfg) -> str:
    """The tracking URI: config, else $MLFLOW_TRACKING_URI, else the local SQLite store."""
    if cfg.get("tracking_uri"):
        return str(cfg.tracking_uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = Path(cfg.get("local_store", "mlruns/mlflow.db")).resolve()
    store.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store}"


def artifact_location(cfg, uri: str) -> str | None:
    """Where a new experiment keeps artifacts: the server decides for remote stores."""
    if uri.startswith(REMOTE_SCHEMES):
        return None
    root = Path(cfg.get("artifact_root", "mlruns/artifacts")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root.as_uri()


def ensure_experiment(cfg, name: str | None = None) -> tuple[str, str]:
    """(tracking URI, experiment id), creating the experiment on first use."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg)
    name = name or cfg.get("experiment", "cv-pipeline")
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return uri, found.experiment_id
    try:
        return uri, client.create_experiment(name, artifact_location=artifact_location(cfg, uri))
    except MlflowException:  # created meanwhile by a parallel run
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return uri, found.experiment_id
