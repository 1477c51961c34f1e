"""Is a configured port free? If not, who holds it?"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass

import psutil

from abasto.errors import PortInUseError


@dataclass(frozen=True)
class PortSetting:
    """A port abasto listens on, with the setting that chooses it (for the error hint)."""

    host: str
    port: int
    #: dotted setting name, e.g. ``nats.mqtt_port``
    setting: str

    @property
    def env_var(self) -> str:
        section, key = self.setting.split(".", 1)
        return f"ABASTO_{section.upper()}__{key.upper()}"


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on ``host:port`` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def listener_pid(port: int) -> int | None:
    """Pid of the process listening on TCP ``port``, if the OS lets us see it."""
    with contextlib.suppress(psutil.AccessDenied, PermissionError, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid is not None else None
    return None


def describe_pid(pid: int | None) -> str:
    if pid is None:
        return "another process"
    try:
        return f"pid {pid} ({psutil.Process(pid).name()})"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"


def ensure_port_free(spec: PortSetting, service: str) -> None:
    """Raise :class:`PortInUseError` naming the port, its holder and the setting to change."""
    if port_is_free(spec.host, spec.port):
        return
    holder = describe_pid(listener_pid(spec.port))
    raise PortInUseError(
        f"{service} cannot listen on {spec.host}:{spec.port} ({spec.setting}): "
        f"the port is already in use by {holder}",
        hint=f"stop that process, or choose another port: set {spec.env_var}=<port> "
        f"(or `{spec.setting.split('.', 1)[1]} = <port>` under [{spec.setting.split('.', 1)[0]}] "
        "in abasto.toml)",
    )
