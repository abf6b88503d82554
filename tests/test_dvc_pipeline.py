"""`dvc repro` and `dvc exp run` of the real dvc.yaml in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.tasks import TASKS
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def tool_env() -> dict:
    """The environment with this venv's dvc first on PATH and a git identity."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def run(cmd: list[str], cwd: Path, stdout_only: bool = False) -> str:
    # the timeout is a net against a hang, not a speed check (README's times come from timed runs)
    done = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout if stdout_only else done.stdout + done.stderr


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The working tree's files (tracked or not ignored), committed in a fresh git repo."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    dest = tmp_path / "repo"
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for name in ("data", "reports", "metrics", "models", "bundles", "dvc.lock"):
        target = dest / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    run(["git", "init", "-q"], dest)
    run(["python", "stages/sync_params.py", "data=synthetic_tiny"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    return dest


def shown_metrics(repo: Path) -> dict[str, dict]:
    """`dvc metrics show`: {metrics file: its numbers}."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))[""]["data"]
    return {path: entry["data"] for path, entry in shown.items()}


def assert_evaluated(repo: Path, headlines: dict[str, dict], model: str) -> None:
    """The model's headline in `dvc metrics show` (the registry's keys and the training's seconds) and
    its full results naming the training's MLflow run."""
    task = TASKS[model]
    assert set(headlines[f"metrics/{model}.json"]) == {k for k, _ in task.headline} | {task.seconds_key}
    assert headlines[f"metrics/{model}.json"][task.seconds_key] > 0
    details = json.loads((repo / f"reports/{model}.json").read_text())
    assert len(details["mlflow_run_id"]) == 32


def assert_evaluated_and_exported(repo: Path, headlines: dict[str, dict], model: str) -> None:
    """:func:`assert_evaluated`, and the model's bundle, parity-checked."""
    assert_evaluated(repo, headlines, model)
    assert (repo / "bundles" / model / "model.onnx").is_file(), model
    assert json.loads((repo / f"reports/export_{model}.json").read_text())["onnx_max_abs_diff"] < 1e-3, model


def declared_stages(repo: Path) -> set[str]:
    return set(run(["dvc", "stage", "list", "--name-only"], repo).split())


def steps_of(model: str) -> tuple[str, ...]:
    """The stages of one model's branch of the DAG, in the order they run."""
    return ("prepare", "augment", *(f"{step}@{model}" for step in ("train", "evaluate", "export")))


def chain(model: str) -> set[str]:
    return set(steps_of(model))


def assert_plotted(repo: Path, *tables: str) -> None:
    """Each table (a file, or a folder's prefix) is among `dvc plots show`'s vega plots."""
    # (stdout: DVC warns on stderr about the plots of the models a run left out)
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo, stdout_only=True))["data"]
    for table in tables:
        curves = [name for name in plots if name.startswith(table)]
        assert curves and all(plots[name][0]["type"] == "vega" for name in curves), (table, sorted(plots))


# The default pipeline at its smallest: the tiny data, two epochs per training (a frozen one and a
# fine-tuning one where the task has both), the heatmap comparison at one scale.
SMALLEST = ["data=synthetic_tiny", "train.classifier.epochs=2", "train.classifier.freeze_epochs=1",
            "train.fcn.epochs=1", "train.fcn.dense.epochs=1", "train.detector.epochs=2",
            "train.detector.freeze_epochs=1", "train.multilabel.epochs=2", "train.multilabel.freeze_epochs=1",
            "evaluate.fcn.scales=[1.0]", "evaluate.fcn.compare_scales=[1.0]"]


def assert_chains_in_order(out: str, models) -> None:
    for model in models:  # the DAG's branches
        order = [out.index(f"Running stage '{s}'") for s in steps_of(model)]
        assert order == sorted(order), model


