"""CLI commands: the HTTP ingest gateway (`abasto ingest serve`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["app"]

ingest_app = typer.Typer(help="Device gateway: HTTP batch ingest into the POS stream.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


@ingest_app.command("serve")
def ingest_serve(
    host: Annotated[
        str, typer.Option(help="Address to bind (plain HTTP: keep it on loopback or behind TLS).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8081,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body; larger → 413.")] = 1024 * 1024,
    max_events: Annotated[int, typer.Option(help="Most events per request; more → 413.")] = 1000,
) -> None:
    """Serve POST /v1/stores/{store_id}/devices/{device_id}/events (HTTP Basic = device login).

    GET /metrics (no login) serves the gateway's counters for Prometheus, and the MQTT publishes
    the embedded nats-server refused (abasto_mqtt_refused_publishes_total{user}).
    """
    import uvicorn  # noqa: PLC0415

    from abasto.ingest import IngestLimits, create_app  # noqa: PLC0415

    settings = load_settings()
    extra: tuple[Collector, ...] = ()
    if settings.nats.url is None:  # the embedded nats-server: its log shows the refused MQTT publishes
        from abasto.ingest.refusals import RefusalCounter  # noqa: PLC0415
        from abasto.observability import RefusalCollector  # noqa: PLC0415

        refusals = RefusalCounter(settings)
        extra = (RefusalCollector(lambda: refusals),)
    application = create_app(
        settings,
        limits=IngestLimits(max_body_bytes=max_body_bytes, max_events=max_events),
        extra_collectors=extra,
    )
    typer.echo(f"abasto ingest listening on http://{host}:{port} (Prometheus metrics at /metrics)")
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
