"""HTTP ingest: IoT Core's HTTPS publish for POS devices, as an ASGI app (Starlette).

``POST /v1/stores/{store_id}/devices/{device_id}/events``

* **Authentication**: HTTP Basic with the MQTT login from the credential registry (``abasto devices
  list --show-passwords``): a device login (username = device id) may post only for its own store
  and device; a store login (``store-<store_id>``) for any device of its store. Missing or wrong
  credentials → 401 with ``WWW-Authenticate: Basic``; a URL outside the login's store/device → 403.
  The registry file is re-read when it changes, so ``abasto devices revoke`` applies at once.
* **Body**: a JSON array of ``abasto.pos/v1`` events, or NDJSON (one per line). Larger than
  ``max_body_bytes`` → 413 (from ``Content-Length`` before reading, or while reading); more than
  ``max_events`` events → 413; not a JSON array nor NDJSON → 400.
* **Answer**: 200 once every message is acknowledged by the stream, with per-event results
  ``{"index", "status": accepted|duplicate|rejected, "code", "reason"?, "detail"?}`` and counts
  (see :mod:`abasto.ingest.batch` for the reasons). A stream that does not acknowledge → 503:
  nothing in the batch may be assumed stored; re-sending is safe (deduplication by device_id:seq).
* ``GET /metrics`` (no login): Prometheus text of the gateway's counters (:class:`IngestMetrics`:
  posts by status, events by result, rejections by reason) and of ``extra_collectors``.

Bind it to 127.0.0.1 or put TLS in front: Basic credentials travel in clear over plain HTTP.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from abasto.devices.registry import CredentialRegistry, DeviceCredentials, Principal, check_login
from abasto.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from abasto.ingest.batch import ingest_batch, split_batch
from abasto.ingest.metrics import IngestMetrics
from abasto.observability.prometheus import IngestCollector, registry_of
from abasto.settings import Settings
from abasto.stream.port import EventStream
from abasto.stream.topology import abasto_streams

EVENTS_PATH = "/v1/stores/{store_id}/devices/{device_id}/events"
REALM = 'Basic realm="abasto-ingest", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_body_bytes: int = 1024 * 1024
    max_events: int = 1000


class _Logins:
    """The registry's logins, re-read only when the registry file changes."""

    def __init__(self, registry: CredentialRegistry) -> None:
        self.registry = registry
        self._stamp: tuple[int, int, int] | None = None
        self._principals: dict[str, Principal] = {}

    def check(self, username: str, password: str) -> Principal | None:
        try:
            st = os.stat(self.registry.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            self._principals = self.registry.principals() if stamp is not None else {}
            self._stamp = stamp
        return check_login(self._principals, username, password)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason, "message": message}, status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    *,
    stream_factory: Callable[[], EventStream] | None = None,
    limits: IngestLimits | None = None,
    metrics: IngestMetrics | None = None,
    extra_collectors: tuple[Collector, ...] = (),
) -> Starlette:
    """The ingest ASGI app. The stream is opened (and abasto's streams ensured) in the lifespan."""
    limits = limits or IngestLimits()
    counters = metrics or IngestMetrics()
    registry = registry_of(IngestCollector(lambda: counters), *extra_collectors)
    logins = _Logins(CredentialRegistry(settings))

    def default_stream() -> EventStream:
        from abasto.stream import open_stream  # noqa: PLC0415

        return open_stream(settings, name="abasto-ingest")

    make_stream = stream_factory or default_stream
    holder: dict[str, EventStream] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stream = make_stream()
        await stream.connect()
        try:
            await stream.ensure_streams(abasto_streams(settings.nats))
            holder["stream"] = stream
            yield
        finally:
            holder.pop("stream", None)
            await stream.close()

    async def post_events(request: Request) -> Response:
        response = await _post_events(request)
        counters.requests[response.status_code] += 1
        return response

    async def _post_events(request: Request) -> Response:
        store_id = request.path_params["store_id"]
        device_id = request.path_params["device_id"]
        login = _basic(request)
        principal = logins.check(*login) if login is not None else None
        if principal is None:
            return _error(
                401,
                "unauthorized",
                "valid device credentials are required (HTTP Basic)",
                {"WWW-Authenticate": REALM},
            )
        if principal.store_id != store_id:
            return _error(403, "store_mismatch", f"{principal.username} may not post for store {store_id!r}")
        if isinstance(principal, DeviceCredentials) and principal.device_id != device_id:
            return _error(
                403, "device_mismatch", f"{principal.username} may not post for device {device_id!r}"
            )
        try:
            body = await _read_body(request, limits.max_body_bytes)
        except _BodyTooLarge:
            return _error(413, "body_too_large", f"the body exceeds {limits.max_body_bytes} bytes")
        try:
            events = split_batch(body)
        except InvalidInputError as exc:
            return _error(400, "malformed_batch", str(exc))
        if len(events) > limits.max_events:
            return _error(413, "batch_too_large", f"{len(events)} events > {limits.max_events} per request")
        stream = holder.get("stream")
        if stream is None:
            return _error(503, "not_ready", "the event stream is not connected")
        try:
            results = await ingest_batch(stream, principal, device_id, events)
        except (ServiceUnavailableError, NotFoundError) as exc:
            return _error(
                503,
                "stream_unavailable",
                f"nothing acknowledged, re-send the batch: {exc}",
                {"Retry-After": "1"},
            )
        counters.record(results)
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for r in results:
            counts[r.status] += 1
        return JSONResponse({**counts, "results": [r.to_dict() for r in results]})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": "stream" in holder}, status_code=200 if "stream" in holder else 503)

    async def prometheus(_request: Request) -> Response:
        # in a thread: an extra collector may do I/O (the MQTT refusals read nats-server's log)
        return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(EVENTS_PATH, post_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
