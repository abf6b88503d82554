"""DVC stage `train@<model>`: fit one model of data.models (pipeline/tasks.py), tracked as one MLflow run.

Reads `model.<model>`, `train.<model>`, `trainer` and `seed` from params.yaml (and `logger` for
tracking and display, which changes no result), the manifest from `prepare` and the saved
pipelines from `augment`.
"""

import time

from pipeline.cli import run_script, training_parser, user_errors
from pipeline.config import load_params
from pipeline.tasks import TASKS, get_task
from pipeline.tracking import check_reachable, tracking_uri


@user_errors
def main(argv=None) -> None:
    parser = training_parser(__doc__)
    parser.add_argument("task", choices=list(TASKS))
    args = parser.parse_args(argv)
    task = get_task(args.task)
    cfg = load_params(args.params)
    check_reachable(tracking_uri(cfg.logger))  # a tracking server that is down: one line, before any work
    # torch, Lightning and MLflow (about 6 s to import on 2 cores) only once the params and the store are good
    from lightning.pytorch.utilities import rank_zero_info

    from pipeline.training import record_train_seconds

    out = args.out or f"models/{task.name}"
    preview = args.preview or f"reports/augment/{task.augment}_preview.png"
    started = time.perf_counter()
    result = task.step("train")(cfg, args.manifest, args.pipelines, out, resume=args.resume,
                                preview=preview)
    record_train_seconds(out, time.perf_counter() - started)
    shown = ", ".join(f"{k} {result['metrics'][k]:.4f}" for k in task.trained if k in result["metrics"])
    rank_zero_info(f"train {task.name}: {result['epochs']} epochs, {shown}; MLflow run {result['run_id']}")


if __name__ == "__main__":
    run_script(main)
