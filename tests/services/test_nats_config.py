"""The generated nats-server config and the service user's secrets file."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import bcrypt
import pytest

from abasto.devices import CredentialRegistry
from abasto.services import nats_connect_options, service_credentials
from abasto.services.nats import NatsService, nats_server_binary
from abasto.services.nats_config import max_file_store, render_nats_config
from abasto.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        nats={"url": None, "port": 24001, "mqtt_port": 24002, "monitor_port": 24003},
    )


def test_service_secret_is_generated_once_and_private(settings: Settings) -> None:
    first = service_credentials(settings)
    assert first.user == "abasto" and len(first.password) >= 32
    assert service_credentials(settings) == first  # kept, not regenerated
    path = settings.run_dir / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bcrypt.checkpw(first.password.encode(), first.password_bcrypt.encode())
    options = nats_connect_options(settings)
    assert options == {"servers": ["nats://127.0.0.1:24001"], "user": "abasto", "password": first.password}


def test_external_nats_options_come_from_its_url(tmp_path: Path) -> None:
    external = load_settings(home=tmp_path, nats={"url": "nats://a:1,nats://b:2"})
    assert nats_connect_options(external) == {"servers": ["nats://a:1", "nats://b:2"]}


def test_config_holds_hashes_users_and_permissions_and_nats_server_accepts_it(settings: Settings) -> None:
    stores = CredentialRegistry(settings).register_stores(["S0001", "S0002"])
    service = service_credentials(settings)
    text = render_nats_config(settings, service, stores.values())

    for secret in (service.password, *(c.password for c in stores.values())):
        assert secret not in text  # only bcrypt hashes
    assert service.password_bcrypt in text
    block = re.search(r'\{user: "store-S0001".*?\}\}\}', text, re.S)
    assert block is not None
    assert '"MQTT"' in block.group(0)
    assert '["pos.S0001", "pos.S0001.>"]' in block.group(0)
    assert 'subscribe: {deny: [">"]}' in block.group(0)
    assert text.count('host: "127.0.0.1"') == 2 and "0.0.0.0" not in text  # loopback only (NATS, MQTT)
    assert 'http: "127.0.0.1:24003"' in text
    assert f"port: {settings.nats.mqtt_port}" in text
    assert f"max_file_store: {max_file_store(settings)}" in text
    assert max_file_store(settings) > settings.nats.stream_max_bytes

    # the real binary parses it
    conf = settings.run_dir / "test.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)
    checked = subprocess.run(
        [str(nats_server_binary()), "-c", str(conf), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_write_config_is_private_and_reports_changes(settings: Settings) -> None:
    nats = NatsService(settings)
    assert nats.write_config()
    assert stat.S_IMODE(nats.config_path.stat().st_mode) == 0o600
    assert not nats.write_config()  # unchanged
    CredentialRegistry(settings).register_stores(["S0009"])
    assert nats.write_config()
    assert "store-S0009" in nats.config_path.read_text()
