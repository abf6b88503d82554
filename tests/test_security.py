"""Security: checkpoints load without unpickling code, the MLflow UI listens on loopback unless told
otherwise, and nothing logged or exported names the user's home folder or a password.
(Dataset paths that escape their root: tests/test_bad_inputs.py::test_annotation_filename_with_path_traversal.)"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.classify.train import train_classifier
from pipeline.export.build import export_bundle
from pipeline.models.pretrained import project_checkpoint_state
from pipeline.tracking import flat_params, redact, tracking_uri
from tests.conftest import PROJECT_ROOT, tiny_config
from tests.mlflow_server import free_port

SOURCES = [p for folder in ("pipeline", "stages", "benchmarks") for p in (PROJECT_ROOT / folder).rglob("*.py")]


def calls(name: str):
    """(file, call) for every call of the function or method ``name`` in the project's code."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path.relative_to(PROJECT_ROOT), node


def weights_only_true(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def test_every_checkpoint_load_uses_weights_only():
    loads = list(calls("load"))
    torch_loads = [(path, c) for path, c in loads if isinstance(c.func, ast.Attribute)
                   and getattr(c.func.value, "id", None) == "torch"]
    assert torch_loads, "the audit found no torch.load at all: it is not looking at the code"
    assert [f"{path}:{c.lineno}" for path, c in torch_loads if not weights_only_true(c)] == []
    fits = [(path, c) for path, c in calls("fit") if any(k.arg == "ckpt_path" for k in c.keywords)]
    assert fits and [f"{path}:{c.lineno}" for path, c in fits if not weights_only_true(c)] == []
    unpickling = [f"{path}:{c.lineno}" for name in ("load", "loads") for path, c in calls(name)
                  if isinstance(c.func, ast.Attribute) and getattr(c.func.value, "id", None) in ("pickle", "dill")]
    assert unpickling == [] and not list(calls("load_from_checkpoint"))


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"net.w": torch.zeros(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        project_checkpoint_state(path)  # what `model.classifier.pretrained=<path>` loads
    assert not marker.exists()


def test_the_mlflow_ui_listens_on_loopback_unless_configured():
    port = free_port()
    ui = subprocess.Popen(["make", "-s", "ui", f"UI_PORT={port}"], cwd=PROJECT_ROOT, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, listening = time.monotonic() + 90, []
        while not listening and time.monotonic() < deadline:
            assert ui.poll() is None, "`make ui` ended early"
            tree = [psutil.Process(ui.pid), *psutil.Process(ui.pid).children(recursive=True)]
            pids = {p.pid for p in tree}
            listening = [c.laddr.ip for c in psutil.net_connections("inet")
                         if c.status == psutil.CONN_LISTEN and c.pid in pids and c.laddr.port == port]
            time.sleep(0.5)
        assert listening and set(listening) == {"127.0.0.1"}, listening
        time.sleep(3)  # MLflow's job runner, where it is on, starts its consumers after the server listens
        pythons = [p for p in psutil.Process(ui.pid).children(recursive=True) if "python" in p.name().lower()
                   or any("mlflow" in part for part in p.cmdline()[:2])]
        print(f"make ui: {len(pythons)} processes besides make")
        assert len(pythons) <= 2, [" ".join(p.cmdline()[:4]) for p in pythons]  # the server; no GenAI job runner
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    dry_run = subprocess.run(["make", "-n", "ui", "UI_HOST=0.0.0.0"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True).stdout
    assert "--host 0.0.0.0" in dry_run  # configured: other machines may connect


def test_passwords_and_the_home_folder_are_redacted(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ann")
    assert redact("postgresql://mlflow:s3cr3t@db.internal/mlflow") == "postgresql://mlflow:***@db.internal/mlflow"
    assert redact("/home/ann/projects/x.db") == "~/projects/x.db" and redact("/home/anna/x") == "/home/anna/x"
    params = flat_params({"logger": {"tracking_uri": "https://bob:hunter2@mlflow.example.com",
                                     "local_store": "/home/ann/m.db"}})
    assert "hunter2" not in str(params) and "/home/ann/" not in str(params)


def leaks(data: bytes, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s.encode() in data]


def test_no_home_path_or_project_path_in_params_logs_or_bundles(tiny_data, tmp_path, monkeypatch):
    """A training and an export with the project's outputs and MLflow store under $HOME: the run's
    params, tags and artifacts, the checkpoints and the bundle hold neither $HOME nor the source tree."""
    monkeypatch.setenv("HOME", str(tmp_path))
    secrets = [str(tmp_path), str(PROJECT_ROOT)]
    cfg = tiny_config(tmp_path, "model/classifier=small_alexnet", "train.classifier.epochs=1",
                      "train.classifier.freeze_epochs=0")
    manifest = tiny_data / "prepared/manifest.json"
    result = train_classifier(cfg, manifest, tiny_data / "augment", tmp_path / "model")
    export_bundle("classifier", cfg, tmp_path / "model", manifest, None, tmp_path / "bundle", tmp_path / "parity.json")

    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.data.params["logger.local_store"] == "~/mlruns/mlflow.db"  # it was given as an absolute path
    assert leaks(json.dumps([run.data.params, run.data.tags]).encode(), secrets) == []
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    files = [*artifacts.rglob("*"), *(tmp_path / "model").rglob("*"), *(tmp_path / "bundle").rglob("*")]
    found = {str(p.relative_to(tmp_path)): leaks(p.read_bytes(), secrets) for p in files if p.is_file()}
    assert len(found) >= 10 and {name: hit for name, hit in found.items() if hit} == {}
