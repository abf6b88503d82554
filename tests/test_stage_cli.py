"""Stage entry points turn user errors into one clear line and exit status 1."""

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
