"""Benchmark: each training stage as `dvc repro` runs it, on whatever device this machine has.

    python benchmarks/training_throughput.py                     # after `dvc repro` (data/prepared, data/augment)
    python benchmarks/training_throughput.py --params .gpu_params.yaml --models detector

Runs `python stages/train.py <model>` for each model of data.models (or --models) with the params
file, into a temporary folder with an MLflow store of its own (the project's runs are untouched),
and prints per stage, measured in this run:
  - the stage's wall time (its Python start included) and its MLflow run's duration (the training);
  - images per second over the training steps, and the share of step time spent waiting for the
    next batch (the loader's work not hidden behind the step), from the training's own
    measurement (pipeline/throughput.py); the FCN has two phases (patch classifier, dense);
  - the device and the number of loader processes the training chose.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

PROJECT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"training throughput: ([\d.]+) images/s, (\d+)% of step time waiting for data "
                  r"\(device (\S+), loader processes (\d+)\)")


def run_durations(store: Path) -> dict[str, float]:
    """Seconds of each finished run in the benchmark's MLflow store, by stage tag."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    durations = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            if run.info.end_time:
                durations[run.data.tags.get("stage", run.info.run_name)] = (
                    run.info.end_time - run.info.start_time) / 1000
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--models", nargs="*", help="default: data.models of the params file")
    parser.add_argument("--manifest", default="data/prepared/manifest.json")
    parser.add_argument("--pipelines", default="data/augment")
    args = parser.parse_args()
    cfg = OmegaConf.load(args.params)
    models = args.models or list(cfg.data.models)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "mlflow.db"
        cfg.logger.merge_with({"tracking_uri": None, "local_store": str(store),
                               "artifact_root": str(work / "artifacts"), "progress_bar": False})
        params = work / "params.yaml"
        OmegaConf.save(cfg, params)
        rows = []
        for model in models:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "stages/train.py", model, "--params", str(params), "--manifest",
                                   args.manifest, "--pipelines", args.pipelines, "--out", str(work / model)],
                                  cwd=PROJECT, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode:
                print(done.stdout[-2000:], done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"train@{model} failed (exit {done.returncode})")
            rows.append((model, wall, LINE.findall(done.stdout + done.stderr)))
        durations = run_durations(store)
    print(f"{'stage':<18} {'wall s':>7} {'run s':>7} {'images/s':>10} {'data wait':>9}  device, loader processes")
    for model, wall, phases in rows:
        run = durations.get(f"train@{model}")
        for k, (rate, wait, device, workers) in enumerate(phases or [("-", "-", "-", "-")]):
            name = f"train@{model}" + (f" ({k + 1}/{len(phases)})" if len(phases) > 1 else "")
            first = k == 0
            print(f"{name:<18} {(f'{wall:.1f}' if first else ''):>7} "
                  f"{(f'{run:.1f}' if first and run else ''):>7} {rate:>10} {wait + '%':>9}  {device}, {workers}")


if __name__ == "__main__":
    main()
