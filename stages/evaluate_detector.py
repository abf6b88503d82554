"""DVC stage `evaluate_detector`: COCO metrics, PR curves and pictures of the trained detector on
val/test, logged to the training's MLflow run; the work is pipeline.detect.evaluate."""

from pipeline.cli import stage_parser, user_errors
from pipeline.config import load_params
from pipeline.detect.evaluate import evaluate_detector


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", default="models/detector")
    parser.add_argument("--metrics", default="metrics/detector.json")
    parser.add_argument("--reports", default="reports/detector", help="pr_{val,test}.png, predictions_val.png")
    parser.add_argument("--pr", default="reports/detector_pr", help="{val,test}/<class>.csv for dvc plots")
    args = parser.parse_args(argv)
    r = evaluate_detector(load_params(args.params), args.manifest, args.pipelines, args.model, args.metrics,
                          args.reports, args.pr)
    for split, m in r.items():
        print(f"evaluate_detector {split}: mAP@0.5 {m['map_50']:.4f}, mAP@[.5:.95] {m['map']:.4f} "
              f"({m['images']} images, {m['objects']} objects)")


if __name__ == "__main__":
    main()
