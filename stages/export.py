"""DVC stage `export@<model>`: a trained model -> a bundle (ONNX, torch.export .pt2, labels,
preprocessing, post-processing, model card, sample predictions) after parity checks; the work is
pipeline.export."""

from pipeline.cli import run_script, stage_parser, user_errors
from pipeline.config import load_params
from pipeline.export.build import export_bundle
from pipeline.tasks import TASKS


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__, pipelines=False)
    parser.add_argument("task", choices=list(TASKS))
    parser.add_argument("--model", required=True, help="the trained model's folder (models/<model>)")
    parser.add_argument("--details", help="its evaluation's full results, copied into the model card "
                                          "(default reports/<model>.json)")
    parser.add_argument("--metrics", help="its headline metrics (metrics/<model>.json), copied into the model card")
    parser.add_argument("--out", required=True, help="the bundle folder (bundles/<model>)")
    parser.add_argument("--parity", required=True, help="parity figures (JSON)")
    args = parser.parse_args(argv)
    checked = export_bundle(args.task, load_params(args.params), args.model, args.manifest,
                            args.details or f"reports/{args.task}.json", args.out, args.parity, args.metrics)
    d = checked.get("detections")  # the detector's only
    extra = (f"; detections matched {d['matched']} of {d['detections']} ({d['unmatched_near_boundary']} near the "
             f"threshold or cut), boxes within {d['box_max_abs_diff_px']:.2e} px, scores {d['score_max_abs_diff']:.2e}"
             if d else "")
    print(f"export {args.task}: {args.out}; onnxruntime vs PyTorch max |diff| {checked['onnx_max_abs_diff']:.2e}, "
          f"ExportedProgram {checked['pt2_max_abs_diff']:.2e}{extra}")
    if "registry" in checked:
        r = checked["registry"]
        print(f"MLflow registry: {r['registered_model']} version {r['version']} ({r['key_metric']} {r['key_value']}); "
              f"alias {r['alias']} -> version {r['champion_version']}" + (" (moved)" if r["promoted"] else " (kept)"))


if __name__ == "__main__":
    run_script(main)
