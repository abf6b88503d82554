"""DVC stage `prepare`: import the configured dataset into the canonical manifest.

Reads `data` and `seed` from params.yaml; the real work is pipeline.data.prepare.
"""

import argparse

from pipeline.cli import run_script, user_errors
from pipeline.config import load_params


@user_errors
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/prepared", help="manifest, images, rejected list, stats")
    parser.add_argument("--reports", default="reports/prepare", help="pictures")
    parser.add_argument("--metrics", default="metrics/prepare.json")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    from pipeline.data.prepare import prepare  # after the params' checks: a mistake in them is reported at once

    stats = prepare(params.data, int(params.seed), args.out, args.reports, args.metrics)
    splits = ", ".join(f"{k} {v['images']}" for k, v in stats["splits"].items())
    print(f"prepare: {stats['found']} found, {stats['accepted']} accepted, {stats['rejected']} rejected "
          f"({stats['rejected_by_code'] or 'none'}); {splits}")
    for warning in stats["warnings"]:
        print(f"warning: {warning}")


if __name__ == "__main__":
    run_script(main)
