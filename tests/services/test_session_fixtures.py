"""The shared session fixtures other test packages build on really serve what they promise."""

from __future__ import annotations

import json
import socket

import nats
import psycopg
import pytest

from abasto.settings import Settings

pytestmark = pytest.mark.services


def test_pg_dsn_reaches_the_configured_database(pg_dsn: str, embedded_services: Settings) -> None:
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (embedded_services.postgres.database,)
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('wal_level', 'max_replication_slots', 'max_wal_senders', 'listen_addresses', "
                "'server_encoding', 'TimeZone', 'port')"
            ).fetchall()
        )
    assert settings == {
        "wal_level": "logical",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
        "TimeZone": "UTC",
        "port": str(embedded_services.postgres.port),
    }
    assert embedded_services.postgres.port != 5432  # never the machine's default PostgreSQL


async def test_nats_credentials_give_jetstream(
    nats_url: str, nats_user_credentials: dict[str, object]
) -> None:
    assert nats_url == nats_user_credentials["servers"][0]  # type: ignore[index]
    assert not nats_url.endswith(":4222")
    nc = await nats.connect(**nats_user_credentials)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits.max_storage != 0
    finally:
        await nc.close()
    # and without them the server refuses (checked by hand: nats-py leaks its socket on that error)
    port = int(nats_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        info = json.loads(sock.recv(4096).removeprefix(b"INFO "))
        assert info["auth_required"] is True
        sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        assert sock.recv(4096).startswith(b"-ERR 'Authorization Violation'")


def test_mqtt_port_listens_on_loopback(mqtt_port: int) -> None:
    assert mqtt_port != 1883
    with socket.create_connection(("127.0.0.1", mqtt_port), timeout=3):
        pass
