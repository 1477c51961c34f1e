"""`--metrics-port` of the long-running workers: the endpoint serves that worker's live counters."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from abasto.bootstrap import Platform
from abasto.cli.delivery import _deliver
from abasto.cli.realtime import _metrics_endpoint, _Options
from abasto.contracts.events import DeviceEvent, Heartbeat, encode_event
from abasto.delivery import DeliveryConfig
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.partition import Partition
from abasto.settings import Settings
from abasto.stream import abasto_streams, open_stream
from abasto.stream.topology import pos_subject


def _values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@dataclass
class _Processor:
    metrics: ProcessorMetrics


async def test_realtime_worker_endpoint_is_labelled_with_its_partition(tmp_path: Path) -> None:
    processor = _Processor(ProcessorMetrics(received=7, accepted=5, duplicates=1))
    processor.metrics.rejected["malformed_json"] = 1
    options = _Options(
        partition=Partition(2, 4),
        once=True,
        checkpoint_dir=tmp_path,
        checkpoint_every=1,
        checkpoint_interval_s=1.0,
        batch=1,
        world_dir=tmp_path,
        pattern=None,
        durable="d",
        metrics_port=_free_port(),
    )
    async with _metrics_endpoint(processor, options), httpx.AsyncClient() as http:  # type: ignore[arg-type]
        text = (await http.get(f"http://127.0.0.1:{options.metrics_port}/metrics")).text
        processor.metrics.accepted += 1
        later = (await http.get(f"http://127.0.0.1:{options.metrics_port}/metrics")).text
    outcomes = _values(text, "abasto_events_total")
    assert outcomes[(("outcome", "accepted"), ("worker", "2"))] == 5
    assert outcomes[(("outcome", "rejected"), ("worker", "2"))] == 1
    assert _values(later, "abasto_events_total")[(("outcome", "accepted"), ("worker", "2"))] == 6


@pytest.mark.services
async def test_delivery_run_serves_its_counters_while_it_runs(
    embedded_services: Settings, tmp_path: Path
) -> None:
    device = f"dev-{uuid.uuid4().hex[:8]}"
    async with open_stream(embedded_services) as stream:
        await stream.ensure_streams(abasto_streams(embedded_services.nats))
        for seq in range(3):
            event = DeviceEvent(
                device, "S0001", seq, datetime(2026, 3, 1, 10, seq, tzinfo=UTC), Heartbeat(3600)
            )
            await stream.publish(pos_subject("S0001", device), encode_event(event), msg_id=event.msg_id)
    lake = embedded_services.lake.model_copy(update={"raw_uri": (tmp_path / "raw").as_uri()})
    platform = Platform(embedded_services.model_copy(update={"lake": lake}))
    config = DeliveryConfig(durable=f"metrics-{uuid.uuid4().hex[:8]}", max_age_s=0.2, ack_wait_s=30.0)
    port = _free_port()
    task = asyncio.create_task(_deliver(platform, config, once=False, metrics_at=("127.0.0.1", port)))
    scraped: dict[tuple[tuple[str, str], ...], float] = {}
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            await asyncio.sleep(0.05)
            assert not task.done(), task.exception()
            try:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.ConnectError:
                continue
            scraped = _values(text, "abasto_delivery_batches_total")
            if scraped and scraped[()] >= 1:
                break
    if not (scraped and scraped[()] >= 1):  # never SIGINT a loop whose handler may not be installed yet
        task.cancel()
        pytest.fail(f"the delivery served no completed batch in 10 s: {scraped}")
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the worker's handler stops it cleanly
    final = await asyncio.wait_for(task, 30)
    assert 1 <= scraped[()] <= final.batches
    assert final.messages >= 3 and final.rows_written >= 3


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
