"""CLI commands: ``abasto model list | approve | train``.

The ML modules are imported inside the commands: MLflow takes seconds to import and other
commands must not pay for it.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from abasto.cli.app import app

__all__ = ["app", "model_app"]

model_app = typer.Typer(
    help="Demand pattern model: train from Parquet, list versions, approve a champion.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")

DEFAULT_TZ = "America/Mexico_City"


@model_app.command("list")
def list_models() -> None:
    """List registered model versions (the champion is marked)."""
    from abasto.ml.registry import list_versions  # noqa: PLC0415

    versions = list_versions()
    console = Console()
    if not versions:
        console.print("no model version registered yet (train one: abasto model train --from-parquet PATH)")
        return
    table = Table("version", "champion", "trained by", "approved by", "created (UTC)", "WAPE", "lineage")
    for v in versions:
        wape = v.metrics.get("wape_pattern")
        table.add_row(
            v.version,
            "★" if v.is_champion else "",
            v.trained_by or "?",
            v.approved_by or "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            "" if wape is None else f"{wape:.3f}",
            ", ".join(f"{k}={val}" for k, val in sorted(v.lineage.items())),
        )
    console.print(table)


@model_app.command()
def approve(
    version: Annotated[str, typer.Argument(help="model version to promote to champion")],
    as_user: Annotated[str, typer.Option("--as", help="the approving user (not the one who trained it)")],
) -> None:
    """Make VERSION the champion the stream processor loads (four-eyes rule)."""
    from abasto.ml.registry import approve as approve_version  # noqa: PLC0415

    info = approve_version(version, as_user)
    typer.echo(
        f"version {info.version} is now the champion (trained by {info.trained_by}, approved by {as_user})"
    )


@model_app.command()
def train(
    from_parquet: Annotated[
        Path, typer.Option("--from-parquet", exists=True, help="Parquet file or folder of hourly history")
    ],
    timezone: Annotated[str, typer.Option(help="local time zone of the stores")] = DEFAULT_TZ,
    as_user: Annotated[str | None, typer.Option("--as", help="who trains (default: OS user)")] = None,
    holdout_days: Annotated[int, typer.Option(min=1, help="days held out for the backtest")] = 14,
    group_by: Annotated[str | None, typer.Option(help="column pooling hour-of-week shapes")] = None,
    register: Annotated[bool, typer.Option(help="register the fitted model in MLflow")] = True,
) -> None:
    """Backtest, fit and register a pattern model from Parquet (columns: see abasto.ml._frame)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from abasto.ml.backtest import backtest  # noqa: PLC0415
    from abasto.ml.pattern import fit_pattern  # noqa: PLC0415
    from abasto.ml.registry import register as register_model  # noqa: PLC0415

    history = pq.read_table(from_parquet)
    result = backtest(history, timezone=timezone, holdout_days=holdout_days, group_by=group_by)
    console = Console()
    table = Table(
        "method",
        "WAPE (hourly)",
        "WAPE (daily)",
        "MASE",
        "bias",
        title=f"backtest: last {holdout_days} days, {result.hours} in-stock hours",
    )
    for name, s in result.scores.items():
        table.add_row(name, f"{s.wape:.4f}", f"{s.wape_daily:.4f}", f"{s.mase:.3f}", f"{s.bias:+.3f}")
    console.print(table)
    model = fit_pattern(history, timezone=timezone, group_by=group_by)
    if not register:
        console.print(f"fitted {len(model)} series (not registered)")
        return
    trainer = as_user or getpass.getuser()
    params = {**model.fit_info, "timezone": timezone, "holdout_days": holdout_days, "group_by": group_by}
    lineage = {"source": str(from_parquet.resolve())}
    info = register_model(model, result.to_metrics(), params, lineage, trainer)
    console.print(
        f"registered version {info.version} (trained by {trainer}); approve it as another user: "
        f"abasto model approve {info.version} --as USER"
    )
