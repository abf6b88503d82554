"""`make test` runs with `--dist loadgroup`: the tests of one `xdist_group` run on one worker, so a
group's module fixture (a trained model, a prepared dataset) is built once, not once per worker; a
session fixture that several workers wait for is built in parts, side by side, once each; the
controller, which runs no test, loads tests/conftest.py without the heavy libraries."""

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import PROJECT_ROOT, built_in_parts

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


def build_parts(root: Path, start: multiprocessing.Barrier) -> None:
    def build(part: str) -> Callable[[Path], None]:
        def make(folder: Path) -> None:
            with open(folder / f"{part}.by", "x") as out:  # "x": a second build of the part fails here
                out.write(str(os.getpid()))
            time.sleep(1.0)
        return make

    start.wait()
    built_in_parts(root, {part: build(part) for part in "abcd"})
    assert all((root / f"{part}.by").is_file() for part in "abcd")  # each returns once all parts are built


def test_workers_that_need_a_shared_fixture_build_its_parts_side_by_side_once_each(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    workers = [context.Process(target=build_parts, args=(tmp_path, start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    builders = {part: (tmp_path / f"{part}.by").read_text() for part in "abcd"}
    assert set(builders.values()) == {str(worker.pid) for worker in workers}, builders  # both built parts


def test_the_controller_loads_the_tests_conftest_without_torch_lightning_or_mlflow():
    """`pytest -n N`'s controller imports tests/conftest.py before it starts the workers, and runs no
    test: importing torch, Lightning and MLflow there held every worker back by about 8 s of one core."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}  # as in the controller
    loaded = subprocess.run([sys.executable, "-c", "import sys, tests.conftest; "
                             "print(sorted({'torch', 'lightning', 'mlflow'} & set(sys.modules)))"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
