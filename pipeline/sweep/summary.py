"""The sweep's summary, from its trials' MLflow runs, written to the sweep folder and the parent run:

  trials.csv / trials.md        one row per trial: number, state, objective, swept values, run id
  objective_vs_params.png       each swept parameter against the objective
  best_params.yaml              the best trial's whole config (params.yaml's form)
  best_overrides.txt            its overrides, one per line; fed back to the pipeline with
                                `dvc exp run $(sed 's/^/-S /' best_overrides.txt)`
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from pipeline.sweep.runs import DIR_TAG, OVERRIDES_TAG, STATE_TAG, TRIAL_TAG, children  # noqa: E402
from pipeline.training import RUNTIME_KEYS  # noqa: E402


def split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def trial_rows(client: MlflowClient, parent: dict) -> list[dict]:
    rows = []
    for run in children(client, parent):
        tags = run.data.tags
        objective = run.data.metrics.get("objective")
        rows.append({"trial": int(tags.get(TRIAL_TAG, -1)), "state": tags.get(STATE_TAG, run.info.status.lower()),
                     "objective": objective, "run_id": run.info.run_id, "trial_dir": tags.get(DIR_TAG, ""),
                     "overrides": json.loads(tags.get(OVERRIDES_TAG, "[]"))})
    return sorted(rows, key=lambda r: r["trial"])


def swept_keys(rows: list[dict]) -> list[str]:
    """Keys whose value differs between trials (the fixed overrides are left out)."""
    values: dict[str, set] = {}
    for row in rows:
        for key, value in map(split_override, row["overrides"]):
            values.setdefault(key, set()).add(value)
    return [k for k, v in values.items() if len(v) > 1] or list(values)


def table(rows: list[dict], keys: list[str]) -> tuple[str, str]:
    """(CSV, Markdown) of the trials."""
    header = ["trial", "state", "objective", *keys, "run_id"]
    lines = []
    for row in rows:
        values = dict(map(split_override, row["overrides"]))
        objective = "" if row["objective"] is None else f"{row['objective']:.4f}"
        lines.append([str(row["trial"]), row["state"], objective, *(values.get(k, "") for k in keys), row["run_id"]])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *lines])
    markdown = "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *lines])
    return out.getvalue(), markdown + "\n"


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def picture(rows: list[dict], keys: list[str], objective: str, path: Path) -> None:
    """Each swept parameter against the objective (completed trials; the best one starred)."""
    done = [r for r in rows if r["objective"] is not None and r["state"] == "complete"]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.2 * max(1, len(keys)), 3.6), squeeze=False)
    best = max(done, key=lambda r: r["objective"]) if done else None
    for ax, key in zip(axes[0], keys or ["(none)"]):
        xs = [dict(map(split_override, r["overrides"])).get(key, "") for r in done]
        numeric = [as_number(x) for x in xs]
        if xs and all(n is not None for n in numeric):
            positions = numeric
            if min(numeric) > 0 and max(numeric) / min(numeric) >= 10:
                ax.set_xscale("log")
        else:
            labels = sorted(set(xs))
            positions = [labels.index(x) for x in xs]
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.scatter(positions, [r["objective"] for r in done], color="tab:blue")
        if best is not None:
            ax.scatter([positions[done.index(best)]], [best["objective"]], marker="*", s=220, color="tab:orange",
                       label=f"best: trial {best['trial']}")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel(f"val {objective}")
        ax.grid(alpha=0.3)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "failed", "interrupted")}
    fig.suptitle(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no trials", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_config(best: dict) -> str | None:
    """The best trial's composed config without the sweep's own settings: params.yaml's form."""
    path = Path(best["trial_dir"]) / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    cfg = OmegaConf.load(path)
    cfg.pop("sweep", None)
    for key in RUNTIME_KEYS:  # the sweep's run-time logger settings ("logger.tags." etc.)
        cfg.logger.pop(key.removeprefix("logger.").rstrip("."), None)
    return OmegaConf.to_yaml(cfg)


def summarise(client: MlflowClient, parent: dict, sweep_dir: Path) -> tuple[str, int]:
    """Write the summary files into ``sweep_dir`` and log them to the parent run; returns a line
    and the number of trials that completed."""
    run_id = parent["run_id"]
    objective = client.get_run(run_id).data.params.get("sweep.objective", "objective")
    rows = trial_rows(client, parent)
    keys = swept_keys(rows)
    csv_text, markdown = table(rows, keys)
    files = {"trials.csv": csv_text, "trials.md": markdown}
    done = [r for r in rows if r["objective"] is not None and r["state"] == "complete"]
    best = max(done, key=lambda r: r["objective"]) if done else None
    line = f"sweep: {len(rows)} trials, {len(done)} complete"
    if best is not None:
        files["best_overrides.txt"] = "\n".join(best["overrides"]) + "\n"
        config = best_config(best)
        if config:
            files["best_params.yaml"] = config
        client.log_metric(run_id, "best_objective", best["objective"])
        client.set_tag(run_id, "best_trial", str(best["trial"]))
        client.set_tag(run_id, "best_run_id", best["run_id"])
        client.set_tag(run_id, "best_overrides", " ".join(best["overrides"])[:5000])
        line += f"; best trial {best['trial']}: val {objective} {best['objective']:.4f} ({' '.join(best['overrides'])})"
    for state in ("complete", "pruned", "failed", "interrupted"):
        client.log_metric(run_id, f"trials_{state}", sum(r["state"] == state for r in rows))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (sweep_dir / name).write_text(text)
        client.log_artifact(run_id, str(sweep_dir / name))
    picture(rows, keys, objective, sweep_dir / "objective_vs_params.png")
    client.log_artifact(run_id, str(sweep_dir / "objective_vs_params.png"))
    return line, len(done)
