"""DVC stage `heatmap`: the trained FCN against the same network as a batched sliding window on the
scenes; speed, agreement, pointing game and AP@0.5 (also before dense fine-tuning), logged to the
FCN's MLflow run."""

from pathlib import Path

from pipeline.cli import stage_parser, user_errors
from pipeline.config import load_params
from pipeline.heatmap.stage import run_heatmaps
from pipeline.training import log_to_run


@user_errors
def main(argv=None) -> None:
    parser = stage_parser(__doc__, pipelines=False)
    parser.add_argument("--model", default="models/fcn", help="the train_fcn stage's output")
    parser.add_argument("--metrics", default="metrics/heatmap.json")
    parser.add_argument("--reports", default="reports/heatmap", help="overlays.png")
    args = parser.parse_args(argv)
    cfg = load_params(args.params)
    r = run_heatmaps(cfg, args.manifest, args.model, args.metrics, args.reports)
    flat = {"heatmap_speed_ratio": r["speed_ratio"]}
    for method in r["pointing_game"]:
        flat[f"heatmap_pointing_{method}"] = r["pointing_game"][method]
        flat[f"heatmap_ap50_{method}"] = r["ap50"][method]
    flat.update({f"heatmap_agreement_{k}": v for k, v in r["agreement"].items()})
    log_to_run(cfg, args.model, flat, [Path(args.reports) / "overlays.png", Path(args.metrics)], "heatmap")
    print(f"heatmap: FCN {r['speed_ratio']:.1f}x faster than the sliding window (stride {r['stride']}, "
          f"{r['sliding_windows']} windows); pointing game FCN {r['pointing_game']['fcn']:.3f}, "
          f"sliding {r['pointing_game']['sliding']:.3f}, before dense tuning "
          f"{r['pointing_game'].get('before_dense', float('nan')):.3f}; AP@0.5 FCN {r['ap50']['fcn']:.3f}")


if __name__ == "__main__":
    main()
