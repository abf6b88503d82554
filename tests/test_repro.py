"""`make repro`'s runner (pipeline/repro.py): a DVC project's independent stages side by side, each
after the stages it depends on, with the cores shared out; a failed stage stops what depends on it."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.hardware import usable_cores
from pipeline.repro import Dag, Running, Scheduler, auto_jobs, critical_paths, job_count
from tests.conftest import PROJECT_ROOT

# Each stage claims the workspace as the project's stages do (pipeline/io/workspace.py), notes when it
# ran and the threads it was given, then writes its output.
STAGE = f"""import json, os, sys, time
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from pipeline.io.workspace import claim_for_dvc_stage
claim_for_dvc_stage("params.yaml")
name, began = sys.argv[1], time.time()
if name == os.environ.get("FAIL_STAGE"):
    sys.exit(3)
time.sleep(1.5)
print("working\\r 50%\\r100%")
with open(name + ".json", "w") as out:
    json.dump({{"began": began, "ended": time.time(), "threads": os.environ.get("OMP_NUM_THREADS")}}, out)
"""

DVC_YAML = """stages:
  first: {cmd: python stage.py first, deps: [stage.py], outs: [first.json]}
  left: {cmd: python stage.py left, deps: [first.json], outs: [left.json]}
  right: {cmd: python stage.py right, deps: [first.json], outs: [right.json]}
  last: {cmd: python stage.py last, deps: [left.json, right.json], outs: [last.json]}
"""


def tool_env(**extra) -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    return {**env, **extra}


@pytest.fixture
def project(tmp_path) -> Path:
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, env=tool_env(), check=True)
    (tmp_path / "stage.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    return tmp_path


def repro(project: Path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.repro", *args], cwd=project, env=tool_env(**env),
                          capture_output=True, text=True, timeout=600)


def ran(project: Path, name: str) -> dict:
    return json.loads((project / f"{name}.json").read_text())


def test_independent_stages_run_side_by_side_each_after_what_it_needs_and_dvc_records_them(project):
    done = repro(project)
    assert done.returncode == 0, done.stdout + done.stderr
    first, left, right, last = (ran(project, n) for n in ("first", "left", "right", "last"))
    assert left["began"] < right["ended"] and right["began"] < left["ended"]  # side by side
    assert min(left["began"], right["began"]) >= first["ended"]
    assert last["began"] >= max(left["ended"], right["ended"])
    assert {s["threads"] for s in (first, left, right, last)} == {str(max(1, usable_cores() // 2))}
    share = max(1, usable_cores() // 2)
    assert f"repro: up to 2 stages at a time, {share} core{'' if share == 1 else 's'} each" in done.stdout
    assert "left | 100%" in done.stdout and "working" not in done.stdout  # a progress bar's last state
    status = subprocess.run(["dvc", "status"], cwd=project, env=tool_env(), capture_output=True, text=True)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    times = json.loads((project / ".dvc/tmp/stage-seconds.json").read_text())
    assert set(times) == {"first", "left", "right", "last"} and min(times.values()) > 1.5
    again = repro(project)
    assert again.returncode == 0, again.stdout
    assert ran(project, "last") == last  # nothing changed: DVC ran no stage again


def test_a_failed_stage_stops_what_depends_on_it_and_names_itself(project):
    done = repro(project, FAIL_STAGE="right")
    assert done.returncode == 1
    assert "stage 'right' failed (exit status" in done.stdout and "failed: right;" in done.stdout
    assert (project / "left.json").is_file() and not (project / "last.json").exists()
    assert "left:" in (project / "dvc.lock").read_text() and "last:" not in (project / "dvc.lock").read_text()


def test_targets_run_with_what_they_depend_on_and_an_unknown_one_is_named(project):
    done = repro(project, "left", "-j", "1", OMP_NUM_THREADS="3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ran(project, "left")["threads"] == "3"  # the user's own setting is kept
    assert not (project / "right.json").exists() and not (project / "last.json").exists()
    wrong = repro(project, "lfet")
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: no stage named lfet in dvc.yaml")
    none = repro(project, "-j", "0")
    assert none.returncode == 2 and "'0' is not a count of stages (1 or more) or auto" in none.stderr


def test_auto_runs_two_stages_at_a_time_then_one_more_per_four_cores_up_to_the_dags_width():
    diamond = Dag(["first", "left", "right", "last"],
                  {"first": set(), "left": {"first"}, "right": {"first"}, "last": {"left", "right"}})
    chain = Dag(["first", "left"], {"first": set(), "left": {"first"}})
    assert (diamond.width(), chain.width()) == (2, 1)
    assert [auto_jobs(cores, 4) for cores in (1, 2, 4, 8, 11, 12, 16, 64)] == [2, 2, 2, 2, 2, 3, 4, 4]
    assert (auto_jobs(16, diamond.width()), auto_jobs(16, chain.width())) == (2, 1)
    assert (job_count("auto"), job_count("3")) == (None, 3)
    for wrong in ("0", "-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a count of stages"):
            job_count(wrong)


def test_a_stage_line_shows_the_last_state_of_a_progress_bar():
    class Stream:
        def __init__(self, chunks):
            self.chunks = list(chunks)

        def read(self):
            return self.chunks.pop(0) if self.chunks else None

    scheduler = Scheduler(None, 1, [], {})
    scheduler.out = io.BytesIO()
    job = Running(None, 0.0)
    stream = Stream([b"Epoch 0:  10%\rEpoch 0:  60", b"%\rEpoch 0: 100%\r\nval ", b"", b"loss 0.1"])
    for final in (False, False, False, True):
        scheduler.relay("train@x", job, stream, final)
    assert scheduler.out.getvalue() == b"train@x | Epoch 0: 100%\ntrain@x | val loss 0.1\n"


def test_the_longest_known_path_to_the_end_of_the_dag_goes_first():
    dag = Dag(["first", "left", "right", "last"],
              {"first": set(), "left": {"first"}, "right": {"first"}, "last": {"left", "right"}})
    paths = critical_paths(dag, {"first": 1.0, "left": 2.0, "right": 5.0, "last": 3.0})
    assert paths == {"first": 9.0, "left": 5.0, "right": 8.0, "last": 3.0}
    assert dag.limited_to(["left"]).order == ["first", "left"]
