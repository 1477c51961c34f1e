"""Per-store MQTT users on nats-server: what a store may publish, and live credential changes.

Runs against a nats-server of its own (not the session's), so the test messages on ``pos.*`` never
reach other tests' streams.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import nats
import paho.mqtt.client as mqtt
import pytest
from nats.errors import TimeoutError as NatsTimeout
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from abasto.devices import CredentialRegistry, Credentials
from abasto.services import down, nats_connect_options, reload_nats, status, up
from abasto.settings import Settings

pytestmark = pytest.mark.services
SettingsFactory = Callable[..., Settings]


class Device:
    """A POS device: one MQTT v3.1.1 connection, driven synchronously."""

    def __init__(
        self, port: int, username: str, password: str, client_id: str, *, clean: bool = True
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean
        )
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(60, 60)  # no reconnect storm while a test looks at a refusal
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.suback: list[ReasonCode] = []
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        self.connack = rc
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _rc: ReasonCode, _p: object) -> None:
        self.disconnected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _m: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self.suback = codes
        self.subscribed.set()

    def connect(self) -> bool:
        """True if the broker accepted the login."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        assert self.connack is not None
        return not self.connack.is_failure

    def publish_qos1(self, topic: str, payload: bytes) -> bool:
        """Publish with QoS 1; True once the broker acknowledged it (PUBACK)."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return info.is_published()

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK"
        return self.suback

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def nats_alone(isolated_settings_factory: SettingsFactory) -> Iterator[Settings]:
    settings = isolated_settings_factory()
    CredentialRegistry(settings).register_stores(["S0001", "S0002"])  # before up: in the first config
    up(settings, only=["nats"])
    yield settings
    down(settings, only=["nats"])


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    made: list[Device] = []
    yield made
    for device in made:
        device.close()


def _device(
    nats_alone: Settings,
    devices: list[Device],
    creds: Credentials,
    client_id: str,
    *,
    clean: bool = True,
    password: str | None = None,
) -> Device:
    device = Device(
        nats_alone.nats.mqtt_port, creds.username, password or creds.password, client_id, clean=clean
    )
    devices.append(device)
    return device


@pytest.mark.parametrize("clean", [True, False], ids=["clean-session", "persistent-session"])
async def test_store_publishes_qos1_on_its_own_topic_only(
    nats_alone: Settings, devices: list[Device], clean: bool
) -> None:
    registry = CredentialRegistry(nats_alone)
    own, other = registry.get("S0001"), registry.get("S0002")
    nc = await nats.connect(**nats_connect_options(nats_alone))
    try:
        sub = await nc.subscribe("pos.>")
        await nc.flush()
        device = _device(nats_alone, devices, own, f"S0001-D1-{clean}", clean=clean)
        assert device.connect()
        # a forbidden publish is acknowledged all the same (nats-server drops it silently) ...
        assert device.publish_qos1(other.topic("D1"), b"spoofed")
        assert device.publish_qos1(own.topic("D1"), b"genuine")
        msg = await sub.next_msg(timeout=5)
        # ... but never delivered: it was published first, so it would have arrived first
        assert (msg.subject, msg.data) == ("pos.S0001.D1", b"genuine")
        with pytest.raises(NatsTimeout):
            await sub.next_msg(timeout=0.3)
    finally:
        await nc.close()


def test_store_user_cannot_subscribe_nor_use_the_nats_protocol(
    nats_alone: Settings, devices: list[Device]
) -> None:
    own = CredentialRegistry(nats_alone).get("S0001")
    device = _device(nats_alone, devices, own, "S0001-reader")
    assert device.connect()
    codes = device.subscribe("pos/S0002/#")
    assert [c.is_failure for c in codes] == [True]  # SUBACK 0x80: reading other stores is refused

    # the NATS protocol by hand: INFO, CONNECT with the store's login, then the server's verdict
    with socket.create_connection(("127.0.0.1", nats_alone.nats.port), timeout=5) as sock:
        assert sock.recv(4096).startswith(b"INFO ")
        login = json.dumps({"user": own.username, "pass": own.password, "verbose": False})
        sock.sendall(f"CONNECT {login}\r\nPING\r\n".encode())
        assert sock.recv(4096).startswith(b"-ERR 'Authorization Violation'")


def test_wrong_password_is_refused(nats_alone: Settings, devices: list[Device]) -> None:
    own = CredentialRegistry(nats_alone).get("S0001")
    device = _device(nats_alone, devices, own, "S0001-bad", password="not-the-password")
    assert not device.connect()


def test_registry_changes_apply_on_reload_without_restart(
    nats_alone: Settings, devices: list[Device]
) -> None:
    pid_before = status(nats_alone, only=["nats"])[0].pid
    registry = CredentialRegistry(nats_alone)
    new = registry.register_stores(["S0003"])["S0003"]

    assert not _device(nats_alone, devices, new, "S0003-early").connect()  # not loaded yet
    assert reload_nats(nats_alone)
    connected = _device(nats_alone, devices, new, "S0003-D1")
    assert connected.connect()
    assert connected.publish_qos1(new.topic("D1"), b"hello")

    registry.revoke("S0003")
    assert reload_nats(nats_alone)
    assert connected.disconnected.wait(5)  # the server drops the revoked user's connection
    assert not _device(nats_alone, devices, new, "S0003-late").connect()
    assert status(nats_alone, only=["nats"])[0].pid == pid_before  # same process throughout
