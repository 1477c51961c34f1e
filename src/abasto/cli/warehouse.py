"""CLI commands: the warehouse marts (``abasto warehouse build|query|sql``)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from abasto.cli.app import app
from abasto.settings import load_settings

# DuckDB, pyarrow, sqlglot and the lake are imported inside the commands: `abasto --help` must not
# pay for them.

__all__ = ["warehouse_app"]

warehouse_app = typer.Typer(
    help="Warehouse marts (star schema, the Redshift of the seed).", no_args_is_help=True
)
app.add_typer(warehouse_app, name="warehouse")


class SqlDialect(StrEnum):
    duckdb = "duckdb"
    athena = "athena"
    spark = "spark"
    redshift = "redshift"


@warehouse_app.command("build")
def build_command(
    full: Annotated[bool, typer.Option("--full", help="Rebuild every mart from the curated tables.")] = False,
) -> None:
    """Bring the marts up to date with the curated tables (incremental unless --full)."""
    from abasto.analytics.warehouse import build_marts  # noqa: PLC0415

    report = build_marts(load_settings(), full=full)
    if report.skipped:
        typer.echo(f"skipped: no curated snapshot changed ({report.path})")
    else:
        days = ", ".join(d.isoformat() for d in report.days_reprocessed) or "none"
        typer.echo(f"rebuilt {', '.join(report.rebuilt)} in {report.duration_s:.2f} s ({report.path})")
        typer.echo(f"days reprocessed: {days}")
    for name, rows in report.rows.items():
        typer.echo(f"  marts.{name}: {rows} rows")


@warehouse_app.command("query")
def query_command(
    statement: Annotated[
        str, typer.Argument(help="One read-only statement, e.g. SELECT … FROM marts.dim_store")
    ],
    limit: Annotated[int, typer.Option(help="Rows printed (JSON lines).")] = 50,
) -> None:
    """Run read-only SQL on the marts file."""
    from abasto.analytics.warehouse import query_marts  # noqa: PLC0415

    result = query_marts(statement, settings=load_settings())
    for row in result.slice(0, limit).to_pylist():
        typer.echo(json.dumps(row, default=str, ensure_ascii=False))
    if result.num_rows > limit:
        typer.echo(f"({result.num_rows} rows, {limit} shown)", err=True)


@warehouse_app.command("sql")
def sql_command(
    dialect: Annotated[
        SqlDialect, typer.Option("--dialect", "-d", help="Target SQL dialect.")
    ] = SqlDialect.duckdb,
    mart: Annotated[str | None, typer.Option("--mart", help="Only this mart.")] = None,
) -> None:
    """Print the marts' SQL (written once in DuckDB SQL, transpiled by sqlglot)."""
    from abasto.analytics.warehouse import MARTS, get_mart, transpile  # noqa: PLC0415

    marts = [get_mart(mart)] if mart else list(MARTS)
    for m in marts:
        text = m.sql() if dialect is SqlDialect.duckdb else transpile(m, dialect.value)
        typer.echo(f"-- marts.{m.name} ({dialect.value})\n{text};\n")
