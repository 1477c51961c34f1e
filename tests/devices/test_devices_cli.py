"""`abasto devices add --device/--new-device`, `list` and `revoke DEVICE`, through typer's runner."""

from __future__ import annotations

import json
from collections.abc import Callable

from typer.testing import CliRunner

from abasto.cli import app
from abasto.devices.registry import CredentialRegistry
from abasto.errors import InvalidInputError
from abasto.settings import Settings

SettingsFactory = Callable[..., Settings]


def _env(settings: Settings) -> dict[str, str | None]:
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


def test_device_commands(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    runner, env = CliRunner(), _env(settings)
    assert runner.invoke(app, ["devices", "add", "S0001"], env=env).exit_code == 0
    added = runner.invoke(app, ["devices", "add", "S0001", "--new-device"], env=env)
    assert added.exit_code == 0, added.output
    assert "dev-S0001-1" in added.output and "pos/S0001/dev-S0001-1" in added.output
    named = runner.invoke(app, ["devices", "add", "S0001", "--device", "till-7"], env=env)
    assert named.exit_code == 0, named.output

    rows = json.loads(runner.invoke(app, ["devices", "list", "--json", "--show-passwords"], env=env).output)
    assert [(r["kind"], r["username"], r["topic"]) for r in rows] == [
        ("store", "store-S0001", "pos/S0001/<device_id>"),
        ("device", "dev-S0001-1", "pos/S0001/dev-S0001-1"),
        ("device", "till-7", "pos/S0001/till-7"),
    ]
    assert rows[1]["password"] == CredentialRegistry(settings).get_device("dev-S0001-1").password

    revoked = runner.invoke(app, ["devices", "revoke", "till-7"], env=env)
    assert revoked.exit_code == 0 and "revoked device till-7" in revoked.output
    rows = json.loads(runner.invoke(app, ["devices", "list", "--json"], env=env).output)
    assert [r["username"] for r in rows] == ["store-S0001", "dev-S0001-1"]

    two = runner.invoke(app, ["devices", "add", "S0001", "S0002", "--new-device"], env=env)
    assert isinstance(two.exception, InvalidInputError)
    assert runner.invoke(app, ["devices", "revoke", "S0001"], env=env).exit_code == 0
    assert json.loads(runner.invoke(app, ["devices", "list", "--json"], env=env).output) == []
