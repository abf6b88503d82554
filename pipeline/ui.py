"""`make ui`: MLflow's UI on the project's local store, after printing the address of each of its
experiments in the model-training view (pipeline.tracking.TRAINING_VIEW says why an address is
needed).

    python -m pipeline.ui [--host 127.0.0.1] [--port 5000] [--store PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from pipeline.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, RUNS_VIEW_TAG, runs_view, ui_address

COUNTED = 1000  # runs counted per experiment in the printed list (a larger store shows "1000+")


def experiment_lines(store_uri: str, base_url: str) -> list[str]:
    """``<experiment>: <address>  (<n> runs)`` for each of the project's experiments in the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri)
    lines = []
    for experiment in client.search_experiments():
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            continue  # MLflow's Default experiment, or one another tool made
        if experiment.tags.get(RUNS_VIEW_TAG) != runs_view():  # made before the headline view, or another one
            client.set_experiment_tag(experiment.experiment_id, RUNS_VIEW_TAG, runs_view())
        runs = len(client.search_runs([experiment.experiment_id], max_results=COUNTED))
        count = f"{COUNTED}+ runs" if runs == COUNTED else f"{runs} run{'' if runs == 1 else 's'}"
        lines.append(f"{experiment.name}: {ui_address(base_url, experiment.experiment_id)}  ({count})")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine only) unless told otherwise")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--store", help="the local SQLite store (default: conf/'s logger.local_store)")
    args = parser.parse_args(argv)
    if args.store is None:
        from pipeline.config import compose

        args.store = str(compose().logger.local_store)
    store = Path(args.store).resolve()
    store_uri = f"sqlite:///{store}"
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{shown_host}:{args.port}"
    lines = experiment_lines(store_uri, base) if store.is_file() else []
    print("\n".join(lines) if lines else f"no runs in {store} yet (`make repro` logs them); the UI: {base}",
          flush=True)
    # MLflow's job runner and its task-queue consumers serve GenAI jobs this project never starts:
    # without them the UI is one server process instead of ten
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    os.execvp(mlflow, [mlflow, "ui", "--backend-store-uri", store_uri, "--host", args.host,
                       "--port", str(args.port), "--workers", "1"])


if __name__ == "__main__":
    main()
