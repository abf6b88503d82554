"""One pipeline run per workspace: a second `dvc` process's stage stops at once, a run whose
params.yaml changed under it stops, a claim of a `dvc` process that has ended is taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.io.workspace import CLAIM, claim_workspace
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield psutil.Process(process.pid)
    process.kill()
    process.wait()


def test_a_second_run_stops_at_once_and_a_changed_params_file_stops_the_first(tmp_path, sleeper):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    claim_workspace(params, tmp_path, sleeper)  # the first `dvc exp run`'s first stage
    claim_workspace(params, tmp_path, sleeper)  # ... and its next one
    with pytest.raises(ValueError, match=rf"another pipeline run is using this workspace \(.*pid {sleeper.pid}\); "
                                         r"wait for it, or queue this one \(dvc exp run --queue"):
        claim_workspace(params, tmp_path, psutil.Process())  # a stage of a second `dvc` process
    params.write_text("seed: 2\n")  # the second run's -S, written before its stage stopped
    with pytest.raises(ValueError, match="params.yaml changed while this pipeline run was going"):
        claim_workspace(params, tmp_path, sleeper)
    sleeper.kill()
    sleeper.wait()
    claim_workspace(params, tmp_path, psutil.Process())  # the first run has ended: its claim is stale
    assert str(os.getpid()) in (tmp_path / CLAIM).read_text()


def fake_dvc(folder: Path) -> Path:
    """A `dvc` that runs its argument through a shell, as DVC runs a stage's command; params.yaml beside."""
    fake = folder / "bin/dvc"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport subprocess, sys\nsys.exit(subprocess.call(sys.argv[1], shell=True))\n")
    fake.chmod(0o755)
    (folder / "params.yaml").write_text("seed: 1\n")
    return fake


def test_a_stage_under_dvc_finds_its_dvc_process_and_a_stage_run_by_hand_claims_nothing(tmp_path):
    fake = fake_dvc(tmp_path)
    stage = (f"{sys.executable} -c 'import sys; sys.path.insert(0, \"{PROJECT_ROOT}\"); "
             "from pipeline.io.workspace import claim_for_dvc_stage, dvc_process; "
             "claim_for_dvc_stage(\"params.yaml\"); print(dvc_process().pid)'")
    env = {**os.environ, "DVC_STAGE": "prepare"}
    done = subprocess.run([str(fake), stage], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    claim = (tmp_path / CLAIM).read_text()
    assert f'"pid": {done.stdout.strip()}' in claim and "params_sha256" in claim
    (tmp_path / CLAIM).unlink()
    env.pop("DVC_STAGE")
    assert subprocess.run([str(fake), stage], cwd=tmp_path, env=env, timeout=60).returncode == 0
    assert not (tmp_path / CLAIM).exists()


def test_a_stage_stops_when_its_dvc_process_is_killed(tmp_path):
    fake = fake_dvc(tmp_path)
    stage = (f"{sys.executable} -c 'import sys, time; sys.path.insert(0, \"{PROJECT_ROOT}\"); "
             "from pipeline.io.workspace import claim_for_dvc_stage; claim_for_dvc_stage(\"params.yaml\"); "
             "open(\"claimed\", \"w\").close(); time.sleep(120)'")
    dvc = subprocess.Popen([str(fake), stage], cwd=tmp_path, env={**os.environ, "DVC_STAGE": "train@fcn"})
    deadline = time.monotonic() + 60
    while not (tmp_path / "claimed").exists():
        assert time.monotonic() < deadline and dvc.poll() is None
        time.sleep(0.1)
    stages = psutil.Process(dvc.pid).children(recursive=True)
    (child,) = [p for p in stages if p.cmdline()[:2] == [sys.executable, "-c"]]
    dvc.kill()  # as a killed `dvc exp run` (SIGKILL: nothing of it runs on)
    dvc.wait()
    child.wait(timeout=20)  # the stage stops within its next check (it would sleep 120 s on)
