"""DVC stage `evaluate@<model>`: the trained model's metrics and pictures (pipeline/tasks.py says
which: accuracy and confusion for the classifier, mAP and PR curves for the detector, heatmap
quality and speed against a sliding window for the fcn), logged to the training's MLflow run."""

from pipeline.cli import stage_parser, user_errors
from pipeline.config import load_params
from pipeline.tasks import TASKS, get_task, headline
from pipeline.training import stamp_run_id


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("--model", help="the trained model's folder (default models/<model>)")
    parser.add_argument("--metrics", help="metrics JSON (default metrics/<model>.json)")
    parser.add_argument("--reports", help="pictures (default reports/<model>)")
    parser.add_argument("--tables", help="CSV tables for dvc plots (default reports/<model>_tables)")
    args = parser.parse_args(argv)
    task = get_task(args.task)
    name = task.name
    model, metrics = args.model or f"models/{name}", args.metrics or f"metrics/{name}.json"
    results = task.step("evaluate")(load_params(args.params), args.manifest, args.pipelines, model, metrics,
                                    args.reports or f"reports/{name}", args.tables or f"reports/{name}_tables")
    run_id = stamp_run_id(metrics, model)
    print(f"evaluate {task.name}: {headline(results, task.reported)}; MLflow run {run_id}")


if __name__ == "__main__":
    main()
