"""The `abasto up|down|status` and `abasto devices ...` commands, through typer's test runner."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from abasto.cli import app
from abasto.errors import InvalidInputError
from abasto.settings import Settings

SettingsFactory = Callable[..., Settings]


def env_for(settings: Settings) -> dict[str, str | None]:
    """Environment that makes ``load_settings()`` in the CLI see ``settings``."""
    return {
        "ABASTO_HOME": str(settings.home_dir),
        "ABASTO_NATS__PORT": str(settings.nats.port),
        "ABASTO_NATS__MQTT_PORT": str(settings.nats.mqtt_port),
        "ABASTO_NATS__MONITOR_PORT": str(settings.nats.monitor_port),
        "ABASTO_POSTGRES__PORT": str(settings.postgres.port),
        "ABASTO_NATS__URL": None,
        "ABASTO_POSTGRES__URL": None,
        "ABASTO_CONFIG": None,
    }


@pytest.mark.services
def test_status_json_shows_the_running_session_services(embedded_services: Settings) -> None:
    result = CliRunner().invoke(app, ["status", "--json"], env=env_for(embedded_services))
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == {"nats", "postgres"}
    nats_row, pg_row = rows["nats"], rows["postgres"]
    assert nats_row["state"] == pg_row["state"] == "running"
    assert isinstance(nats_row["pid"], int) and isinstance(pg_row["pid"], int)
    assert nats_row["answers"] and pg_row["answers"]
    assert f"nats://127.0.0.1:{embedded_services.nats.port}" in nats_row["addresses"]
    assert f"mqtt://127.0.0.1:{embedded_services.nats.mqtt_port}" in nats_row["addresses"]
    assert pg_row["addresses"] == [
        f"postgresql://127.0.0.1:{embedded_services.postgres.port}/{embedded_services.postgres.database}"
    ]
    assert pg_row["data_dir"] == str(embedded_services.pg_data_dir)


@pytest.mark.services
def test_up_then_down_through_the_cli(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    runner, env = CliRunner(), env_for(settings)
    started = runner.invoke(app, ["up", "--json"], env=env)
    assert started.exit_code == 0, started.output
    assert [(r["name"], r["action"], r["state"]) for r in json.loads(started.output)] == [
        ("nats", "started", "running"),
        ("postgres", "started", "running"),
    ]
    table = runner.invoke(app, ["status"], env=env)
    assert table.exit_code == 0 and "running" in table.output and "stopped" not in table.output
    stopped = runner.invoke(app, ["down", "--json"], env=env)
    assert stopped.exit_code == 0, stopped.output
    assert [(r["state"], r["pid"]) for r in json.loads(stopped.output)] == [("stopped", None)] * 2


def test_devices_add_list_revoke(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    runner, env = CliRunner(), env_for(settings)
    added = runner.invoke(app, ["devices", "add", "S0001", "S0002"], env=env)
    assert added.exit_code == 0, added.output
    assert "next `abasto up`" in added.output  # nats is not running for this home

    listed = runner.invoke(app, ["devices", "list", "--json"], env=env)
    assert [r["username"] for r in json.loads(listed.output)] == ["store-S0001", "store-S0002"]
    assert "password" not in json.loads(listed.output)[0]
    shown = runner.invoke(app, ["devices", "list", "--json", "--show-passwords"], env=env)
    assert all(len(r["password"]) >= 32 for r in json.loads(shown.output))

    assert runner.invoke(app, ["devices", "revoke", "S0001"], env=env).exit_code == 0
    listed = runner.invoke(app, ["devices", "list", "--json"], env=env)
    assert [r["store_id"] for r in json.loads(listed.output)] == ["S0002"]

    bad = runner.invoke(app, ["devices", "add", "S.1"], env=env)
    assert isinstance(bad.exception, InvalidInputError)
