"""MLflow tracking defaults that MLflow 3.17 accepts.

MLflow 3.17 refuses its old folder store, so the local default is a SQLite database
inside the project (``mlruns/mlflow.db``) with artifacts in ``mlruns/artifacts``, both
git-ignored. ``logger.tracking_uri`` or ``$MLFLOW_TRACKING_URI`` select a server instead.
Relative local paths are taken from the DVC project root when DVC runs the stage
(``$DVC_ROOT``), so queued `dvc exp run` experiments, which run in temporary copies of the
repository, log to the project's store. Telemetry is switched off when ``pipeline`` is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

REMOTE_SCHEMES = ("http://", "https://", "databricks")
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the run is shown nested under that run


def project_path(path: str | Path) -> Path:
    """``path`` made absolute: relative to $DVC_ROOT under DVC (the real project, also for queued
    experiments in temporary copies), else to the working directory."""
    path = Path(path)
    if path.is_absolute():
        return path
    return (Path(os.environ.get("DVC_ROOT") or ".") / path).resolve()


def tracking_uri(cfg) -> str:
    """The tracking URI: config, else $MLFLOW_TRACKING_URI, else the local SQLite store."""
    if cfg.tracking_uri:
        return cfg.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = project_path(cfg.local_store)
    with contextlib.suppress(OSError):  # a folder that cannot be made: check_reachable says so in one line
        store.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store}"


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """``mlflow.set_tracking_uri(uri)`` for a block (MLflow's fluent API: start_run, log_model).
    MLflow also exports it as $MLFLOW_TRACKING_URI, which would send every later run of this
    process and of its subprocesses to that store; the previous state is put back after."""
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # None unsets the variable again


def artifact_location(cfg, uri: str) -> str | None:
    """Where a new experiment keeps artifacts: the server decides for remote stores."""
    if uri.startswith(REMOTE_SCHEMES):
        return None
    root = project_path(cfg.artifact_root)
    root.mkdir(parents=True, exist_ok=True)
    return root.as_uri()


# The project's experiments are model development (MLflow's own tag, read by its search and assistant)
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI opens an experiment on its GenAI overview (traces, token usage) whatever that tag
# says, unless the address asks for the model-training view or the browser's switch was set to it
TRAINING_VIEW = "workflowType=machine_learning"
REACHABLE_TIMEOUT = 5.0  # seconds a tracking server has to answer before training starts


# MLflow's UI opens an experiment's runs table on a saved view when the address names it: the view
# is an experiment tag, mlflow.sharedViewState.<key>, holding the table's state as JSON (MLflow 3's
# "share view"). Ours shows each task's headline metrics (pipeline/tasks.py) as columns.
RUNS_VIEW_KEY = "headline"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"


def runs_view() -> str:
    """The saved view of the runs table: dataset and duration, then every task's headline."""
    from pipeline.tasks import TASKS

    metrics = [key for task in TASKS.values() for key in [k for k, _ in task.headline] + [task.seconds_key]]
    columns = ["attributes.`Dataset`", "attributes.`Duration`", *(f"metrics.`{key}`" for key in metrics)]
    return json.dumps({"selectedColumns": columns})


def ui_address(base_url: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's address of an experiment's training runs (or of one run), in the
    model-training view (the UI keeps it while one browses from there); the runs table opens on
    the headline metrics."""
    experiment = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}"
    if run_id:
        return f"{experiment}/runs/{run_id}?{TRAINING_VIEW}"
    return f"{experiment}/runs?viewStateShareKey={RUNS_VIEW_KEY}&{TRAINING_VIEW}"  # /runs: a redirect drops the key


def check_reachable(uri: str) -> None:
    """A tracking store that cannot take this run is one line before any training, not minutes of
    MLflow's retries and a traceback after it: a server that does not answer or is not MLflow, a
    local SQLite store that is damaged or in a folder that cannot be written, a folder given as
    the store (MLflow's file store, which MLflow 3 keeps read-only)."""
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif uri.startswith("sqlite:///"):
        check_sqlite(Path(uri.removeprefix("sqlite:///")))
    elif uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise ValueError(f"MLflow tracking URI {redact(uri)} is a folder (MLflow's file store, which MLflow 3 no "
                         "longer writes); give a database file instead, e.g. logger.tracking_uri="
                         f"sqlite:///{redact(uri.removeprefix('file://').removeprefix('file:').rstrip('/'))}/mlflow.db")


SERVER_PROBE = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"


def check_server(uri: str) -> None:
    """The server answers within REACHABLE_TIMEOUT and speaks MLflow's REST API (JSON, also for
    errors); one that asks for credentials is taken as reachable."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + SERVER_PROBE, timeout=REACHABLE_TIMEOUT) as answer:
            code, body = answer.status, answer.read(65536)
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read(65536)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"MLflow tracking server {redact(uri)} is not reachable ({reason}); start it, or unset "
                         "logger.tracking_uri and $MLFLOW_TRACKING_URI to log to the project's local store") from None
    if code in (401, 403):
        return
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not (isinstance(answer, dict) and ("experiment" in answer or "error_code" in answer)):
        probe = SERVER_PROBE.split("?")[0]
        raise ValueError(f"{redact(uri)} answers, but not as an MLflow tracking server (GET {probe}: HTTP {code}); "
                         "check logger.tracking_uri and $MLFLOW_TRACKING_URI")


def check_sqlite(path: Path) -> None:
    """The store's folder can be written and an existing store is a whole SQLite database."""
    import sqlite3

    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"MLflow store {path}: its folder {folder} cannot be written; set logger.local_store "
                         "(or logger.tracking_uri) to a file in a folder you can write to")
    if not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=REACHABLE_TIMEOUT)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise ValueError(f"MLflow store {path} is damaged ({verdict}); move it aside and start a new one there "
                         "(or set logger.local_store): its runs are lost unless you have a copy")


@contextlib.contextmanager
def first_use_guard(uri: str) -> Iterator[None]:
    """Held while a process opens a local SQLite store and makes its experiment. MLflow's tracking
    store creates its tables on first use without a lock, so two stages that start at once on a new
    store (`make repro` runs two side by side) would both create them and one would fail; the second
    waits here and finds them made. A server serialises this itself."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock  # the operating system's lock, on any of them (DVC's own dependency)

    store = Path(uri.removeprefix("sqlite:///"))
    with FileLock(store.with_name(store.name + ".lock")):
        yield


def ensure_experiment(cfg, name: str | None = None) -> tuple[str, str]:
    """(tracking URI, experiment id), creating the experiment on first use."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg)
    name = name or cfg.experiment
    check_reachable(uri)
    with first_use_guard(uri):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                client.create_experiment(name, artifact_location=artifact_location(cfg, uri),
                                         tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except MlflowException:  # created meanwhile by a run with another store guard (a server)
                pass
            found = client.get_experiment_by_name(name)
    if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # an experiment made before this tag
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    if found.tags.get(RUNS_VIEW_TAG) != runs_view():  # new, or made when the tasks' headlines differed
        client.set_experiment_tag(found.experiment_id, RUNS_VIEW_TAG, runs_view())
    return uri, found.experiment_id


def git_commit(cwd: str | Path = ".") -> str:
    import subprocess

    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip() if done.returncode == 0 else "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                           capture_output=True, text=True, timeout=10).stdout.strip() if commit != "unknown" else ""
    return commit + ("-dirty" if dirty else "")


def file_sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


SOURCE_TAG = "mlflow.source.name"  # MLflow's own tag, which it sets to the script's absolute path


def source_name() -> str:
    """The running script, relative to the working folder when inside it (stages/x.py)."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path("")
    try:
        return script.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return redact(str(script))


def run_label(cfg, stage: str) -> str:
    """A run name that tells runs apart in MLflow's list: dataset, model (and network), and the DVC
    experiment when there is one, e.g. ``raccoon · detector ssd_tf_efficientnet_lite0 · exp-dazed-lamb``."""
    task = stage.partition("@")[2] or stage
    section = cfg.model[task] if task in cfg.model else None
    network = "" if section is None else f" {section.name}" if "name" in section else f" ssd_{section.backbone}"
    parts = [cfg.data.name, f"{task}{network}", os.environ.get("DVC_EXP_NAME", "")]
    return " · ".join(p for p in parts if p)


def run_tags(stage: str, manifest_path: str | Path, parent_run_id: str | None = None) -> dict[str, str]:
    """Tags of every training run: the code, the stage and the exact data it saw; the DVC
    experiment it belongs to (`dvc exp run` sets $DVC_EXP_NAME); the sweep run it is a trial of."""
    tags = {"git_commit": git_commit(), "stage": stage, "data_manifest_sha256": file_sha256(manifest_path),
            SOURCE_TAG: source_name()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
        tags["dvc_baseline_rev"] = os.environ.get("DVC_EXP_BASELINE_REV", "")
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    return tags


CREDENTIALS = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")  # scheme://user:password@host


def metric_keys(names) -> dict[str, str]:
    """A valid MLflow key for each metric name: class names may hold any character a file name
    can ('dolphin (bottlenose)', 'delfín 🐬'), MLflow keys only letters, digits and ``_-. /``.
    Others become ``_``; names that would then collide get a short digest of the original. The
    real names stay in the metrics files and reports."""
    names = list(names)
    safe = {name: re.sub(r"[^\w.\- ]", "_", name) for name in names}
    taken = Counter(safe.values())
    keys = {}
    for name, key in safe.items():
        if key != name and (taken[key] > 1 or key in safe):
            key = f"{key}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"
        keys[name] = key
    return keys


def redact(value: str) -> str:
    """``value`` fit to be logged and shared: passwords in URIs masked, the home folder shown as ~."""
    value = CREDENTIALS.sub(r"\1***@", value)
    home = os.path.expanduser("~").rstrip(os.sep)
    if home:
        value = re.sub(rf"{re.escape(home)}(?=$|{re.escape(os.sep)})", "~", value)
    return value


def redacted(values: dict) -> dict[str, str]:
    return {key: redact(str(value)) for key, value in values.items()}


def flat_params(cfg, prefix: str = "") -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, values as strings (:func:`redact` ed)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else cfg
    flat: dict[str, str] = {}

    def walk(node, key):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        else:
            flat[key] = redact(str(node))
    walk(container, prefix)
    return flat


def log_dataset(client, run_id: str, data_cfg, manifest_path: str | Path) -> None:
    """The training's input dataset on its run (MLflow's Dataset column and filter): name, source,
    digest of the manifest and the images per split."""
    import json as json_module

    from mlflow.entities import Dataset, DatasetInput

    from pipeline.data.manifest import Manifest

    manifest = Manifest.read(manifest_path)
    splits = {name: len(manifest.split(name)) for name in manifest.split_names()}
    dataset = Dataset(name=data_cfg.name, digest=file_sha256(manifest_path)[:16], source_type="local",
                      source=json_module.dumps({"format": data_cfg.format, "root": redact(data_cfg.root)}),
                      profile=json_module.dumps({"task": manifest.task, "classes": len(manifest.classes), **splits}))
    client.log_inputs(run_id, datasets=[DatasetInput(dataset)])
