"""Health probes: each answers quickly with :class:`Health` and never raises."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from abasto.services.model import Health

PROBE_TIMEOUT_S = 2.0


def redact_url(url: str) -> str:
    """``url`` without user and password (for display)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def tcp_answers(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return Health(True, f"{host}:{port} accepts connections")
    except OSError as exc:
        return Health(False, f"{host}:{port}: {exc.strerror or exc}")


def http_ok(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Health(False, f"{url}: {exc.__class__.__name__}")
    if response.status_code != 200:
        return Health(False, f"{url}: HTTP {response.status_code} {response.text.strip()[:200]}")
    return Health(True, f"{url}: ok")


def nats_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    """A NATS server greets every new connection with ``INFO {...}``: connect and read it.

    ``url`` may be a comma-separated server list; the first server that answers is enough.
    """
    failures = []
    for one in url.split(","):
        parts = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                sock.settimeout(timeout_s)
                greeting = sock.recv(4096)
        except OSError as exc:
            failures.append(f"{host}:{port}: {exc.strerror or exc}")
            continue
        if greeting.startswith(b"INFO "):
            return Health(True, f"nats server at {host}:{port} answers")
        failures.append(f"{host}:{port}: not a NATS server")
    return Health(False, "; ".join(failures))


def postgres_answers(dsn: str, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout_s)), autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return Health(False, first_line)
    return Health(True, "SELECT 1 ok")


def wait_healthy(
    probe: Callable[[], Health],
    timeout_s: float,
    *,
    alive: Callable[[], bool] = lambda: True,
    interval_s: float = 0.1,
) -> Health:
    """Poll ``probe`` until it is ok, the timeout passes, or ``alive`` says the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = probe()
        if health.ok:
            return health
        if not alive():
            return Health(False, f"the process exited ({health.detail})")
        if time.monotonic() >= deadline:
            return health
        time.sleep(interval_s)
