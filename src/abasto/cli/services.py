"""CLI commands: embedded services (`up`, `down`, `status`) and store/device credentials (`devices ...`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from abasto.bootstrap import Platform
from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    from abasto.services import ServiceStatus, UpReport

# abasto.services (psycopg) is imported inside the commands: `abasto --help` must not pay for it.

__all__ = ["app"]

devices_app = typer.Typer(
    help="MQTT credentials of the POS devices: per store and per device.", no_args_is_help=True
)
app.add_typer(devices_app, name="devices")

#: by ``ServiceState`` value (a StrEnum, so its members look themselves up here)
_STATE_STYLE = {
    "running": "green",
    "external": "cyan",
    "unhealthy": "yellow",
    "stopped": "red",
}
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Names = Annotated[
    list[str] | None,
    typer.Argument(help="Which services: nats, postgres (default: both).", show_default=False),
]


def _services_table(rows: list[ServiceStatus], actions: dict[str, str] | None = None) -> Table:
    from abasto.services import ServiceState  # noqa: PLC0415

    table = Table()
    table.add_column("service")
    table.add_column("state")
    if actions:
        table.add_column("action")
    table.add_column("pid", justify="right")
    table.add_column("address", overflow="fold")
    table.add_column("data dir", overflow="fold")
    for row in rows:
        state = f"[{_STATE_STYLE[row.state]}]{row.state.value}[/]"
        if row.state is ServiceState.EXTERNAL:
            state += " (answers)" if row.answers else " [red](no answer)[/]"
        if row.detail and not (row.state is ServiceState.RUNNING or row.answers):
            state += f"\n[dim]{row.detail}[/]"
        cells = [row.name, state, *([actions.get(row.name, "")] if actions else [])]
        table.add_row(*cells, str(row.pid or "-"), "\n".join(row.addresses), str(row.data_dir or "-"))
    return table


@app.command("up")
def up_command(
    names: Names = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service to answer.")] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Start the embedded services (nats-server with JetStream + MQTT, PostgreSQL) and wait for them."""
    from abasto.services import up  # noqa: PLC0415

    settings = load_settings()
    console = Console()
    if as_json:
        report = up(settings, only=names, timeout_s=timeout)
    else:
        with console.status("starting services") as spinner:
            report = up(settings, only=names, timeout_s=timeout, progress=spinner.update)
    _print_up(console, report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _print_up(console: Console, report: UpReport, as_json: bool) -> None:
    if as_json:
        doc = [
            {**o.status.to_dict(), "action": o.action.value, "seconds": round(o.seconds, 3)}
            for o in report.outcomes
        ]
        typer.echo(json.dumps(doc, indent=2))
        return
    actions = {
        o.status.name: f"{o.action.value.replace('_', ' ')} in {o.seconds:.1f} s" for o in report.outcomes
    }
    console.print(_services_table([o.status for o in report.outcomes], actions))


@app.command("down")
def down_command(names: Names = None, as_json: JsonFlag = False) -> None:
    """Stop the embedded services abasto started. Data is kept; external servers are not touched."""
    from abasto.services import down  # noqa: PLC0415

    _print_status(down(load_settings(), only=names), as_json)


@app.command("status")
def status_command(names: Names = None, as_json: JsonFlag = False) -> None:
    """Show each service: state, pid, addresses, data directory."""
    from abasto.services import status  # noqa: PLC0415

    _print_status(status(load_settings(), only=names), as_json)


def _print_status(rows: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        Console().print(_services_table(rows))


# --- devices -----------------------------------------------------------------------------------


@devices_app.command("list")
def devices_list(
    as_json: JsonFlag = False,
    show_passwords: Annotated[bool, typer.Option("--show-passwords", help="Include the passwords.")] = False,
) -> None:
    """List the MQTT logins: store users (any device of the store) and per-device users."""
    registry = Platform(load_settings()).credentials
    rows: list[dict[str, str]] = []
    for c in registry.list():
        row = {"kind": "store", "store_id": c.store_id, "device_id": "*", "username": c.username}
        row["topic"] = c.topic("<device_id>")
        if show_passwords:
            row["password"] = c.password
        rows.append(row)
    for d in registry.devices():
        row = {"kind": "device", "store_id": d.store_id, "device_id": d.device_id, "username": d.username}
        row["topic"] = d.topic
        if show_passwords:
            row["password"] = d.password
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    columns = [
        "kind",
        "store_id",
        "device_id",
        "username",
        "topic",
        *(["password"] if show_passwords else []),
    ]
    table = Table(*columns)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    Console().print(table)


@devices_app.command("add")
def devices_add(
    store_ids: Annotated[list[str], typer.Argument(help="Store ids, e.g. S0001.")],
    device: Annotated[
        str | None,
        typer.Option("--device", help="Register this device (one store only): its own MQTT user."),
    ] = None,
    new_device: Annotated[
        bool,
        typer.Option("--new-device", help="Register the store's next device, dev-<store_id>-<n>."),
    ] = False,
) -> None:
    """Create MQTT credentials and apply them to nats-server.

    Without options: one login per store (kept if it exists), allowed on pos/<store_id>/#.
    With --device ID or --new-device: one login for that device, allowed on
    pos/<store_id>/<device_id> only (username = device id).
    """
    from abasto.errors import InvalidInputError  # noqa: PLC0415
    from abasto.services import reload_nats  # noqa: PLC0415

    platform = Platform(load_settings())
    if device is not None or new_device:
        if len(store_ids) != 1 or (device is not None and new_device):
            raise InvalidInputError(
                "--device/--new-device register one device of one store",
                hint="e.g. `abasto devices add S0001 --device dev-S0001-2`, or `... S0001 --new-device`",
            )
        creds = platform.credentials.add_device(store_ids[0], device)
        typer.echo(f"device {creds.device_id} of store {creds.store_id}: user {creds.username}")
        typer.echo(f"publishes on MQTT topic {creds.topic} only")
        typer.echo("its password: `abasto devices list --show-passwords`")
    else:
        created = platform.credentials.register_stores(store_ids)
        typer.echo(f"stores with credentials: {', '.join(created)}")
    _report_reload(reload_nats(platform.settings))


@devices_app.command("revoke")
def devices_revoke(
    ident: Annotated[str, typer.Argument(help="A device id, or a store id (with its devices).")],
) -> None:
    """Delete a device's (or a whole store's) MQTT credentials; its open connections are dropped."""
    from abasto.services import reload_nats  # noqa: PLC0415

    platform = Platform(load_settings())
    registry = platform.credentials
    if any(d.device_id == ident for d in registry.devices()):
        removed = registry.revoke_device(ident)
        typer.echo(f"revoked device {ident} of store {removed.store_id}")
    else:
        registry.revoke(ident)
        typer.echo(f"revoked {ident}")
    _report_reload(reload_nats(platform.settings))


def _report_reload(reloaded: bool) -> None:
    if reloaded:
        typer.echo("nats-server reloaded its users")
    else:
        typer.echo(
            "nats-server is not running under abasto (stopped, or external): "
            "the change applies at the next `abasto up`"
        )
