import atexit
import functools
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock, Timeout
from omegaconf import OmegaConf

import pipeline  # noqa: F401  (sets offline/telemetry environment defaults)
from pipeline.allocator import keep_freed_memory
from pipeline.collector import collect_less_often
from pipeline.config import compose
from pipeline.tasks import get_task

# Nothing here imports torch, Lightning or MLflow at module level: `pytest -n N`'s controller loads
# this file too and runs no test (about 8 s of one core before the workers start); the workers
# import them with the test modules.

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("CVPIPE_SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))


TEST_FOLDERS = itertools.count()


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's tmp_path, one folder down, under a name this process gives once. pytest 9.1 numbers a
    test's folder after those that exist, so the folder of a passed test (deleted) comes back under the
    same name for the next test whose name starts alike; MLflow keeps one store per address for the
    process, and would go on writing to the deleted one ("attempt to write a readonly database")."""
    folder = tmp_path / f"t{next(TEST_FOLDERS)}"
    folder.mkdir()
    return folder


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


def prepare_and_augment(cfg, root: Path, seed: int = 42) -> Path:
    """The `prepare` and `augment` stages of ``cfg`` into ``root`` (prepared/, augment/); the manifest."""
    from pipeline.augment.stage import run_augment
    from pipeline.data.prepare import prepare

    prepare(cfg.data, seed, root / "prepared", root / "rp", root / "m.json")
    run_augment(cfg.augment, root / "prepared/manifest.json", root / "augment", root / "ra", seed)
    return root / "prepared/manifest.json"


WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set in each process of `pytest -n N` (pytest-xdist)
if WORKER:
    # `make test` runs a worker per core and one more: one thread each, in this process and in the
    # stages and commands it starts (torch's default, a thread per core, would oversubscribe the cores).
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def shared_folder(tmp_path_factory, name: str) -> Path:
    """A folder of the whole test session (all workers') for caches that build themselves atomically."""
    if not WORKER:
        return tmp_path_factory.mktemp(name)
    root = tmp_path_factory.getbasetemp().parent / name
    root.mkdir(exist_ok=True)
    return root


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` filled by ``build``, once per test session: with several workers the first
    one builds it under a lock in the session's shared temporary folder and the others reuse it."""
    root = shared_folder(tmp_path_factory, name)
    with FileLock(f"{root}.lock"):
        if not (root / ".built").is_file():
            build(root)
            (root / ".built").touch()
    return root


def built_in_parts(root: Path, parts: dict[str, Callable[[Path], None]]) -> Path:
    """``root`` (a :func:`shared_folder`) filled by each of ``parts`` ({part: what builds it}), once per
    test session. With several workers each part is built by the first worker to reach it: a worker
    that finds a part being built takes the next one nobody has started, then waits for the others
    (instead of every worker waiting, with one core busy, while one of them builds everything)."""

    def build(part: str) -> None:
        if not (root / f".{part}.built").is_file():
            parts[part](root)
            (root / f".{part}.built").touch()

    started_elsewhere = []
    for part in parts:
        lock = FileLock(f"{root}.{part}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            started_elsewhere.append(part)
            continue
        try:
            build(part)
        finally:
            lock.release()
    for part in started_elsewhere:
        with FileLock(f"{root}.{part}.lock"):
            build(part)  # nothing when its builder finished; its error again when it failed
    return root


# The sweeps' prepared data (sweep.data_cache): keyed by the config it was made from, each entry
# written whole or not at all (pipeline/sweep/data.py), so every sweep of the session shares it.
@pytest.fixture(scope="session")
def sweep_data_cache(tmp_path_factory) -> Path:
    return shared_folder(tmp_path_factory, "sweep-data")


def pytest_configure(config) -> None:
    keep_freed_memory()  # as the stages do: the tests train in their own processes too
    collect_less_often()


def pytest_collection_modifyitems(items) -> None:
    """The slow tests first: the workers share them from the start instead of one finishing alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# A tiny prepared synthetic dataset with its saved pipelines, for training tests.
@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "tiny",
                      lambda root: prepare_and_augment(compose(["data=synthetic_tiny"]), root))


@functools.cache
def empty_store_template() -> Path:
    """An empty MLflow store made once per test process (removed at its exit)."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="mlflow-store-"))
    atexit.register(shutil.rmtree, folder, True)
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def empty_store(path: Path) -> Path:
    """``path`` holding an empty MLflow store, unless it holds one already: a copy of the process's
    template, where MLflow would run its schema migrations for each new store (about 1.2 s on 2 cores)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        copy = path.with_name(f".{path.name}.{os.getpid()}")
        shutil.copyfile(empty_store_template(), copy)
        try:  # whole or not at all, and never over a store another process made (and may have written) meanwhile
            os.link(copy, path)
        except FileExistsError:
            pass
        finally:
            copy.unlink()
    return path


def tiny_config(tmp_path: Path, *overrides: str, seed_store: bool = True):
    """The project config for the tiny data, with an MLflow store of the test's own (made empty
    beforehand unless ``seed_store`` is false)."""
    if seed_store:
        empty_store(tmp_path / "mlruns/mlflow.db")
    cfg = compose(["data=synthetic_tiny", "logger.progress_bar=false", *overrides])
    cfg.logger = OmegaConf.merge(cfg.logger, {"local_store": str(tmp_path / "mlruns/mlflow.db"),
                                              "artifact_root": str(tmp_path / "mlruns/artifacts"),
                                              "tracking_uri": None})
    return cfg


# The tiny training of each task (its overrides; the training is the task's, pipeline/tasks.py), the
# longest first (the session's bundles are built in this order).
TRAIN = {  # one epoch at twice the default learning rate: enough for the detector's classes' APs to differ
         "detector": ["train.detector.epochs=1", "train.detector.freeze_epochs=0", "train.detector.batch_size=8",
                      "train.detector.lr=0.004"],
         "fcn": ["train.fcn.epochs=1", "train.fcn.dense.epochs=1"],
         "classifier": ["train.classifier.epochs=1", "train.classifier.freeze_epochs=0",
                        "model/classifier=small_alexnet"],
         "multilabel": ["train.multilabel.epochs=2", "train.multilabel.freeze_epochs=0",
                        "model/classifier@model.multilabel=small_alexnet"]}


# What a task's bundle is exported with beyond the defaults: the detector's also carries an int8 model, which
# tests/export/test_int8.py checks (its export is the slowest of the four, so it is not exported again there).
EXPORT = {"detector": ["export.int8.enabled=true", "export.int8.calibration_images=16", "export.int8.max_drop=1.0"]}


# One tiny trained and exported model per task (export, predict, bad-input and load tests), the
# tasks built side by side by the workers that need them, into one MLflow store.
@pytest.fixture(scope="session")
def bundles(tiny_data, tmp_path_factory) -> Path:
    return built_in_parts(shared_folder(tmp_path_factory, "bundles"),
                          {task: functools.partial(train_and_export, task, tiny_data) for task in TRAIN})


def train_and_export(task: str, tiny_data: Path, root: Path) -> None:
    from pipeline.export.build import export_bundle

    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    cfg = tiny_config(root, *TRAIN[task], *EXPORT.get(task, []))
    get_task(task).step("train")(cfg, manifest, pipelines, root / "models" / task)
    metrics = None
    if task == "multilabel":  # its bundle carries the thresholds its evaluation chose
        metrics = root / "multilabel.json"
        get_task(task).step("evaluate")(cfg, manifest, pipelines, root / "models" / task, metrics, root / "reports",
                                        root / "tables")
    checked = export_bundle(task, cfg, root / "models" / task, manifest, metrics, root / task,
                            root / f"parity_{task}.json")
    assert checked["registry"]["version"] == 1
    assert checked["registry"]["promoted"] == (metrics is not None)  # no metric: no alias


# $MLFLOW_TRACKING_URI as the session found it. Lightning's MLFlowLogger and MLflow's fluent API
# call mlflow.set_tracking_uri, which exports the variable: after an in-process training it would
# send later tests' runs, and their subprocesses' (sweeps, dvc), to that training's store.
ORIGINAL_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def restore_tracking_uri() -> None:
    if ORIGINAL_TRACKING_URI is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = ORIGINAL_TRACKING_URI


@pytest.fixture(autouse=True)
def no_leaked_tracking_uri():
    """Each test starts and ends with the session's $MLFLOW_TRACKING_URI (session fixtures that
    train run before function fixtures, so both ends are reset)."""
    restore_tracking_uri()
    yield
    restore_tracking_uri()
