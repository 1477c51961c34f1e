"""Run benchmark suites and print a table (or one JSON object)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from abasto.benchmarks.harness import Figure
from abasto.errors import InvalidInputError
from abasto.realtime.build import engine_build

#: suite name → module under abasto.benchmarks exposing ``run(quick: bool) -> list[Figure]``
SUITES: dict[str, str] = {
    "events": "abasto.benchmarks.events",
    "realtime": "abasto.benchmarks.realtime",
    "lakehouse": "abasto.benchmarks.lakehouse",
}


def run_suites(names: Sequence[str] | None = None, *, quick: bool = False) -> list[Figure]:
    chosen = list(names) if names else list(SUITES)
    unknown = [n for n in chosen if n not in SUITES]
    if unknown:
        raise InvalidInputError(
            f"unknown benchmark suite(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(SUITES)}"
        )
    figures: list[Figure] = []
    for name in chosen:
        run: Callable[..., list[Figure]] = importlib.import_module(SUITES[name]).run
        figures.extend(run(quick=quick))
    return figures


def as_json(figures: Sequence[Figure]) -> dict[str, float | str]:
    """Each figure under its own name (which names its unit) plus ``<name>_ratio`` to its limit,
    and ``engine_build``: the stream engine the run used (``mypyc`` compiled or ``python``)."""
    out: dict[str, float | str] = {"engine_build": engine_build()}
    for f in figures:
        out[f.name] = f.value
        out[f"{f.name}__limit"] = f.limit
        out[f"{f.name}__ratio"] = f.ratio
    return out


def print_table(figures: Sequence[Figure], console: Console | None = None) -> None:
    build = {
        "mypyc": "compiled engine (mypyc)",
        "python": "pure-Python engine (`make compiled` builds the ~1.4–1.7× faster one)",
    }
    t = Table(
        title="abasto benchmarks (medians of repeated runs; limit measured in the same run)",
        caption=f"stream engine: {build[engine_build()]}",
    )
    for col in ("figure", "value", "limit (same run)", "limit value", "ratio"):
        t.add_column(col)
    for f in figures:
        t.add_row(f.name, f"{f.value:,.1f} {f.unit}", f.limit_name, f"{f.limit:,.1f}", f"{f.ratio:.2f}")
    (console or Console()).print(t)


def main(argv: Sequence[str]) -> None:
    names = [a for a in argv if not a.startswith("--")]
    figures = run_suites(names, quick="--quick" in argv)
    if "--json" in argv:
        print(json.dumps(as_json(figures)))
    else:
        print_table(figures)
