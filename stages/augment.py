"""DVC stage `augment`: save the train/eval augmentation pipelines of each task, with previews.

Reads `augment` and `seed` from params.yaml; the real work is pipeline.augment.
Training stages load these files; nothing rebuilds a pipeline from code on its own.
"""

from pipeline.augment.stage import run_augment
from pipeline.cli import run_script, stage_parser, user_errors
from pipeline.config import load_params


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__, pipelines=False)
    parser.add_argument("--out", default="data/augment", help="<task>_train.json, <task>_eval.json")
    parser.add_argument("--reports", default="reports/augment", help="<task>_preview.png")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    summary = run_augment(params.augment, args.manifest, args.out, args.reports, int(params.seed))
    for task, steps in summary.items():
        size = "x".join(str(v) for v in steps["input_size"])
        print(f"augment {task} ({size}, {steps['sized_by']}): train = {' -> '.join(steps['train'])}; "
              f"eval = {' -> '.join(steps['eval'])}")


if __name__ == "__main__":
    run_script(main)
