"""Shared fixtures: abasto's embedded services, started once per test session.

Stable names other test packages build on:

* ``embedded_settings`` (session): a ``Settings`` whose home is under pytest's temp dir and whose
  ports are free ports picked now, so a developer's own ``abasto up`` (default ports) never collides.
* ``embedded_services`` (session): the same ``Settings`` once nats-server (JetStream + MQTT) and
  PostgreSQL answer; they are stopped at the end of the session.
* ``pg_dsn`` (str), ``nats_url`` (str), ``nats_user_credentials`` (``nats.connect(**kwargs)``
  keyword arguments for the service user), ``mqtt_port`` (int): conveniences over the above.
* ``settings_factory`` (function) and ``isolated_settings_factory`` (session): build further
  isolated ``Settings`` (own home, own free ports) for tests that start, kill or stop services
  themselves; whatever was started with them is stopped after the test / the session.

A test that uses ``embedded_services`` (directly or through the conveniences) is marked
``services`` automatically; mark it explicitly too, for the reader.

The services are detached daemons, so a test run that dies without teardown would leave them
running: SIGTERM (``timeout``, CI) is turned into KeyboardInterrupt so finalizers still run, and
each session first stops test services whose home directory has been deleted since. As root, the
session's base temp dir is ``$TMPDIR/abasto-pytest-*`` instead of ``/tmp/pytest-of-root`` (see
``pytest_configure``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import pytest

from abasto.services import down, nats_connect_options, up
from abasto.services.isolated import isolated_settings
from abasto.services.nats import nats_server_binary
from abasto.services.pg_tools import pg_bin_dir
from abasto.services.process import terminate
from abasto.settings import Settings

SettingsFactory = Callable[..., Settings]
_OWN_BASETEMP = pytest.StashKey[Path]()


# --- session hygiene -------------------------------------------------------------------------

_ROOT_BASETEMP_PREFIX = "abasto-pytest-"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """As root, PostgreSQL runs as a system user that must traverse to its data directory, but every
    pytest start chmods ``/tmp/pytest-of-root`` back to 0700, which crashes a running server of a
    concurrent session. So root sessions get a base temp dir of their own, outside that directory
    (removed at the end, since pytest keeps an explicit one)."""
    if os.geteuid() == 0 and config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix=_ROOT_BASETEMP_PREFIX)
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGTERM (``timeout``, CI) → KeyboardInterrupt, so fixture finalizers still stop the services
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    _stop_orphaned_test_services()


def _stop_orphaned_test_services() -> None:
    """Stop test services (homes in the temp dir) whose home pytest has deleted since: leftovers of
    a run killed without teardown. Only abasto's layout is matched: ``<home>/run/nats.conf`` and
    ``<home>/postgres``."""
    tmp = Path(tempfile.gettempdir())
    nats_bin = os.path.realpath(nats_server_binary())
    pg_bin = os.path.realpath(pg_bin_dir() / "postgres")
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if len(cmdline) < 3:
            continue
        binary, flag, target = os.path.realpath(cmdline[0]), cmdline[1], Path(cmdline[2])
        if binary == nats_bin and flag == "-c" and target.name == "nats.conf" and target.parent.name == "run":
            home, first = target.parent.parent, signal.SIGTERM
        elif binary == pg_bin and flag == "-D" and target.name == "postgres":
            home, first = target.parent, signal.SIGINT
        else:
            continue
        if home.is_relative_to(tmp) and not home.exists():
            terminate(proc.pid, first=first, timeout_s=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "embedded_services" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def embedded_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(tmp_path_factory.mktemp("abasto-home"))


@pytest.fixture(scope="session")
def embedded_services(embedded_settings: Settings) -> Iterator[Settings]:
    try:
        up(embedded_settings, timeout_s=60)
        yield embedded_settings
    finally:
        down(embedded_settings)


@pytest.fixture(scope="session")
def pg_dsn(embedded_services: Settings) -> str:
    return embedded_services.postgres.dsn()


@pytest.fixture(scope="session")
def nats_url(embedded_services: Settings) -> str:
    return embedded_services.nats.client_url()


@pytest.fixture(scope="session")
def nats_user_credentials(embedded_services: Settings) -> dict[str, object]:
    """``await nats.connect(**nats_user_credentials)`` logs in as the service user ``abasto``."""
    return nats_connect_options(embedded_services)


@pytest.fixture(scope="session")
def mqtt_port(embedded_services: Settings) -> int:
    return embedded_services.nats.mqtt_port


@pytest.fixture(scope="session")
def isolated_settings_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SettingsFactory]:
    """For module- or session-scoped fixtures: ``isolated_settings_factory(**overrides)`` → Settings."""
    made: list[Settings] = []

    def make(**overrides: Any) -> Settings:
        settings = isolated_settings(tmp_path_factory.mktemp("abasto-isolated"), **overrides)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        down(settings)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Iterator[SettingsFactory]:
    """``settings_factory(**overrides)`` → isolated Settings; services they started are stopped after."""
    made: list[Settings] = []

    def make(**overrides: Any) -> Settings:
        settings = isolated_settings(tmp_path / f"home{len(made)}", **overrides)
        made.append(settings)
        return settings

    yield make
    for settings in made:
        down(settings)
