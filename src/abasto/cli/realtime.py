"""CLI commands: the stream processor worker (``abasto realtime run [--worker N --of M]``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from abasto.cli.app import app
from abasto.settings import Settings, load_settings

if TYPE_CHECKING:
    from abasto.realtime.partition import Partition
    from abasto.realtime.processor import Processor
    from abasto.stream import EventStream

# the engine, the world tables and the model are imported inside the command: `abasto --help` must
# not pay for them

__all__ = ["app", "realtime_app"]

realtime_app = typer.Typer(help="Stream analytics: POS events → stockout alerts.", no_args_is_help=True)
app.add_typer(realtime_app, name="realtime")


@realtime_app.callback()
def _group() -> None:
    """Stream analytics: POS events → stockout alerts (a group, even with one command)."""


@realtime_app.command("run")
def run_command(
    worker: Annotated[int, typer.Option(min=0, help="This worker's partition (0 … of-1).")] = 0,
    of: Annotated[int, typer.Option(min=1, help="Number of workers sharing the stores.")] = 1,
    once: Annotated[bool, typer.Option("--once", help="Process what the stream holds, then exit.")] = False,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoints (default: <home>/realtime/checkpoints).")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N messages.")] = 10_000,
    checkpoint_interval: Annotated[float, typer.Option(help="... or every S seconds.")] = 5.0,
    batch: Annotated[int, typer.Option(min=1, help="Messages per fetch.")] = 1_000,
    world_dir: Annotated[Path | None, typer.Option("--world", help="Generated world (reference).")] = None,
    pattern: Annotated[
        Path | None, typer.Option(help="Pattern model as Parquet (default: the approved model).")
    ] = None,
    durable: Annotated[str, typer.Option(help="Base name of the durable consumer.")] = "realtime",
    as_json: Annotated[bool, typer.Option("--json", help="Print the counters as JSON.")] = False,
    metrics_port: Annotated[
        int, typer.Option(min=0, help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: off).")
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics endpoint binds.")] = "127.0.0.1",
) -> None:
    """Consume this worker's share of the POS stream, checkpointed; alerts go to the ALERTS stream.

    Killing the worker (even with SIGKILL) and starting it again changes nothing in the outputs.
    With --metrics-port, the counters (abasto_events_total{outcome}, abasto_alerts_total{kind}…,
    labelled worker="N") are served for Prometheus while the worker runs.
    """
    from abasto.realtime.partition import Partition  # noqa: PLC0415

    settings = load_settings()
    options = _Options(
        partition=Partition(worker, of),
        once=once,
        checkpoint_dir=checkpoint_dir or settings.home_dir / "realtime" / "checkpoints",
        checkpoint_every=checkpoint_every,
        checkpoint_interval_s=checkpoint_interval,
        batch=batch,
        world_dir=world_dir or settings.world_dir,
        pattern=pattern,
        durable=durable,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    summary = asyncio.run(_run(settings, options))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"{summary['durable']}: {summary['applied']:,} messages applied up to stream seq "
        f"{summary['position']} ({summary['checkpoints']} checkpoints, {summary['skipped']} redeliveries "
        f"skipped); {summary['alerts']} alerts; {summary['engine_build']} engine"
    )


@dataclass(frozen=True, slots=True)
class _Options:
    partition: Partition
    once: bool
    checkpoint_dir: Path
    checkpoint_every: int
    checkpoint_interval_s: float
    batch: int
    world_dir: Path
    pattern: Path | None
    durable: str
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"


def _build(settings: Settings, stream: EventStream, options: _Options) -> Processor:
    import pyarrow.parquet as pq  # noqa: PLC0415

    from abasto.bootstrap import Platform  # noqa: PLC0415
    from abasto.ml.pattern import PatternModel  # noqa: PLC0415
    from abasto.realtime.bootstrap import engine_for_world  # noqa: PLC0415
    from abasto.realtime.checkpoint import CheckpointStore  # noqa: PLC0415
    from abasto.realtime.processor import Processor  # noqa: PLC0415
    from abasto.world import World  # noqa: PLC0415

    world = World.load(options.world_dir)
    model: Any = (
        PatternModel.from_table(pq.read_table(options.pattern))
        if options.pattern is not None
        else Platform(settings).approved_model()
    )
    stores = [str(s) for s in world.stores.column("store_id").to_pylist()]
    return Processor(
        stream,
        engine_for_world(world, model, settings),
        durable=options.durable,
        batch_size=options.batch,
        partition=options.partition,
        stores=stores,
        checkpoints=CheckpointStore(options.checkpoint_dir),
        checkpoint_every=options.checkpoint_every,
        checkpoint_interval_s=options.checkpoint_interval_s,
        ack_wait_s=max(60.0, 4 * options.checkpoint_interval_s),
    )


async def _run(settings: Settings, options: _Options) -> dict[str, object]:
    from abasto.realtime.build import engine_build  # noqa: PLC0415
    from abasto.stream import abasto_streams, open_stream  # noqa: PLC0415

    async with open_stream(settings, name=f"abasto-realtime-{options.partition.index}") as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        processor = _build(settings, stream, options)
        async with contextlib.AsyncExitStack() as scope:
            if options.metrics_port:
                await scope.enter_async_context(_metrics_endpoint(processor, options))
            await _process(processor, options)
    return {
        "engine_build": engine_build(),
        "durable": processor.durable,
        "worker": options.partition.index,
        "of": options.partition.count,
        "position": processor.position,
        "applied": processor.applied,
        "skipped": processor.skipped,
        "checkpoints": processor.checkpoints_written,
        "alerts": processor.metrics.alerts_total,
        "metrics": processor.metrics.as_dict(),
    }


async def _process(processor: Processor, options: _Options) -> None:
    if options.once:
        await processor.run_until_idle()
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await processor.run(stop)


@contextlib.asynccontextmanager
async def _metrics_endpoint(processor: Processor, options: _Options) -> AsyncIterator[None]:
    from abasto.observability import ProcessorCollector, registry_of, serve_metrics  # noqa: PLC0415

    collector = ProcessorCollector(
        lambda: processor.metrics, const_labels={"worker": str(options.partition.index)}
    )
    async with serve_metrics(registry_of(collector), options.metrics_host, options.metrics_port) as port:
        typer.echo(f"metrics on http://{options.metrics_host}:{port}/metrics", err=True)
        yield


if __name__ == "__main__":  # `python -m abasto.cli.realtime run …` before the command is registered
    realtime_app()
