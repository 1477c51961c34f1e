"""CLI commands: world (``abasto generate``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from abasto.cli.app import app
from abasto.errors import ConfigError
from abasto.settings import WorldSettings, load_settings

if TYPE_CHECKING:
    from abasto.world import World

# abasto.world (numpy, pyarrow) is imported inside the command: `abasto --help` must not pay for it.

__all__ = ["app"]

_STAGE_LABEL = {
    "network": "stores, routes and assortment",
    "weather": "weather, calendar and promotions",
    "demand": "hourly demand",
    "simulation": "orders, deliveries and stock",
    "tables": "tables and rep analyses",
    "save": "writing Parquet",
}


def _world_settings(base: WorldSettings, updates: dict[str, Any]) -> WorldSettings:
    try:
        return WorldSettings(**{**base.model_dump(), **updates})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid world size: {problems}") from exc


@app.command("generate")
def generate_command(
    *,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings world.seed).")] = None,
    stores: Annotated[int | None, typer.Option(help="Points of sale before --scale.")] = None,
    skus: Annotated[int | None, typer.Option(help="SKUs in the catalogue.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history before the live day.")] = None,
    scale: Annotated[float, typer.Option(help="Multiply the number of stores (and so events).")] = 1.0,
    horizon_days: Annotated[int, typer.Option(help="Ground-truth days after the live day.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Output directory (default: settings world_dir).")] = None,
) -> None:
    """Generate gaseosas SA's synthetic world (deterministic by seed) and write it as Parquet."""
    from abasto.world import STAGES, generate  # noqa: PLC0415

    if scale <= 0:
        raise ConfigError(f"--scale must be > 0, got {scale}")
    settings = load_settings()
    base = settings.world
    n_stores = max(1, round((stores if stores is not None else base.stores) * scale))
    updates: dict[str, Any] = {"stores": n_stores}
    if seed is not None:
        updates["seed"] = seed
    if skus is not None:
        updates["skus"] = skus
    if days is not None:
        updates["history_days"] = days
    cfg = _world_settings(base, updates)
    target = out if out is not None else settings.world_dir

    console = Console()
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("generating", total=len(STAGES) + 1)

        def step(stage: str) -> None:
            progress.update(task, completed=STAGES.index(stage), description=_STAGE_LABEL[stage])

        world = generate(cfg, horizon_days=horizon_days, progress=step)
        progress.update(task, completed=len(STAGES), description=_STAGE_LABEL["save"])
        world.save(target)
        progress.update(task, completed=len(STAGES) + 1)
    elapsed = time.perf_counter() - started
    console.print(_summary_table(world, target, elapsed))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _summary_table(world: World, target: Path, elapsed: float) -> Table:
    s = world.summary()
    rates = s["stockout_rate"]
    by_channel = ", ".join(f"{k} {v}" for k, v in s["stores_by_channel"].items())
    table = Table(title=f"gaseosas SA world · seed {s['seed']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        ("stores", f"{s['stores']} ({by_channel}); {s['big_customers']} big customers"),
        ("regions · routes", f"{s['regions']} · {s['routes']} (one rep each)"),
        ("SKUs · assortment", f"{s['skus']} · {s['assortment_pairs']} store×SKU pairs"),
        ("days", f"{s['start_date']} + {s['history_days']} history, live day {s['live_day']}, "
                 f"+{s['horizon_days']} horizon ({s['timezone']})"),
        ("hourly rows", f"{s['hourly_rows']:,}"),
        ("events expected on the live day", f"{s['live_sale_units']:,} units sold "
                                            f"in {s['live_selling_hours']:,} store×SKU×hours"),
        ("stockout rate (history SKU-days)",
         f"{_pct(rates['history'])} (weekend {_pct(rates['weekend'])}, hot days {_pct(rates['hot_days'])}, "
         f"promo {_pct(rates['promo'])}, big customers {_pct(rates['big_customers'])})"),
        ("stockout rate by weekday", " ".join(
            f"{d} {100 * r:.1f}" for d, r in zip(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
                                                 s["by_weekday"]["stockout_rate"], strict=True)) + " %"),
        ("stockout rate (live day)", _pct(rates["live_day"])),
        ("episodes on the live day",
         f"{s['episodes_live_day']} starting, {s['episodes_active_live_day']} active"),
        ("orders · rep analyses", f"{s['orders']:,} · {s['visit_analyses']:,}"),
        ("written to", f"{target} in {elapsed:.1f} s"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table
