"""DVC stage `evaluate_classifier`: accuracy, macro F1, per-class precision/recall, confusion
matrices and misclassified images on val and test, logged to the training's MLflow run."""

from pipeline.classify.evaluate import evaluate_classifier
from pipeline.cli import stage_parser, user_errors
from pipeline.config import load_params


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", default="models/classifier")
    parser.add_argument("--metrics", default="metrics/classifier.json")
    parser.add_argument("--reports", default="reports/classifier", help="pictures")
    parser.add_argument("--confusion", default="reports/classifier_confusion", help="<split>.csv for dvc plots")
    args = parser.parse_args(argv)
    results = evaluate_classifier(load_params(args.params), args.manifest, args.pipelines, args.model,
                                  args.metrics, args.reports, args.confusion)
    for split, m in results.items():
        print(f"evaluate_classifier {split}: accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f} "
              f"({m['count']} images)")


if __name__ == "__main__":
    main()
