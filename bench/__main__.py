"""``python -m bench [--json]``: run the benchmarks and print a table (or JSON)."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from bench import bench_events
from bench.harness import Figure

SUITES = {"events": bench_events.run}


def main(argv: list[str]) -> None:
    figures: list[Figure] = []
    for run in SUITES.values():
        figures.extend(run())
    if "--json" in argv:
        print(json.dumps({f.name: f.value for f in figures} | {
            f"{f.name.removesuffix('_per_s')}_ratio": f.ratio for f in figures}))
        return
    t = Table(title="abasto benchmarks (medians of 5 runs)")
    for col in ("figure", "value", "limit (same run)", "limit value", "ratio"):
        t.add_column(col)
    for f in figures:
        t.add_row(f.name, f"{f.value:,.0f} {f.unit}", f.limit_name, f"{f.limit:,.0f}", f"{f.ratio:.2f}")
    Console().print(t)


if __name__ == "__main__":
    main(sys.argv[1:])
