"""CLI commands: delivery of device events to the raw zone (``abasto delivery run``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from abasto.bootstrap import Platform
from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    from abasto.delivery import DeliveryConfig, DeliveryMetrics

# the delivery (pyarrow, msgspec) is imported inside the command: `abasto --help` must not pay for it

__all__ = ["app"]

delivery_app = typer.Typer(help="Delivery of device events to the raw zone (Firehose).", no_args_is_help=True)
app.add_typer(delivery_app, name="delivery")


@delivery_app.command("run")
def run_command(
    once: Annotated[bool, typer.Option("--once", help="Deliver what the stream holds, then exit.")] = False,
    durable: Annotated[str, typer.Option(help="Durable consumer name.")] = "delivery-raw",
    max_messages: Annotated[int, typer.Option(help="Cut a batch at this many messages.")] = 50_000,
    max_mb: Annotated[float, typer.Option(help="Cut a batch at this many MiB of payload.")] = 64.0,
    max_age: Annotated[
        float, typer.Option(help="Cut a batch this many seconds after its first message.")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counters as JSON.")] = False,
    metrics_port: Annotated[
        int, typer.Option(min=0, help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: off).")
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics endpoint binds.")] = "127.0.0.1",
) -> None:
    """Write device events from the POS stream into Parquet under <raw>/devices/pos_events.

    With --metrics-port, the counters (abasto_delivery_messages_total, abasto_delivery_files_total…)
    are served for Prometheus while the delivery runs.
    """
    from abasto.delivery import DeliveryConfig  # noqa: PLC0415

    config = DeliveryConfig(
        durable=durable,
        max_messages=max_messages,
        max_bytes=max(1, int(max_mb * 1024 * 1024)),
        max_age_s=max_age,
        ack_wait_s=max(120.0, 2 * max_age),
    )
    endpoint = (metrics_host, metrics_port) if metrics_port else None
    metrics = asyncio.run(_deliver(Platform(load_settings()), config, once=once, metrics_at=endpoint))
    if as_json:
        typer.echo(json.dumps(metrics.as_dict(), indent=2))
        return
    typer.echo(
        f"{metrics.messages:,} messages → {metrics.rows_written:,} rows in {metrics.files_written} "
        f"new files ({metrics.batches} batches; {metrics.invalid_total} invalid, "
        f"{metrics.duplicates} duplicates, {metrics.files_skipped} files already present)"
    )


async def _deliver(
    platform: Platform, config: DeliveryConfig, *, once: bool, metrics_at: tuple[str, int] | None = None
) -> DeliveryMetrics:
    from abasto.delivery import RawDelivery  # noqa: PLC0415
    from abasto.stream import abasto_streams  # noqa: PLC0415

    settings = platform.settings
    async with platform.event_stream() as stream, contextlib.AsyncExitStack() as scope:
        await stream.ensure_streams(abasto_streams(settings.nats))
        delivery = RawDelivery(stream, settings.raw_uri, config)
        if metrics_at is not None:
            from abasto.observability import DeliveryCollector, registry_of, serve_metrics  # noqa: PLC0415

            registry = registry_of(DeliveryCollector(lambda: delivery.metrics))
            port = await scope.enter_async_context(serve_metrics(registry, *metrics_at))
            typer.echo(f"metrics on http://{metrics_at[0]}:{port}/metrics", err=True)
        if once:
            return await delivery.run_until_idle()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"delivering {config.stream} → {delivery.table_uri} (Ctrl-C stops)")
        await delivery.run(stop)
        return delivery.metrics
