"""DVC stage `train_detector`: fit the SSD detector (Lightning, focal loss), tracked as one MLflow run.

Reads `model.detector` (with its `anchors`), `train.detector`, `augment.detector.input_size`,
`trainer`, `logger` and `seed` from params.yaml; the work is pipeline.detect.
"""

from lightning.pytorch.utilities import rank_zero_info

from pipeline.cli import training_parser, user_errors
from pipeline.config import load_params
from pipeline.detect.train import train_detector


@user_errors
def main(argv=None) -> None:
    args = training_parser(__doc__, "reports/augment/detector_preview.png", "models/detector").parse_args(argv)
    result = train_detector(load_params(args.params), args.manifest, args.pipelines, args.out, resume=args.resume,
                            preview=args.preview)
    m = result["metrics"]
    rank_zero_info(f"train_detector: {result['epochs']} epochs, {result['anchors']} anchors, val mAP@0.5 "
          f"{m.get('val_map_50', float('nan')):.4f}, mAP {m.get('val_map', float('nan')):.4f}; "
          f"MLflow run {result['run_id']}")


if __name__ == "__main__":
    main()
