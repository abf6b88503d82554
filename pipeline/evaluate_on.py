"""Evaluate a trained model on another dataset (as Ultralytics' `yolo val data=...`): the dataset is
prepared with the model's classes, run through the model's own eval preprocessing, and scored by
the task's evaluation, which writes the same metrics, pictures and tables as `evaluate@<model>`.
The results are an MLflow run of their own, nested under the training's run.

    python -m pipeline.evaluate_on detector models/detector data=voc \\
        data.root=../shared/datasets/bccd data.images_dir=JPEGImages data.annotations_dir=Annotations

Overrides are Hydra's, as for `dvc exp run -S` (the data, and any evaluation setting); images of a
class the model does not know are rejected at preparation (`unknown_class`) and counted.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pipeline.cli import user_errors
from pipeline.tracking import PARENT_TAG, ensure_experiment, log_dataset, tracking_uri

SPLITS_ALL = "all"


def model_files(model_dir: Path) -> tuple[dict, Path]:
    """(model.json, the eval pipeline) of a trained model folder, or a message saying what it is."""
    from pipeline.training import MODEL_FILE, PREPROCESS_FILE

    info, preprocess = model_dir / MODEL_FILE, model_dir / PREPROCESS_FILE
    if (model_dir / "bundle.json").is_file():
        raise ValueError(f"{model_dir} is an exported bundle; evaluate the trained model folder it was exported "
                         "from (models/<model>), or run `predict` on the bundle")
    if not info.is_file():
        raise FileNotFoundError(f"{model_dir}: no {MODEL_FILE}; give a trained model folder (models/<model>)")
    if not preprocess.is_file():
        raise FileNotFoundError(f"{model_dir}: no {PREPROCESS_FILE} (the model's eval preprocessing); it was "
                                "trained by an older version: train it again")
    return json.loads(info.read_text()), preprocess


def evaluation_config(overrides: list[str], task, classes: list[str], splits: str):
    """The composed config with the model's classes (ids in its order) and the splits to score."""
    from pipeline.config import compose, data_kind, open_dict

    cfg = compose(overrides)
    kind = data_kind(cfg.data.format)
    if kind not in task.data:
        raise ValueError(f"data={cfg.data.name} holds {kind} data; a {task.name} is evaluated on "
                         f"{' or '.join(task.data)} data")
    from pipeline.data.patches import BACKGROUND

    if kind == "detection" and classes[-1:] == [BACKGROUND]:  # a patch classifier: its last class is no object's
        classes = classes[:-1]
    with open_dict(cfg):
        cfg.data.classes = list(classes)
        section = cfg.evaluate[task.name]
        if "splits" in section and splits != SPLITS_ALL:
            section.splits = [s.strip() for s in splits.split(",") if s.strip()]
    return cfg


def evaluation_run(cfg, model_dir: Path, task_name: str, manifest: Path) -> str:
    """A new MLflow run for this evaluation, nested under the training's run when the store has it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline.training import RUN_FILE

    uri, experiment_id = ensure_experiment(cfg.logger)
    client = MlflowClient(tracking_uri=uri)
    tags = {"stage": f"evaluate_on@{task_name}", "model_dir": str(model_dir)}
    run_file = model_dir / RUN_FILE
    if run_file.is_file():
        trained = json.loads(run_file.read_text())["run_id"]
        try:
            experiment_id = client.get_run(trained).info.experiment_id
            tags[PARENT_TAG] = trained
        except MlflowException:
            print(f"note: the training's run {trained} is not in {tracking_uri(cfg.logger)}; "
                  "this evaluation is a run of its own")
    run = client.create_run(experiment_id, run_name=f"{cfg.data.name} · {task_name} evaluated", tags=tags)
    log_dataset(client, run.info.run_id, cfg.data, manifest)
    return run.info.run_id


def evaluate_on(task_name: str, model_dir: str | Path, overrides: list[str], out: str | Path | None = None,
                splits: str = SPLITS_ALL) -> tuple[dict, Path]:
    """Prepare the data of ``overrides`` in ``out``/prepared and evaluate the model on it; writes
    ``out``/metrics.json, ``out``/reports (pictures) and ``out``/tables. Returns (the results, ``out``:
    by default evaluations/<data name>-<model folder name>)."""
    from mlflow.tracking import MlflowClient

    from pipeline.data.prepare import prepare
    from pipeline.tasks import get_task

    task, model_dir = get_task(task_name), Path(model_dir)
    info, preprocess = model_files(model_dir)
    cfg = evaluation_config(overrides, task, info["classes"], splits)
    out = Path(out or f"evaluations/{cfg.data.name}-{model_dir.resolve().name}")
    stats = prepare(cfg.data, cfg.seed, out / "prepared", out / "reports" / "prepare", out / "prepare.json")
    unknown = stats["rejected_by_code"].get("unknown_class", 0)
    if unknown:
        print(f"warning: {unknown} image(s) hold classes the model does not know ({', '.join(info['classes'])}); "
              f"rejected, listed in {out / 'prepared'}")
    manifest = out / "prepared" / "manifest.json"
    if splits == SPLITS_ALL and "splits" in cfg.evaluate[task.name]:
        from pipeline.config import open_dict
        from pipeline.data.manifest import SPLITS, Manifest

        present = set(Manifest.read(manifest).split_names())
        with open_dict(cfg):
            cfg.evaluate[task.name].splits = [s for s in SPLITS if s in present]
    pipelines = out / "augment"  # the model's own eval preprocessing; evaluation never trains
    pipelines.mkdir(parents=True, exist_ok=True)
    for view in ("train", "eval"):
        shutil.copyfile(preprocess, pipelines / f"{task.augment}_{view}.json")
    run_id = evaluation_run(cfg, model_dir, task.name, manifest)
    client, status = MlflowClient(tracking_uri=tracking_uri(cfg.logger)), "FAILED"
    try:
        results = task.step("evaluate")(cfg, manifest, pipelines, model_dir, out / "metrics.json", out / "reports" /
                                        task.name, out / "tables", run_id=run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
    return results, out


@user_errors
def main(argv: list[str] | None = None) -> None:
    from pipeline.tasks import TASKS, get_task, headline_metrics, shown

    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate_on", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("model", help="a trained model folder (models/<model>)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: data=..., data.root=..., ...")
    parser.add_argument("--out", help="results folder (default evaluations/<data name>-<model folder name>)")
    parser.add_argument("--splits", default=SPLITS_ALL,
                        help="comma-separated splits to score, or all (default): every split the data has")
    args = parser.parse_args(argv)
    results, out = evaluate_on(args.task, args.model, args.overrides, args.out, args.splits)
    print(f"evaluate {args.task}: {shown(headline_metrics(get_task(args.task), results, None))}; results in {out}")


if __name__ == "__main__":
    main()