def test_dvc_repro_runs_prepare_then_is_a_no_op(repo_copy):
    run(["python", "stages/sync_params.py", *SMALLEST], repo_copy)
    # the built-in data's DAG: every model's three stages, each after the one before it
    dag = [line.strip().rstrip(";") for line in run(["dvc", "dag", "--dot"], repo_copy).splitlines()]
    edges = {tuple(part.strip('"') for part in line.split(" -> ")) for line in dag if " -> " in line}
    models = ("classifier", "fcn", "detector", "multilabel")
    assert {line.strip('"') for line in dag if line.startswith('"') and " -> " not in line} == set().union(
        *map(chain, models))
    for model in models:
        steps = steps_of(model)
        assert set(zip(steps, steps[1:])) <= edges, (model, sorted(edges))
    # run for real with the heatmap network's chain alone, the one export run through DVC here: the
    # classifier's and the detector's chains run up to their evaluation in the tests below (image folders,
    # VOC; their bundles are made and checked in tests/export), the multi-label model's steps in
    # tests/multilabel (train, evaluate, export, predict); the stages' commands are one per step, whatever
    # the model
    run(["python", "stages/sync_params.py", *SMALLEST, "data.models=[fcn]"], repo_copy)
    run(["git", "commit", "-qam", "the smallest settings"], repo_copy)
    out = run(["dvc", "repro"], repo_copy)
    assert "Running stage 'prepare'" in out
    assert stages_run(out) == {"prepare", "augment", "train@fcn", "evaluate@fcn", "export@fcn"}
    assert_chains_in_order(out, ("fcn",))
    for name in ("detector_train.json", "detector_eval.json", "classifier_train.json", "classifier_eval.json"):
        assert (repo_copy / "data/augment" / name).is_file()
    assert (repo_copy / "reports/augment/detector_preview.png").is_file()
    manifest = json.loads((repo_copy / "data/prepared/manifest.json").read_text())
    assert len(manifest["samples"]) == 24 + 2
    for name in ("stats.json", "rejected.json"):
        assert (repo_copy / "data/prepared" / name).is_file()
    for name in ("samples.png", "histograms.png"):
        assert (repo_copy / "reports/prepare" / name).is_file()
    metrics = json.loads((repo_copy / "metrics/prepare.json").read_text())
    assert metrics["images"] + metrics["rejected"] == 26
    again = run(["dvc", "repro"], repo_copy)
    assert "Running stage" not in again and "didn't change" in again
    headlines = shown_metrics(repo_copy)
    assert headlines["metrics/prepare.json"]["images"] == 26
    assert_evaluated_and_exported(repo_copy, headlines, "fcn")
    assert (repo_copy / "reports/fcn/overlays.png").is_file()
    assert (repo_copy / "models/fcn/fcn.pt").is_file() and (repo_copy / "models/fcn/classifier/best.ckpt").is_file()
    assert_plotted(repo_copy, "models/fcn/dense/epochs/dense_val_loss.csv", "models/fcn/classifier/epochs/val_loss.csv")
    # display and tracking settings are not stage params: changing them re-runs nothing
    params = (repo_copy / "params.yaml").read_text()
    for old, new in (("progress_bar: true", "progress_bar: false"), ("experiment: cv-pipeline", "experiment: other")):
        assert old in params
        params = params.replace(old, new)
    (repo_copy / "params.yaml").write_text(params)
    assert "Running stage" not in run(["dvc", "repro"], repo_copy)
    run(["git", "checkout", "params.yaml"], repo_copy)
    # A DVC remote (a local folder here) receives the outputs; a fresh clone pulls them and has
    # nothing to re-run.
    run(["dvc", "remote", "add", "-d", "store", str(repo_copy.parent / "dvc-remote")], repo_copy)
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "pipeline run"], repo_copy)
    assert "pushed" in run(["dvc", "push"], repo_copy)
    clone = repo_copy.parent / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], repo_copy.parent)
    run(["dvc", "pull"], clone)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone)
    for name in ("models/fcn/fcn.pt", "bundles/fcn/model.onnx", "data/prepared/manifest.json"):
        assert (clone / name).read_bytes() == (repo_copy / name).read_bytes(), name
    assert "Running stage" not in run(["dvc", "repro"], clone)


