"""Per-device MQTT identities: registry, broker permissions (own leaf only), refusal counting,
revocation. The broker tests run a nats-server of their own, so its log holds only their refusals."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
import pytest
from nats.errors import TimeoutError as NatsTimeout
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from abasto.devices.registry import CredentialRegistry, DeviceCredentials
from abasto.errors import InvalidInputError, NotFoundError
from abasto.ingest.refusals import RefusalCounter, parse_violation
from abasto.services import down, nats_connect_options, reload_nats, service_credentials, up
from abasto.services.nats import nats_server_binary
from abasto.services.nats_config import render_nats_config
from abasto.settings import Settings, load_settings

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", nats={"url": None, "port": 24101, "mqtt_port": 24102})


# --- registry ----------------------------------------------------------------------------------


def test_device_ids_default_numbering_and_idempotence(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    first = registry.add_device("S0001")
    second = registry.add_device("S0001")
    assert (first.device_id, second.device_id) == ("dev-S0001-1", "dev-S0001-2")
    assert first.username == first.device_id and first.password != second.password
    assert first.publish_subjects == ("pos.S0001.dev-S0001-1",)
    assert first.topic == "pos/S0001/dev-S0001-1"
    assert first.password not in repr(first)
    assert registry.add_device("S0001", "dev-S0001-1") == first  # kept unchanged
    assert registry.add_device("S0002").device_id == "dev-S0002-1"
    assert [d.device_id for d in CredentialRegistry(settings).devices("S0001")] == [
        "dev-S0001-1",
        "dev-S0001-2",
    ]

    with pytest.raises(InvalidInputError, match="belongs to store 'S0001'"):
        registry.add_device("S0002", "dev-S0001-1")  # device ids are global (they key dedup)
    for bad in ("store-S0001", "abasto", "a.b", "a/b", ""):
        with pytest.raises(InvalidInputError):
            registry.add_device("S0001", bad)


def test_revoke_device_store_and_authenticate(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    store = registry.register_stores(["S0001"])["S0001"]
    d1, d2 = registry.add_device("S0001"), registry.add_device("S0001")
    assert registry.authenticate(d1.username, d1.password) == d1
    assert registry.authenticate(store.username, store.password) == store
    assert registry.authenticate(d1.username, d2.password) is None
    assert registry.authenticate("nobody", d1.password) is None

    assert registry.revoke_device(d1.device_id) == d1
    assert registry.authenticate(d1.username, d1.password) is None
    with pytest.raises(NotFoundError):
        registry.get_device(d1.device_id)
    with pytest.raises(NotFoundError):
        registry.revoke_device(d1.device_id)
    assert [c.store_id for c in registry.list()] == ["S0001"]  # the store login stays

    registry.revoke("S0001")  # a store takes its devices with it
    assert registry.devices() == [] and registry.list() == []
    assert registry.add_device("S0001").device_id == "dev-S0001-1"  # numbering restarts when all gone


def test_config_grants_each_device_its_own_leaf_only(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    stores = registry.register_stores(["S0001"])
    device = registry.add_device("S0001")
    text = render_nats_config(settings, service_credentials(settings), stores.values())
    assert device.password not in text and device.password_bcrypt in text
    block = text[text.index(f'{{user: "{device.username}"') :].split("}}}", 1)[0]
    assert '["MQTT"]' in block
    assert 'allow: ["pos.S0001.dev-S0001-1"]' in block
    assert block.endswith('subscribe: {deny: [">"]')
    assert '["pos.S0001", "pos.S0001.>"]' in text  # the store login is still there
    conf = settings.run_dir / "check.conf"
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


def test_parse_violation_lines_of_nats_server() -> None:
    mqtt_line = (
        '[17708] 2026/11/25 18:48:47.287190 [ERR] 127.0.0.1:52809 - mid:7 - "x1" - '
        'Publish Violation - Subject "pos.S2.D1"'
    )
    assert parse_violation(mqtt_line) == (7, None, "x1", "pos.S2.D1")
    nats_line = (
        '[1] 2026/11/25 18:48:47.287190 [ERR] 127.0.0.1:1 - cid:12 - "py" - '
        'Publish Violation - User "store-S1", Subject "pos.S2"'
    )
    assert parse_violation(nats_line) == (12, "store-S1", "py", "pos.S2")
    assert parse_violation("[1] 2026/11/25 [INF] Server is ready") is None


# --- against nats-server -----------------------------------------------------------------------


class Device:
    """One MQTT v3.1.1 connection, driven synchronously."""

    def __init__(self, port: int, creds: DeviceCredentials, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(creds.username, creds.password)
        self.client.reconnect_delay_set(60, 60)
        self.port = port
        self.connack: ReasonCode | None = None
        self.connected, self.disconnected = threading.Event(), threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        self.connack = rc
        self.connected.set()

    def connect(self) -> bool:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        assert self.connack is not None
        return not self.connack.is_failure

    def publish_qos1(self, topic: str, payload: bytes) -> bool:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(isolated_settings_factory: SettingsFactory) -> Iterator[Settings]:
    settings = isolated_settings_factory()
    registry = CredentialRegistry(settings)
    registry.register_stores(["S0001", "S0002"])
    registry.add_device("S0001")  # dev-S0001-1, in the first config
    up(settings, only=["nats"])
    yield settings
    down(settings, only=["nats"])


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    made: list[Device] = []
    yield made
    for d in made:
        d.close()


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def test_device_publishes_on_its_own_leaf_only_and_refusals_are_counted(
    broker: Settings, devices: list[Device]
) -> None:
    own = CredentialRegistry(broker).get_device("dev-S0001-1")
    counter = RefusalCounter(broker)
    before = counter.refused_publishes().get(own.username, 0)
    options: dict[str, Any] = dict(nats_connect_options(broker))
    nc = await nats.connect(**options)
    try:
        sub = await nc.subscribe("pos.>")
        await nc.flush()
        device = Device(broker.nats.mqtt_port, own, "dev-S0001-1-conn")
        devices.append(device)
        assert device.connect()
        # forbidden: another device of its store, the store topic itself, another store; all PUBACKed
        for topic in ("pos/S0001/dev-S0001-2", "pos/S0001", "pos/S0002/dev-S0001-1"):
            assert device.publish_qos1(topic, b"spoofed")
        assert device.publish_qos1(own.topic, b"genuine")
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data) == ("pos.S0001.dev-S0001-1", b"genuine")  # published last
        with pytest.raises(NatsTimeout):
            await sub.next_msg(timeout=0.3)
    finally:
        await nc.close()

    _wait_for(lambda: counter.refused_publishes().get(own.username, 0) == before + 3)
    subjects = [r.subject for r in counter.recent() if r.user == own.username][-3:]
    assert subjects == ["pos.S0001.dev-S0001-2", "pos.S0001", "pos.S0002.dev-S0001-1"]
    assert all(r.client == "dev-S0001-1-conn" for r in counter.recent()[-3:])
    assert counter.poll() == []  # nothing new: each line is counted once


def test_revoking_a_device_drops_its_connection_and_keeps_the_others(
    broker: Settings, devices: list[Device]
) -> None:
    registry = CredentialRegistry(broker)
    doomed, kept = registry.add_device("S0002"), registry.add_device("S0002")
    assert reload_nats(broker)
    conn = Device(broker.nats.mqtt_port, doomed, "doomed")
    other = Device(broker.nats.mqtt_port, kept, "kept")
    devices.extend([conn, other])
    assert conn.connect() and other.connect()

    registry.revoke_device(doomed.device_id)
    assert reload_nats(broker)
    assert conn.disconnected.wait(5)  # nats-server drops the removed user's connection on reload
    assert not other.disconnected.is_set()
    assert other.publish_qos1(kept.topic, b"still here")
    again = Device(broker.nats.mqtt_port, doomed, "doomed-again")
    devices.append(again)
    assert not again.connect()
