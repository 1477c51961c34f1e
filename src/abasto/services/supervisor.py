"""``up`` / ``down`` / ``status`` over all embedded services."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NoReturn, Protocol

from abasto.errors import InvalidInputError, ServiceError, ServiceUnavailableError
from abasto.services.health import wait_healthy
from abasto.services.model import Health, ServiceOutcome, ServiceStatus, UpAction, UpReport
from abasto.services.nats import NatsService
from abasto.services.ports import PortSetting, ensure_port_free, listener_pid, port_is_free
from abasto.services.postgres import PostgresService
from abasto.services.process import Daemon, pid_is
from abasto.services.secrets import service_credentials
from abasto.settings import Settings

Progress = Callable[[str], None]


class EmbeddedService(Protocol):
    name: str

    @property
    def external(self) -> bool: ...
    @property
    def daemon(self) -> Daemon: ...
    def ports(self) -> list[PortSetting]: ...
    def running_pid(self) -> int | None: ...
    def clear_stale(self) -> None: ...
    def start(self) -> int: ...
    def refresh(self) -> None: ...
    def startup_health(self) -> Health: ...
    def ready(self) -> None: ...
    def stop(self) -> int | None: ...
    def status(self) -> ServiceStatus: ...


SERVICE_NAMES = ("nats", "postgres")


def services(settings: Settings, only: Iterable[str] | None = None) -> list[EmbeddedService]:
    """The services, in start order; ``only`` picks some by name."""
    everything: list[EmbeddedService] = [NatsService(settings), PostgresService(settings)]
    if only is None:
        return everything
    wanted = set(only)
    unknown = wanted - set(SERVICE_NAMES)
    if unknown:
        raise InvalidInputError(
            f"unknown service(s): {', '.join(sorted(unknown))}",
            hint=f"the services are: {', '.join(SERVICE_NAMES)}",
        )
    return [svc for svc in everything if svc.name in wanted]


def up(
    settings: Settings,
    *,
    only: Iterable[str] | None = None,
    timeout_s: float = 60.0,
    progress: Progress | None = None,
) -> UpReport:
    """Start the embedded services (or ``only`` the named ones) that are not running; wait for each.

    Idempotent: a healthy service is left alone (same pid). A stale pid file is removed. A port
    held by another process raises :class:`PortInUseError` before anything is started.
    """
    say = progress or (lambda _msg: None)
    all_services = services(settings, only)
    with _exclusive(settings):
        for svc in all_services:
            if not svc.external and svc.running_pid() is None:
                svc.clear_stale()
                _claim_ports(svc)
        return UpReport(tuple(_bring_up(svc, timeout_s, say) for svc in all_services))


@contextmanager
def _exclusive(settings: Settings) -> Iterator[None]:
    """One ``up`` / ``down`` / reload at a time per home (two terminals, a demo and the CLI...)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _claim_ports(svc: EmbeddedService) -> None:
    """Fail if a port is taken, unless the holder is our own server whose pid file was lost."""
    for spec in svc.ports():
        if port_is_free(spec.host, spec.port):
            continue
        holder = listener_pid(spec.port)
        if holder is not None and pid_is(holder, svc.daemon.identity):
            svc.daemon.write_pid(holder)
            return
        ensure_port_free(spec, svc.name)


def _bring_up(svc: EmbeddedService, timeout_s: float, say: Progress) -> ServiceOutcome:
    started = time.monotonic()
    if svc.external:
        say(f"{svc.name}: external server, checking that it answers")
        return ServiceOutcome(UpAction.EXTERNAL, svc.status(), time.monotonic() - started)
    if svc.running_pid() is not None:
        say(f"{svc.name}: already running, checking its health")
        svc.refresh()
        health = _wait(svc, timeout_s, say)
        if health.ok:
            svc.ready()
            return ServiceOutcome(UpAction.ALREADY_RUNNING, svc.status(), time.monotonic() - started)
        if svc.running_pid() is not None:
            _fail(svc, health, timeout_s)
        # it died under us (crashed or killed just now): start it afresh
    svc.clear_stale()  # again: it may have died since the preflight
    _claim_ports(svc)
    say(f"{svc.name}: starting")
    svc.start()
    health = _wait(svc, timeout_s, say)
    if not health.ok:
        _fail(svc, health, timeout_s)
    svc.ready()
    return ServiceOutcome(UpAction.STARTED, svc.status(), time.monotonic() - started)


def _wait(svc: EmbeddedService, timeout_s: float, say: Progress) -> Health:
    say(f"{svc.name}: waiting until it answers")
    return wait_healthy(svc.startup_health, timeout_s, alive=lambda: svc.running_pid() is not None)


def _fail(svc: EmbeddedService, health: Health, timeout_s: float) -> NoReturn:
    log = svc.daemon.log_file
    if svc.running_pid() is None:
        raise ServiceError(
            f"{svc.name} exited while starting: {health.detail}\n{svc.daemon.log_tail(5)}",
            hint=f"see {log}",
        )
    raise ServiceUnavailableError(
        f"{svc.name} is running but did not answer within {timeout_s:.0f} s: {health.detail}",
        hint=f"see {log}; `abasto down` then `abasto up` restarts it",
    )


def down(settings: Settings, *, only: Iterable[str] | None = None) -> list[ServiceStatus]:
    """Stop the embedded services abasto started (data is kept); external ones are not touched."""
    with _exclusive(settings):
        for svc in reversed(services(settings, only)):
            if not svc.external:
                svc.stop()
    return status(settings, only=only)


def status(settings: Settings, *, only: Iterable[str] | None = None) -> list[ServiceStatus]:
    return [svc.status() for svc in services(settings, only)]


def reload_nats(settings: Settings) -> bool:
    """Re-render nats-server's config (e.g. after the credentials registry changed) and reload it.

    Returns True if a running server loaded it, False if nats is not running (the next ``up``
    uses the new config) or is external (its users are managed elsewhere).
    """
    nats = NatsService(settings)
    if nats.external:
        return False
    with _exclusive(settings):
        return nats.reload()


def nats_connect_options(settings: Settings) -> dict[str, object]:
    """Keyword arguments for ``nats.connect(**options)`` as abasto's service user.

    Embedded: the generated service user. External: the configured URL (credentials, if any, in it).
    """
    if settings.nats.url is not None:
        return {"servers": [s.strip() for s in settings.nats.url.split(",")]}
    return service_credentials(settings).connect_kwargs(settings.nats.client_url())
