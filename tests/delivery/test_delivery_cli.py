"""`abasto delivery run --once` against the session's embedded services."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from delivery_helpers import keys, read_table
from typer.testing import CliRunner

import abasto.cli.delivery  # noqa: F401  (registers the command until abasto.cli imports it)
from abasto.cli.app import app
from abasto.contracts.events import DeviceEvent, Heartbeat, encode_event
from abasto.delivery import pos_events_uri
from abasto.settings import Settings
from abasto.stream import abasto_streams, open_stream
from abasto.stream.topology import pos_subject


def _env(settings: Settings, raw: Path) -> dict[str, str | None]:
    return {
        "ABASTO_HOME": str(settings.home_dir),
        "ABASTO_NATS__PORT": str(settings.nats.port),
        "ABASTO_NATS__MQTT_PORT": str(settings.nats.mqtt_port),
        "ABASTO_NATS__MONITOR_PORT": str(settings.nats.monitor_port),
        "ABASTO_POSTGRES__PORT": str(settings.postgres.port),
        "ABASTO_LAKE__RAW_URI": raw.as_uri(),
        "ABASTO_NATS__URL": None,
        "ABASTO_POSTGRES__URL": None,
        "ABASTO_CONFIG": None,
    }


async def _publish(settings: Settings, evs: list[DeviceEvent]) -> None:
    async with open_stream(settings) as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        for e in evs:
            await stream.publish(pos_subject(e.store_id, e.device_id), encode_event(e), msg_id=e.msg_id)


@pytest.mark.services
def test_delivery_run_once_writes_the_pos_stream_to_the_raw_zone(
    embedded_services: Settings, tmp_path: Path
) -> None:
    device = f"dev-{uuid.uuid4().hex[:8]}"
    evs = [
        DeviceEvent(
            device_id=device,
            store_id="S0001",
            seq=i,
            event_time=datetime(2026, 3, 1, 10, i, tzinfo=UTC),
            payload=Heartbeat(battery_mv=3600 + i),
        )
        for i in range(3)
    ]
    asyncio.run(_publish(embedded_services, evs))

    args = ["delivery", "run", "--once", "--json", "--durable", f"cli-{device}"]
    result = CliRunner().invoke(app, args, env=_env(embedded_services, tmp_path))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["messages"] >= 3 and metrics["rows_written"] >= 3
    table = read_table(pos_events_uri(tmp_path.as_uri()))
    mine = [k for k in keys(table) if k[0] == device]
    assert mine == [(device, 0), (device, 1), (device, 2)]
