"""What the benchmarks that repeat a setting over seeds share: mean ± sd, and Markdown tables
(docs/benchmarks.md takes them as printed)."""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table of already formatted cells."""
    print("\n| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
