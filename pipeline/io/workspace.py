"""One pipeline run per workspace at a time.

DVC lets a second `dvc exp run` start in a workspace where one is running: it writes its params
to params.yaml at once, so the first run's later stages would train with the second one's
params and register that model as theirs. Each stage that DVC runs claims the workspace for the
`dvc` process above it, or for `make repro`'s runner (pipeline/repro.py) that started that `dvc`
(``.dvc/tmp/pipeline-run.json``: its pid, start time and params.yaml's digest when it claimed it):

- a stage of another `dvc` process that is still alive stops at once, pointing to
  `dvc exp run --queue` and `--temp` (each runs in a copy of the project of its own);
- a stage of the owning run whose params.yaml no longer has the digest it started with stops
  too: the run's stages would not all have used the same params.

A claim whose `dvc` process has ended is stale and taken over. A stage whose `dvc` process ends
(killed) stops too. Stages run by hand (no ``$DVC_STAGE``) claim nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil

CLAIM = Path(".dvc/tmp/pipeline-run.json")
# Set by pipeline/repro.py for the stages it starts (its pid): their run is the runner's.
RUNNER_ENV = "PIPELINE_REPRO_PID"


def dvc_process() -> psutil.Process | None:
    """The process that runs this stage's pipeline: `make repro`'s runner (pipeline/repro.py, which
    starts a `dvc` process per stage) when it is above this one, else the nearest `dvc` process
    above (DVC runs a stage's command through a shell)."""
    with contextlib.suppress(psutil.Error):
        parents = psutil.Process().parents()
        runner = os.environ.get(RUNNER_ENV, "")
        for process in parents:
            if runner.isdigit() and process.pid == int(runner):
                return process
        for process in parents:
            if any(Path(arg).name == "dvc" for arg in process.cmdline()[:3]):  # dvc, python dvc, python -m dvc
                return process
    return None


def alive(claim: dict) -> bool:
    with contextlib.suppress(psutil.Error):
        return abs(psutil.Process(claim["pid"]).create_time() - claim["started"]) < 1e-3
    return False


def claim_workspace(params: Path, root: Path, owner: psutil.Process | None) -> None:
    """Claim the workspace ``root`` for ``owner`` (a `dvc` process), or stop with the reason."""
    if owner is None:
        return
    digest = hashlib.sha256(params.read_bytes()).hexdigest()
    me = {"pid": owner.pid, "started": owner.create_time(), "command": " ".join(owner.cmdline()[1:])[:300],
          "params_sha256": digest}
    path = root / CLAIM
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # between the stages of two runs that start at once
        claim = json.loads(path.read_text()) if path.is_file() else None
        if claim and alive(claim):
            if (claim["pid"], claim["started"]) != (me["pid"], me["started"]):
                raise ValueError(f"another pipeline run is using this workspace ({claim['command']}, pid "
                                 f"{claim['pid']}); wait for it, or queue this one (dvc exp run --queue ..., then "
                                 "dvc queue start) or run it apart (dvc exp run --temp ...): each runs in a copy "
                                 "of the project of its own")
            if claim["params_sha256"] != digest:
                raise ValueError(f"{params} changed while this pipeline run was going (another `dvc exp run` in "
                                 "this workspace?): its stages would not all use the same params; run it again")
            return
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(me))
        os.replace(tmp, path)


def stop_with(owner: psutil.Process, every: float = 2.0) -> None:
    """SIGTERM this process once ``owner`` has ended: a stage whose `dvc` was killed stops (its
    training ends its run KILLED and stays resumable) instead of writing outputs no one will
    record."""
    def watch() -> None:
        while owner.is_running() and owner.status() != psutil.STATUS_ZOMBIE:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="dvc-watch", daemon=True).start()


WATCHED: set[int] = set()


def claim_for_dvc_stage(params: Path) -> None:
    """Called by each stage with its params file: when DVC runs the stage, claims the workspace and
    stops the stage if its `dvc` process ends. The workspace is the stage's folder (not $DVC_ROOT,
    which names the project also for the queued experiments that DVC runs in copies of their own)."""
    if not os.environ.get("DVC_STAGE"):
        return
    owner = dvc_process()
    claim_workspace(Path(params), Path.cwd(), owner)
    if owner is not None and owner.pid not in WATCHED:
        WATCHED.add(owner.pid)
        stop_with(owner)
