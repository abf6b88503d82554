"""`make test` runs with `--dist loadgroup`: the tests of one `xdist_group` run on one worker, so a
group's module fixture (a trained model, a prepared dataset) is built once, not once per worker."""

import subprocess
import sys

GROUPED = """
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("shared")


@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    Path(f"{__name__}-{i}.worker").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_the_tests_of_a_group_run_on_one_worker(tmp_path):
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(GROUPED)
    (tmp_path / "test_alone.py").write_text("def test_alone():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's settings and conftest
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                           "-q", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {path.name: path.read_text() for path in tmp_path.glob("*.worker")}
    assert len(workers) == 8, workers
    assert len(set(workers.values())) == 1, f"one group ran on several workers: {workers}"