def tiny_copy(source: Path, dest: Path, folders: dict[str, str], count: int) -> Path:
    """The first ``count`` files of each of ``folders`` ({folder: suffix of the files}), matched by stem."""
    first = sorted((source / next(iter(folders))).iterdir())[:count]
    for folder, suffix in folders.items():
        (dest / folder).mkdir(parents=True)
        for path in first:
            shutil.copy2(source / folder / (path.stem + suffix), dest / folder)
    return dest


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def test_classification_folders_run_the_classifier_chain_only_and_queued_experiments_log_to_the_projects_store(
        repo_copy, shared_datasets, tmp_path):
    source = shared_datasets / "dolphins-and-seahorses"
    data = tmp_path / "folders"
    for name in ("dolphin", "seahorse"):
        (data / name).mkdir(parents=True)
        for path in sorted((source / name).iterdir())[:8]:
            shutil.copy2(path, data / name)
    common = ["-S", "data=folders", "-S", f"data.root={data}"]
    # a detector on image folders is refused before any work, in one line
    refused = subprocess.run(["dvc", "exp", "run", *common, "-S", "data.models=[classifier,detector]"],
                             cwd=repo_copy, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert ("data.models has 'detector', which needs detection data, but data.format=folders is classification "
            "data; train only what fits with -S 'data.models=[classifier]'") in refused.stdout + refused.stderr
    assert not (repo_copy / "data/prepared").exists()
    common += ["-S", "model/classifier=small_alexnet", "-S", "train.classifier.epochs=1"]
    # run up to the evaluation (the export's command is every model's: the heatmap network's runs above)
    out = run(["dvc", "exp", "run", *common, "evaluate@classifier"], repo_copy)
    assert stages_run(out) == {"prepare", "augment", "train@classifier", "evaluate@classifier"}
    assert declared_stages(repo_copy) == chain("classifier")
    details = json.loads((repo_copy / "reports/classifier.json").read_text())
    assert details["val"]["count"] > 0
    headlines = shown_metrics(repo_copy)
    assert headlines["metrics/classifier.json"]["acc"] == round(details["val"]["accuracy"], 4)
    assert_evaluated(repo_copy, headlines, "classifier")
    assert (repo_copy / "models/classifier/best.ckpt").is_file()
    assert (repo_copy / "reports/classifier/confusion_val.png").is_file()
    assert_plotted(repo_copy, "models/classifier/epochs/val_loss.csv")
    # this run committed, experiments queued on it: each runs in a temporary copy of the repository,
    # from the prepared data in DVC's cache, and its training still logs to the project's store
    queued_on(repo_copy, common, first_run=details["mlflow_run_id"])


def queued_on(repo: Path, overrides: list[str], first_run: str) -> None:
    """`dvc exp run --queue -S 'x=a,b'` + `dvc queue start` on the committed run of ``overrides``
    (params.yaml is composed from conf/ and the overrides): each experiment runs in a temporary copy
    of the repository, and its training still logs to the project's MLflow store ($DVC_ROOT),
    beside ``first_run`` (the workspace's training)."""
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "the classifier on image folders"], repo)
    run(["dvc", "exp", "run", "--queue", *overrides, "-S", "train.classifier.lr=0.001,0.01", "evaluate@classifier"],
        repo)
    run(["dvc", "queue", "start", "--jobs", "1"], repo)
    # waited on through git, where each finished experiment leaves a ref (a `dvc queue status` takes
    # seconds of the CPU the experiments need); then the queue's own word
    baseline = run(["git", "rev-parse", "HEAD"], repo).strip()
    deadline = time.monotonic() + 600
    while True:
        refs = run(["git", "for-each-ref", "--format=%(refname)", f"refs/exps/{baseline[:2]}/{baseline[2:]}/",
                    "refs/exps/celery/failed"], repo).split()
        if len(refs) >= 2 or "refs/exps/celery/failed" in refs:
            break
        assert time.monotonic() < deadline, run(["dvc", "queue", "status"], repo)
        time.sleep(1)
    while True:
        status = run(["dvc", "queue", "status"], repo)
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert status.count("Success") == 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    experiments = {rev["name"]: rev for entry in shown for e in entry.get("experiments") or []
                   for rev in e["revs"]}  # the baseline commit's experiments (the workspace has none)
    assert len(experiments) == 2, shown
    log = run(["dvc", "queue", "logs", next(iter(experiments))], repo)
    assert "Stage 'prepare' didn't change, skipping" in log and "Running stage 'train@classifier'" in log, log
    lrs, run_ids = set(), {}
    for name, rev in experiments.items():
        accuracy = rev["data"]["metrics"]["metrics/classifier.json"]["data"]["acc"]
        assert 0 <= accuracy <= 1
        lrs.add(rev["data"]["params"]["params.yaml"]["data"]["train"]["classifier"]["lr"])
        details = run(["git", "show", f"{rev['rev']}:reports/classifier.json"], repo)  # the row's run
        run_ids[name] = json.loads(details)["mlflow_run_id"]
    assert lrs == {0.001, 0.01}
    store = repo / "mlruns/mlflow.db"
    assert store.is_file(), "the queued experiments logged somewhere else than the project's store"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("cv-pipeline").experiment_id],
                              filter_string="tags.stage = 'train@classifier'")
    assert first_run in {r.info.run_id for r in runs} and len(runs) == 3
    runs = [r for r in runs if r.info.run_id != first_run]
    assert {r.data.tags.get("dvc_experiment") for r in runs} == set(experiments)
    assert {r.data.tags["dvc_experiment"]: r.info.run_id for r in runs} == run_ids  # each row leads to its run
    assert {r.data.params["train.classifier.lr"] for r in runs} == {"0.001", "0.01"}
    assert all("eval_val_accuracy" in r.data.metrics for r in runs)  # evaluation logged to the same run


