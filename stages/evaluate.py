"""DVC stage `evaluate@<model>`: the trained model's metrics and pictures (pipeline/tasks.py says
which: accuracy and confusion for the classifier, mAP and PR curves for the detector, heatmap
quality and speed against a sliding window for the fcn), logged to the training's MLflow run.

Writes the headline (metrics/<model>.json: the few numbers `dvc exp show` compares, the task's
`headline` in pipeline/tasks.py, plus the training's seconds) and the full results (reports/<model>.json:
per class, per threshold, the anchor fit, ...; the export reads them)."""

from pipeline.cli import run_script, stage_parser, user_errors
from pipeline.config import load_params
from pipeline.io.atomic import atomic_write_json
from pipeline.tasks import TASKS, get_task, shown
from pipeline.training import log_headline, stamp_run_id


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("--model", help="the trained model's folder (default models/<model>)")
    parser.add_argument("--metrics", help="the headline metrics JSON (default metrics/<model>.json)")
    parser.add_argument("--details", help="the full results JSON (default reports/<model>.json)")
    parser.add_argument("--reports", help="pictures (default reports/<model>)")
    parser.add_argument("--tables", help="CSV tables for dvc plots (default reports/<model>_tables)")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    name = task.name
    model, details = args.model or f"models/{name}", args.details or f"reports/{name}.json"
    cfg = load_params(args.params)
    reports = args.reports or f"reports/{name}"
    results = task.step("evaluate")(cfg, args.manifest, args.pipelines, model, details, reports,
                                    args.tables or f"reports/{name}_tables")
    run_id = stamp_run_id(details, model)
    headline = log_headline(cfg, task, results, model, reports)
    atomic_write_json(args.metrics or f"metrics/{name}.json", headline)
    print(f"evaluate {task.name}: {shown(headline)}; MLflow run {run_id}")


if __name__ == "__main__":
    run_script(main)
