"""Crash safety: stages killed mid-way leave no output that looks complete, a killed training
resumes to the result of an uninterrupted one, and MLflow runs never stay RUNNING."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.classify.train import train_classifier
from pipeline.config import compose
from pipeline.heatmap.train import train_fcn
from pipeline.io.atomic import partial_dir
from pipeline.tracking import tracking_uri
from tests.conftest import PROJECT_ROOT, tiny_config

CLASSIFIER = ["model/classifier=small_alexnet", "train.classifier.epochs=3", "train.classifier.freeze_epochs=0"]


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def stage(name: str, params: Path, *args: str, paused: Path | None = None) -> subprocess.Popen:
    """A stage script in its own process group, as DVC would run it; with ``paused``, its training
    waits at the start of the second epoch, ``paused`` written (tests/paused_stage.py)."""
    wrapper = ["tests/paused_stage.py", str(paused)] if paused else []
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe that nobody reads would block the stage
    process = subprocess.Popen([sys.executable, *wrapper, f"stages/{name}.py", "--params", str(params), *args],
                               cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True,
                               start_new_session=True)
    process.log = log
    return process


def stderr_of(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read()


def wait_for(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the stage ended (status {process.returncode}) before the point to kill it: "
                        f"{stderr_of(process)[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the stage never reached the point to kill it")
        time.sleep(0.05)


def test_prepare_killed_mid_way_leaves_the_previous_output_whole(tmp_path):
    def params(num_images: int) -> Path:
        path = tmp_path / f"params_{num_images}.yaml"
        OmegaConf.save(compose(["data=synthetic", f"data.num_images={num_images}"]), path)
        return path

    out, outputs = tmp_path / "prepared", ["--out", str(tmp_path / "prepared"), "--reports", str(tmp_path / "reports"),
                                           "--metrics", str(tmp_path / "metrics.json")]
    assert stage("prepare", params(30), *outputs).wait(timeout=300) == 0
    before = folder_digest(out)
    before_metrics = (tmp_path / "metrics.json").read_bytes()

    killed = stage("prepare", params(4000), *outputs)
    wait_for(lambda: sum(1 for _ in tmp_path.glob(".prepared.*.tmp/images/**/*.png")) >= 100, killed)
    os.killpg(killed.pid, signal.SIGKILL)  # no clean-up of any kind
    killed.wait()
    assert folder_digest(out) == before  # the last complete output, untouched
    assert (tmp_path / "metrics.json").read_bytes() == before_metrics
    orphans = list(tmp_path.glob(".prepared.*.tmp"))
    assert len(orphans) == 1 and not (orphans[0] / "manifest.json").exists()

    assert stage("prepare", params(100), *outputs).wait(timeout=300) == 0
    assert not list(tmp_path.glob(".prepared.*.tmp"))  # the killed run's leftovers are removed
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["samples"]) + json.loads((tmp_path / "metrics.json").read_text())["rejected"] >= 100
    assert all((out / s["file"]).is_file() for s in manifest["samples"])


def run_status(cfg, run_id: str) -> str:
    return MlflowClient(tracking_uri=tracking_uri(cfg.logger)).get_run(run_id).info.status


def partial_run(out: Path) -> str:
    return json.loads((partial_dir(out) / "run.json").read_text())["run_id"]


def test_killed_training_resumes_to_the_same_result_and_its_run_never_stays_running(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, *CLASSIFIER)
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    data = ["--manifest", str(tiny_data / "prepared/manifest.json"), "--pipelines", str(tiny_data / "augment")]
    whole = train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "whole")

    def killed_after_one_epoch(out: Path, sig: int) -> subprocess.Popen:
        flag = tmp_path / f"{out.name}.paused"
        process = stage("train", tmp_path / "params.yaml", "classifier", *data, "--out", str(out), paused=flag)
        wait_for(flag.is_file, process, timeout=1800)  # an event, not a race: the training waits for the kill
        assert (partial_dir(out) / "last.ckpt").is_file()
        os.killpg(process.pid, sig)
        process.wait(timeout=120)
        assert process.returncode != 0 and not out.exists()  # the model folder never holds a half-trained model
        return process

    # SIGTERM (kill, docker stop, pre-emption): the stage unwinds and ends its run KILLED
    killed_after_one_epoch(tmp_path / "model", signal.SIGTERM)
    run_id = partial_run(tmp_path / "model")
    assert run_status(cfg, run_id) == "KILLED"
    # resumed as `train.py --resume` does, in this process (the kill needed a process of its own)
    train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model", resume=True)
    assert json.loads((tmp_path / "model/run.json").read_text())["run_id"] == run_id  # the same run, continued
    assert run_status(cfg, run_id) == "FINISHED" and not partial_dir(tmp_path / "model").exists()
    history = MlflowClient(tracking_uri=tracking_uri(cfg.logger)).get_metric_history(run_id, "val_loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [m.value for m in sorted(MlflowClient(tracking_uri=tracking_uri(cfg.logger)).get_metric_history(
            whole["run_id"], "val_loss"), key=lambda m: m.step)], abs=1e-6)
    a = folder_digest(tmp_path / "whole")
    b = folder_digest(tmp_path / "model")
    assert a.keys() == b.keys()
    for name in ("model.json", "preprocess.json", "best.ckpt"):
        assert a[name] == b[name], name  # byte-identical: the paths in checkpoints are portable too
    last = [torch.load(tmp_path / run / "last.ckpt", weights_only=True) for run in ("whole", "model")]
    assert last[0]["epoch"] == last[1]["epoch"] == 2 and last[0]["global_step"] == last[1]["global_step"]
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):  # the same training state, exactly
        torch.testing.assert_close(last[0][key], last[1][key], rtol=0, atol=0)

    # SIGKILL: nothing can run; a new training in its place ends the abandoned run KILLED
    killed_after_one_epoch(tmp_path / "other", signal.SIGKILL)
    abandoned = partial_run(tmp_path / "other")
    assert run_status(cfg, abandoned) == "RUNNING"
    fresh = train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "other")
    assert run_status(cfg, abandoned) == "KILLED" and run_status(cfg, fresh["run_id"]) == "FINISHED"


class Explode(Callback):
    def on_train_epoch_end(self, trainer, module):
        raise RuntimeError("out of memory, say")


def test_a_training_that_raises_ends_its_run_failed(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, *CLASSIFIER)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model",
                         callbacks=[Explode()])
    assert not (tmp_path / "model").exists()
    assert run_status(cfg, partial_run(tmp_path / "model")) == "FAILED"


def test_the_heatmap_networks_dense_phase_resumes_in_the_same_run(tiny_data, tmp_path):
    """The FCN's second phase (dense fine-tuning) goes through the same tracked fit: a SIGTERM during
    it leaves a resumable work folder, and --resume keeps the finished patch classifier, continues the
    dense epochs in the same MLflow run and writes the model folder."""
    cfg = tiny_config(tmp_path, "train.fcn.epochs=1", "train.fcn.dense.epochs=3", "train.fcn.dense.batch_size=4")
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    data = ["--manifest", str(tiny_data / "prepared/manifest.json"), "--pipelines", str(tiny_data / "augment")]
    out = tmp_path / "fcn"
    dense_work = partial_dir(partial_dir(out) / "dense")
    flag = tmp_path / "fcn.paused"  # the dense phase waits for the kill at the start of its second epoch
    process = stage("train", tmp_path / "params.yaml", "fcn", *data, "--out", str(out), paused=flag)
    wait_for(flag.is_file, process, timeout=1800)
    assert (dense_work / "last.ckpt").is_file()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=120)
    assert process.returncode != 0 and not out.exists()
    run_id = json.loads((dense_work / "run.json").read_text())["run_id"]
    assert run_id == json.loads((partial_dir(out) / "classifier/run.json").read_text())["run_id"]  # one run
    assert run_status(cfg, run_id) == "KILLED"
    classifier_bytes = (partial_dir(out) / "classifier/best.ckpt").read_bytes()
    train_fcn(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", out, resume=True)  # as --resume does
    assert (out / "fcn.pt").is_file() and (out / "classifier/best.ckpt").read_bytes() == classifier_bytes
    assert torch.load(out / "dense/last.ckpt", weights_only=True)["epoch"] == 2  # all three dense epochs
    assert json.loads((out / "run.json").read_text())["run_id"] == run_id and run_status(cfg, run_id) == "FINISHED"
    history = MlflowClient(tracking_uri=tracking_uri(cfg.logger)).get_metric_history(run_id, "dense_val_loss")
    assert sorted(m.step for m in history) == sorted({m.step for m in history}) and len(history) == 3
