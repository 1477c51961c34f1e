"""Port conflicts fail fast and name the setting; external servers are used, never started."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from abasto.errors import PortInUseError
from abasto.services import ServiceState, UpAction, down, status, up
from abasto.services.nats import NatsService
from abasto.services.postgres import PostgresService
from abasto.settings import Settings

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A foreign process's listening socket (this test process plays the foreigner)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def _nothing_started(settings: Settings) -> bool:
    return (
        NatsService(settings).daemon.find() is None
        and PostgresService(settings).daemon.find() is None
        and not (settings.run_dir / "nats.pid").exists()
        and not (settings.run_dir / "postgres.pid").exists()
    )


@pytest.mark.parametrize(
    ("section", "key", "env_var"),
    [
        ("nats", "port", "ABASTO_NATS__PORT"),
        ("nats", "mqtt_port", "ABASTO_NATS__MQTT_PORT"),
        ("nats", "monitor_port", "ABASTO_NATS__MONITOR_PORT"),
        ("postgres", "port", "ABASTO_POSTGRES__PORT"),
    ],
)
def test_port_taken_by_a_foreign_process_raises_before_starting_anything(
    settings_factory: SettingsFactory, listener: socket.socket, section: str, key: str, env_var: str
) -> None:
    port = listener.getsockname()[1]
    settings = settings_factory(**{section: {key: port}})
    with pytest.raises(PortInUseError) as err:
        up(settings)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message
    assert f"{section}.{key}" in message
    assert f"pid {os.getpid()}" in message  # who holds it
    assert err.value.hint is not None and env_var in err.value.hint
    assert _nothing_started(settings)


class FakeNatsServer:
    """Greets every connection the way a NATS server does; enough for the "answers" probe."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b'INFO {"server_id":"fake"}\r\n')

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_external_urls_are_not_started_and_status_says_whether_they_answer(
    settings_factory: SettingsFactory, listener: socket.socket
) -> None:
    fake = FakeNatsServer()
    closed_port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more: an external PostgreSQL that is down
    try:
        settings = settings_factory(
            nats={"url": f"nats://svc:secret@127.0.0.1:{fake.port}"},
            postgres={"url": f"postgresql://postgres:secret@127.0.0.1:{closed_port}/abasto"},
        )
        report = up(settings)
        assert [o.action for o in report.outcomes] == [UpAction.EXTERNAL, UpAction.EXTERNAL]
        assert not report.ok  # the PostgreSQL one does not answer
        assert _nothing_started(settings)

        rows = {s.name: s for s in status(settings)}
        assert rows["nats"].state is ServiceState.EXTERNAL and rows["nats"].answers
        assert rows["postgres"].state is ServiceState.EXTERNAL and not rows["postgres"].answers
        assert rows["nats"].addresses == (f"nats://127.0.0.1:{fake.port}",)  # no credentials shown
        assert "secret" not in repr(rows)
        assert all(r.pid is None for r in rows.values())

        assert {s.state for s in down(settings)} == {ServiceState.EXTERNAL}  # untouched
    finally:
        fake.close()
