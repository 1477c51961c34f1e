"""What the supervisor reports: the state of each service and the outcome of ``up``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ServiceState(StrEnum):
    RUNNING = "running"  #: started by abasto, alive and answering its health check
    UNHEALTHY = "unhealthy"  #: started by abasto, alive, not answering
    STOPPED = "stopped"  #: not running (a stale pid file may have been left behind)
    EXTERNAL = "external"  #: configured by URL; abasto neither starts nor stops it


class UpAction(StrEnum):
    STARTED = "started"
    ALREADY_RUNNING = "already_running"
    EXTERNAL = "external"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


@dataclass(frozen=True)
class ServiceStatus:
    """One service as ``abasto status`` shows it."""

    name: str
    state: ServiceState
    pid: int | None
    #: client-facing addresses, e.g. ``nats://127.0.0.1:14222`` (credentials never included)
    addresses: tuple[str, ...]
    data_dir: Path | None
    log_file: Path | None
    #: does it answer its health check (for external services: does it answer at all)
    answers: bool
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state.value,
            "pid": self.pid,
            "addresses": list(self.addresses),
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "log_file": str(self.log_file) if self.log_file else None,
            "answers": self.answers,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ServiceOutcome:
    action: UpAction
    status: ServiceStatus
    seconds: float


@dataclass(frozen=True)
class UpReport:
    outcomes: tuple[ServiceOutcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every service answers (external ones included)."""
        return all(o.status.answers for o in self.outcomes)

    def by_name(self, name: str) -> ServiceOutcome:
        for outcome in self.outcomes:
            if outcome.status.name == name:
                return outcome
        raise KeyError(name)


def external_status(name: str, addresses: tuple[str, ...], health: Health) -> ServiceStatus:
    return ServiceStatus(name, ServiceState.EXTERNAL, None, addresses, None, None, health.ok, health.detail)


def embedded_status(
    name: str,
    *,
    pid: int | None,
    addresses: tuple[str, ...],
    data_dir: Path,
    log_file: Path,
    health: Callable[[], Health],
    stale_pid: int | None = None,
) -> ServiceStatus:
    """Status of a service abasto supervises; ``health`` is probed only if the process runs."""
    if pid is None:
        detail = f"stale pid file (pid {stale_pid} is not this service)" if stale_pid else ""
        return ServiceStatus(name, ServiceState.STOPPED, None, addresses, data_dir, log_file, False, detail)
    probe = health()
    state = ServiceState.RUNNING if probe.ok else ServiceState.UNHEALTHY
    return ServiceStatus(name, state, pid, addresses, data_dir, log_file, probe.ok, probe.detail)
