"""up / down / status on isolated homes: idempotence, crash recovery, stale pid files, clean stop.

These tests start, kill and stop their own services (``settings_factory``), never the session's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import nats
import psutil
import psycopg
import pytest
from nats.js.errors import NotFoundError as StreamNotFound

from abasto.services import ServiceState, UpAction, down, nats_connect_options, status, up
from abasto.services.pg_cluster import MAX_SOCKET_PATH, socket_dir_for
from abasto.services.process import wait_gone
from abasto.settings import Settings, load_settings

pytestmark = pytest.mark.services
SettingsFactory = Callable[..., Settings]


def _states(settings: Settings) -> dict[str, ServiceState]:
    return {s.name: s.state for s in status(settings)}


def _pids(settings: Settings) -> dict[str, int | None]:
    return {s.name: s.pid for s in status(settings)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _add_stream(settings: Settings, messages: int) -> None:
    nc = await nats.connect(**nats_connect_options(settings))
    try:
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["keep.>"])
        for i in range(messages):
            await js.publish(f"keep.{i}", f"m{i}".encode())
    finally:
        await nc.close()


async def _stream_messages(settings: Settings) -> int | None:
    nc = await nats.connect(**nats_connect_options(settings))
    try:
        info = await nc.jetstream().stream_info("KEEP")
        return int(info.state.messages)
    except StreamNotFound:
        return None
    finally:
        await nc.close()


def _add_rows(settings: Settings, rows: int) -> None:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (id int PRIMARY KEY)")
        conn.execute("INSERT INTO keep SELECT generate_series(1, %s)", (rows,))


def _count_rows(settings: Settings) -> int:
    with psycopg.connect(settings.postgres.dsn()) as conn:
        row = conn.execute("SELECT count(*) FROM keep").fetchone()
    assert row is not None
    return int(row[0])


def test_up_twice_is_idempotent(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    first = up(settings)
    assert first.ok
    assert [o.action for o in first.outcomes] == [UpAction.STARTED, UpAction.STARTED]
    pids = _pids(settings)
    assert all(pids.values())

    second = up(settings)
    assert [o.action for o in second.outcomes] == [UpAction.ALREADY_RUNNING, UpAction.ALREADY_RUNNING]
    assert _pids(settings) == pids
    assert _states(settings) == {"nats": ServiceState.RUNNING, "postgres": ServiceState.RUNNING}
    # the database from the settings exists and answers
    with psycopg.connect(settings.postgres.dsn()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (settings.postgres.database,)
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)


def test_down_stops_both_removes_pid_files_and_keeps_data(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    up(settings)
    pids = _pids(settings)
    _add_rows(settings, 3)
    asyncio.run(_add_stream(settings, 2))

    after = down(settings)
    stopped = {"nats": ServiceState.STOPPED, "postgres": ServiceState.STOPPED}
    assert {s.name: s.state for s in after} == stopped
    assert all(s.pid is None for s in after)
    assert all(_gone(pid) for pid in pids.values() if pid)
    assert not (settings.run_dir / "nats.pid").exists()
    assert not (settings.run_dir / "postgres.pid").exists()
    assert (settings.pg_data_dir / "PG_VERSION").exists()
    assert settings.nats_store_dir.is_dir()
    assert _states(settings) == stopped

    up(settings)
    assert _count_rows(settings) == 3
    assert asyncio.run(_stream_messages(settings)) == 2
    down(settings)
    assert down(settings)[0].state is ServiceState.STOPPED  # down twice is fine


def test_kill9_nats_then_up_recovers_its_streams(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    up(settings)
    asyncio.run(_add_stream(settings, 5))
    old = _pids(settings)["nats"]
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert _states(settings)["nats"] in (ServiceState.STOPPED, ServiceState.UNHEALTHY)

    report = up(settings)
    assert report.ok
    assert report.by_name("nats").action is UpAction.STARTED
    assert report.by_name("postgres").action is UpAction.ALREADY_RUNNING
    new = _pids(settings)["nats"]
    assert new not in (None, old)
    assert asyncio.run(_stream_messages(settings)) == 5


def test_kill9_postmaster_then_up_keeps_committed_rows(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    up(settings)
    _add_rows(settings, 7)
    old = _pids(settings)["postgres"]
    assert old is not None
    os.kill(old, signal.SIGKILL)

    report = up(settings)  # right away: stale postmaster.pid, socket lock, dying backends
    assert report.ok
    assert report.by_name("postgres").action is UpAction.STARTED
    assert _pids(settings)["postgres"] not in (None, old)
    assert _count_rows(settings) == 7


def test_stale_pid_files_with_dead_pids_are_replaced(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    dead = subprocess.Popen(["true"])
    dead.wait()
    settings.run_dir.mkdir(parents=True)
    for name in ("nats", "postgres"):
        (settings.run_dir / f"{name}.pid").write_text(f"{dead.pid}\n")
    assert _states(settings) == {"nats": ServiceState.STOPPED, "postgres": ServiceState.STOPPED}
    assert all("stale pid file" in s.detail for s in status(settings))

    report = up(settings)
    assert [o.action for o in report.outcomes] == [UpAction.STARTED, UpAction.STARTED]
    pids = _pids(settings)
    for name in ("nats", "postgres"):
        assert (settings.run_dir / f"{name}.pid").read_text().strip() == str(pids[name])


def test_pid_file_naming_a_foreign_process_is_not_trusted(settings_factory: SettingsFactory) -> None:
    """pid reuse: the pid file names a live process that is not ours; it must survive up and down."""
    settings = settings_factory()
    foreign = subprocess.Popen(["sleep", "60"])
    try:
        settings.run_dir.mkdir(parents=True)
        (settings.run_dir / "nats.pid").write_text(f"{foreign.pid}\n")
        (settings.run_dir / "postgres.pid").write_text(f"{foreign.pid}\n")
        report = up(settings)
        assert report.ok
        assert foreign.pid not in _pids(settings).values()
        down(settings)
        assert foreign.poll() is None  # still running: never signalled
    finally:
        foreign.kill()
        foreign.wait()
    assert wait_gone(foreign.pid, 5)


def test_long_home_path_puts_the_socket_in_a_short_dir(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    """A Unix socket path is limited to 107 bytes; PostgreSQL must still start from a deep home."""
    settings = settings_factory(home=tmp_path / ("deep-" * 20) / "home")
    socket_dir = socket_dir_for(settings)
    assert not socket_dir.is_relative_to(settings.home_dir)
    assert len(str(socket_dir / f".s.PGSQL.{settings.postgres.port}")) <= MAX_SOCKET_PATH
    try:
        assert up(settings, only=["postgres"]).ok
        assert (socket_dir / f".s.PGSQL.{settings.postgres.port}").is_socket()
        with psycopg.connect(host=str(socket_dir), port=settings.postgres.port, user="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        down(settings, only=["postgres"])
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_socket_dir_stays_under_run_dir_when_short_enough(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "h", postgres={"port": 15432})
    assert socket_dir_for(settings) == settings.run_dir / "pg"
