"""A ``/metrics`` HTTP endpoint on the running event loop, for workers that have no web server.

The stream processor and the raw delivery are asyncio programs that mutate their counters on the
event loop; serving the scrape on that same loop means a scrape always reads a consistent set of
counters (between two batches), with no thread and no lock. The server speaks just enough HTTP/1.1
for Prometheus: ``GET /metrics`` (and ``HEAD``), one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from abasto.errors import PortInUseError

__all__ = ["serve_metrics"]

_MAX_HEAD = 16 * 1024
_READ_TIMEOUT_S = 5.0


@asynccontextmanager
async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``registry`` at ``http://host:port/metrics`` while the block runs; yields the bound port
    (``port=0`` picks a free one)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            writer.write(_respond(registry, head[:_MAX_HEAD]))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(handle, host, port, limit=_MAX_HEAD)
    except OSError as exc:
        raise PortInUseError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
            hint="pick a free port with --metrics-port (0 disables the endpoint)",
        ) from exc
    bound = int(server.sockets[0].getsockname()[1])
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()


def _respond(registry: CollectorRegistry, head: bytes) -> bytes:
    method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
    path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _response(405, "Method Not Allowed", b"only GET\n", "text/plain; charset=utf-8")
    if path != b"/metrics":
        return _response(404, "Not Found", b"see /metrics\n", "text/plain; charset=utf-8")
    body = generate_latest(registry)
    return _response(200, "OK", body, CONTENT_TYPE_LATEST, head_only=method == b"HEAD")


def _response(status: int, reason: str, body: bytes, content_type: str, *, head_only: bool = False) -> bytes:
    headers = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return headers.encode("ascii") + (b"" if head_only else body)
