"""DVC stage `train_classifier`: fit the classifier (Lightning), tracked as one MLflow run.

Reads `model.classifier`, `train.classifier`, `trainer`, `logger` and `seed` from params.yaml,
the manifest from `prepare` and the saved pipelines from `augment`; the work is pipeline.classify.
"""

from lightning.pytorch.utilities import rank_zero_info

from pipeline.classify.train import train_classifier
from pipeline.cli import training_parser, user_errors
from pipeline.config import load_params


@user_errors
def main(argv=None) -> None:
    args = training_parser(__doc__, "reports/augment/classifier_preview.png", "models/classifier").parse_args(argv)
    result = train_classifier(load_params(args.params), args.manifest, args.pipelines, args.out,
                              resume=args.resume, preview=args.preview)
    m = result["metrics"]
    rank_zero_info(f"train_classifier: {result['epochs']} epochs, val_acc {m.get('val_acc', float('nan')):.4f}, "
          f"val_f1 {m.get('val_f1', float('nan')):.4f}; MLflow run {result['run_id']}")


if __name__ == "__main__":
    main()
