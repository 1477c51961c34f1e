"""CLI commands: the SQL HTTP API (``abasto api serve``, ``abasto api token add|list|revoke``)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from abasto.cli.app import app
from abasto.settings import load_settings

# Starlette, uvicorn, DuckDB and the catalog are imported inside the commands: `abasto --help` must
# not pay for them.

__all__ = ["DEFAULT_PORT", "api_app", "app"]

#: no setting names the API's port: a CLI default, clear of the embedded services' ports
DEFAULT_PORT = 18090

api_app = typer.Typer(help="SQL HTTP API over the lake (governed, read-only).", no_args_is_help=True)
token_app = typer.Typer(
    help="Bearer tokens of the SQL HTTP API (only their hashes are stored).", no_args_is_help=True
)
api_app.add_typer(token_app, name="token")
app.add_typer(api_app, name="api")


@api_app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to bind (plain HTTP: keep it on loopback or behind TLS).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    max_rows: Annotated[int, typer.Option(min=1, help="Largest row limit a request may ask for.")] = 100_000,
    default_rows: Annotated[
        int, typer.Option(min=0, help="Rows returned when a request names no limit.")
    ] = 1000,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a query may run when the request names no timeout.")
    ] = 30.0,
) -> None:
    """Serve POST /v1/query, GET /v1/tables and /v1/tables/NAME, /health and /metrics (token = profile)."""
    import uvicorn  # noqa: PLC0415

    from abasto.api import ApiLimits, TokenStore, create_app  # noqa: PLC0415

    settings = load_settings()
    tokens = TokenStore.for_settings(settings)
    limits = ApiLimits(
        default_rows=min(default_rows, max_rows),
        max_rows=max_rows,
        timeout_s=timeout,
        max_timeout_s=max(timeout, ApiLimits().max_timeout_s),
    )
    application = create_app(settings, tokens=tokens, limits=limits)
    typer.echo(f"abasto SQL API listening on http://{host}:{port} (Ctrl-C stops)")
    if not tokens.list():
        typer.echo(
            "no API tokens yet: create one with `abasto api token add NAME --profile analyst`", err=True
        )
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="Who uses the token (a person, a dashboard).")],
    profile: Annotated[
        str, typer.Option(help="Governance profile: admin, data_engineer, analyst, data_scientist, planner.")
    ] = "analyst",
) -> None:
    """Create a token; it is printed once (only its bcrypt hash is kept)."""
    from abasto.api import TokenStore  # noqa: PLC0415

    record, token = TokenStore.for_settings(load_settings()).add(name, profile)
    typer.echo(token)
    typer.echo(
        f"token {record.name!r} (profile {record.profile}) created; it is shown only now. Use it as\n"
        f"  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{DEFAULT_PORT}/v1/tables",
        err=True,
    )


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List the tokens (names, profiles, ids; never the tokens themselves)."""
    from abasto.api import TokenStore  # noqa: PLC0415

    records = TokenStore.for_settings(load_settings()).list()
    if as_json:
        typer.echo(json.dumps([r.public() for r in records], indent=1))
        return
    if not records:
        typer.echo("no API tokens yet: create one with `abasto api token add NAME --profile analyst`")
        return
    view = RichTable()
    for header in ("name", "profile", "token id", "created (UTC)"):
        view.add_column(header, overflow="fold")
    for r in records:
        view.add_row(r.name, r.profile, r.token_id, r.created_at)
    Console().print(view)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="Name of the token to revoke.")]) -> None:
    """Revoke a token: a running server refuses it (401) from its next request."""
    from abasto.api import TokenStore  # noqa: PLC0415

    record = TokenStore.for_settings(load_settings()).revoke(name)
    typer.echo(f"token {record.name!r} (id {record.token_id}) revoked")
