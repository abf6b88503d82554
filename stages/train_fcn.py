"""DVC stage `train_fcn`: the heatmap network, tracked as one MLflow run.

Trains the patch classifier of the `fcn` section (model, train), converts it to a fully
convolutional network and fine-tunes that densely on the detection images (`fcn.dense`);
the work is pipeline.heatmap.train.
"""

from lightning.pytorch.utilities import rank_zero_info

from pipeline.cli import stage_parser, user_errors
from pipeline.config import load_params
from pipeline.heatmap.train import train_fcn


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--preview", default="reports/augment/classifier_preview.png")
    parser.add_argument("--out", default="models/fcn", help="classifier/, fcn.pt, fcn.json, run.json")
    args = parser.parse_args(argv)
    result = train_fcn(load_params(args.params), args.manifest, args.pipelines, args.out, preview=args.preview)
    m, d = result["metrics"], result["dense"]
    rank_zero_info(f"train_fcn: patch classifier val_acc {m.get('val_acc', float('nan')):.4f}; FCN stride {result['stride']}, "
          f"window {result['window']}; dense val_loss {d.get('dense_val_loss', float('nan')):.4f}, "
          f"object-cell recall {d.get('dense_val_object_recall', float('nan')):.4f}; MLflow run {result['run_id']}")


if __name__ == "__main__":
    main()