def test_voc_detection_runs_the_detector_alone_and_the_patch_classifier_is_one_override_away(repo_copy,
                                                                                             shared_datasets, tmp_path):
    data = tiny_copy(shared_datasets / "raccoon", tmp_path / "raccoon", {"annotations": ".xml", "images": ".jpg"}, 14)
    preset = ["data=raccoon", f"data.root={data}", "data.duplicates=reject"]
    # the stages an override declares (the queued experiments' test runs the patch classifier on detection data)
    run(["python", "stages/sync_params.py", *preset, "data.models=[classifier,detector]"], repo_copy)
    assert declared_stages(repo_copy) == chain("classifier") | chain("detector")
    run(["git", "checkout", "params.yaml"], repo_copy)
    # the detection presets train the detector alone (run up to its evaluation, as the classifier's above)
    out = run(["dvc", "exp", "run", *(arg for value in preset for arg in ("-S", value)),
               "-S", "train.detector.epochs=1", "-S", "train.detector.freeze_epochs=0",
               "-S", "augment.detector.input_size=[96,96]", "evaluate@detector"], repo_copy)
    assert stages_run(out) == {"prepare", "augment", "train@detector", "evaluate@detector"}
    assert declared_stages(repo_copy) == chain("detector")
    data_params = yaml.safe_load((repo_copy / "params.yaml").read_text())["data"]
    assert (data_params["format"], data_params["models"]) == ("voc", ["detector"])
    prepared = json.loads((repo_copy / "metrics/prepare.json").read_text())
    assert (prepared["images"], prepared["rejected"]) == (14, 0)
    detector = json.loads((repo_copy / "reports/detector.json").read_text())
    assert detector["val"]["images"] > 0
    assert_evaluated(repo_copy, shown_metrics(repo_copy), "detector")
    assert (repo_copy / "reports/detector/predictions_val.png").is_file()
    assert_plotted(repo_copy, "reports/detector_tables/pr/val/", "reports/detector_tables/confidence/val.csv",
                   "reports/detector_tables/confusion/val.csv", "models/detector/epochs/val_map_50.csv")
