"""Stage entry points turn user errors into one clear line and exit status 1."""

import os
import subprocess
import sys

from pipeline.config import PROJECT_ROOT, compose, to_yaml


def test_prepare_stage_reports_a_missing_dataset_without_traceback(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(compose(["data=voc", f"data.root={tmp_path / 'no-such-folder'}"])))
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "stages" / "prepare.py"), "--params", str(params),
                           "--out", str(tmp_path / "out"), "--reports", str(tmp_path / "r"),
                           "--metrics", str(tmp_path / "m.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Dataset folder") and "data.root=" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


SCRIPT = """
import atexit, sys, threading, time
from pipeline.cli import run_script, user_errors

@user_errors
def main():
    atexit.register(lambda: open(sys.argv[2], "w").write("exit handlers ran"))
    if sys.argv[1] == "thread":  # a thread still working: the ordinary exit waits for it
        threading.Thread(target=lambda: (time.sleep(0.5), open(sys.argv[2] + ".thread", "w").write("done"))).start()
    print("output without a newline", end="")
    sys.stderr.write("and its error stream")
    if sys.argv[1] == "mistake":
        raise ValueError("a user error")

run_script(main)
"""


def test_a_stage_run_as_a_script_exits_with_its_status_its_streams_and_exit_handlers_done(tmp_path):
    """run_script skips the interpreter's teardown, never what the stage leaves behind."""
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as DVC's pipes are
    for case, status in (("ok", 0), ("mistake", 1), ("thread", 0)):
        mark = tmp_path / case
        done = subprocess.run([sys.executable, "-c", SCRIPT, case, str(mark)], capture_output=True, text=True,
                              timeout=60, cwd=PROJECT_ROOT, env=buffered)
        assert done.returncode == status, (case, done.stderr)
        assert done.stdout == "output without a newline"
        assert done.stderr.startswith("and its error stream")
        assert ("error: a user error" in done.stderr) == (case == "mistake")
        assert mark.read_text() == "exit handlers ran"
    assert (tmp_path / "thread.thread").read_text() == "done"


def test_the_train_stage_hands_its_folders_and_resume_to_the_training_and_notes_its_seconds(tmp_path, monkeypatch):
    """`train.py <model> --resume` (what a user runs after a killed training; tests/test_crash_safety.py
    resumes through the same function in its own process) reaches the task's training as resume=True."""
    import json
    import runpy
    import signal

    from omegaconf import OmegaConf

    import pipeline.classify.train as classifier_training
    from tests.conftest import tiny_config

    calls = []

    def training(cfg, manifest, pipelines, out, **kwargs):
        calls.append(((manifest, pipelines, out), kwargs))
        os.makedirs(out, exist_ok=True)
        (tmp_path / "model" / "run.json").write_text(json.dumps({"run_id": "r"}))
        return {"metrics": {}, "epochs": 0, "run_id": "r"}

    monkeypatch.setattr(classifier_training, "train_classifier", training)
    OmegaConf.save(tiny_config(tmp_path), tmp_path / "params.yaml")
    main = runpy.run_path(str(PROJECT_ROOT / "stages/train.py"))["main"]
    handler = signal.getsignal(signal.SIGTERM)  # the stage's own (SIGTERM unwinds it) is not this process's
    try:
        for extra, resume in (([], False), (["--resume"], True)):
            main(["classifier", "--params", str(tmp_path / "params.yaml"), "--manifest", "m.json", "--pipelines", "p",
                  "--out", str(tmp_path / "model"), *extra])
            assert calls.pop() == (("m.json", "p", str(tmp_path / "model")),
                                   {"resume": resume, "preview": "reports/augment/classifier_preview.png"})
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert json.loads((tmp_path / "model/run.json").read_text())["train_seconds"] >= 0
