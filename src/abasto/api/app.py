"""The SQL HTTP API as an ASGI app (Starlette): Athena's query endpoint for abasto's lake.

* ``POST /v1/query`` — ``{"sql", "snapshot"?, "limit"?, "timeout_s"?}`` → ``{columns: [{name, type}],
  rows, row_count, truncated, elapsed_ms, query_id}``; with ``Accept: application/vnd.apache.arrow.stream``
  the rows come as an Arrow IPC stream (the other fields in ``X-Abasto-*`` headers).
* ``GET /v1/tables`` — the catalog tables the caller may read, with their current snapshot;
  ``GET /v1/tables/{zone.table}`` — schema, partitioning and snapshots (time-travel targets).
* ``GET /health`` (no token: is the engine up) and ``GET /metrics`` (no token: Prometheus text).

Every ``/v1`` request needs ``Authorization: Bearer <token>`` (``abasto api token add``); the token's
profile is the principal the governance seam authorizes, and every query is audited by the engine.
Errors are ``{error, detail, hint}``: 400 bad input or SQL (writes included), 401 no or bad token,
403 denied, 404 unknown table or snapshot, 413 body too large, 503 engine busy, timeout or down.

Bind it to 127.0.0.1 or put TLS in front: bearer tokens travel in clear over plain HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from abasto.analytics.sql import SqlEngine
from abasto.api.metrics import ApiMetrics
from abasto.api.query import ARROW_STREAM, ApiLimits, QueryRequest, QueryRunner
from abasto.api.responses import error_code, error_response, from_error, json_response
from abasto.api.tables import describe, readable_tables
from abasto.api.tokens import ApiToken, TokenStore
from abasto.errors import AbastoError, InvalidInputError
from abasto.observability.prometheus import ApiCollector, registry_of
from abasto.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

REALM = 'Bearer realm="abasto-api"'
_Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    settings: Settings,
    *,
    tokens: TokenStore | None = None,
    engine_factory: Callable[[], SqlEngine] | None = None,
    limits: ApiLimits | None = None,
    metrics: ApiMetrics | None = None,
) -> Starlette:
    """The API app; the SQL engine is opened in the lifespan (and closed with it)."""
    limits = limits or ApiLimits()
    store = tokens or TokenStore.for_settings(settings)
    counters = metrics or ApiMetrics()
    registry = registry_of(ApiCollector(lambda: counters))

    def default_engine() -> SqlEngine:
        from abasto.bootstrap import Platform  # noqa: PLC0415

        return Platform(settings).sql()

    make_engine = engine_factory or default_engine
    holder: dict[str, QueryRunner] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        engine = await run_in_threadpool(make_engine)
        holder["runner"] = QueryRunner(engine)
        try:
            yield
        finally:
            holder.pop("runner", None)
            engine.close()

    def runner() -> QueryRunner:
        found = holder.get("runner")
        if found is None:
            raise _NotReady
        return found

    async def caller(request: Request) -> ApiToken:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Unauthorized("missing_token", "send 'Authorization: Bearer <token>'")
        found = await run_in_threadpool(store.authenticate, token.strip())
        if found is None:
            raise _Unauthorized("invalid_token", "the bearer token is unknown or revoked")
        return found

    async def post_query(request: Request) -> Response:
        who = await caller(request)
        body = await _read_json(request, limits.max_body_bytes)
        query = QueryRequest.parse(body, limits)
        try:
            result = await runner().run(query, principal=who.profile)
        except AbastoError as exc:
            counters.record_query(error_code(exc))
            raise
        counters.record_query(
            "ok", rows=result.row_count, truncated=result.truncated, seconds=result.elapsed_ms / 1000
        )
        if ARROW_STREAM in request.headers.get("accept", ""):
            return Response(result.to_arrow_stream(), media_type=ARROW_STREAM, headers=result.headers())
        return json_response(result.to_json(), headers={"X-Abasto-Query-Id": result.query_id})

    async def get_tables(request: Request) -> Response:
        who = await caller(request)
        engine = runner().engine
        tables = await run_in_threadpool(readable_tables, engine.catalog, who.profile, engine.audit)
        return json_response({"profile": who.profile, "tables": tables})

    async def get_table(request: Request) -> Response:
        who = await caller(request)
        engine = runner().engine
        name = request.path_params["name"]
        return json_response(
            await run_in_threadpool(describe, engine.catalog, name, who.profile, engine.audit)
        )

    async def health(_request: Request) -> Response:
        ready = "runner" in holder
        return json_response({"ok": ready}, 200 if ready else 503)

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def route(path: str, handler: _Handler, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            response = await _answer(handler, request)
            counters.requests[(path, response.status_code)] += 1
            return response

        return Route(path, endpoint, methods=[method])

    return Starlette(
        routes=[
            route("/v1/query", post_query, "POST"),
            route("/v1/tables", get_tables, "GET"),
            route("/v1/tables/{name}", get_table, "GET"),
            route("/health", health, "GET"),
            route("/metrics", prometheus, "GET"),
        ],
        lifespan=lifespan,
    )


class _Unauthorized(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class _NotReady(Exception):
    pass


class _TooLarge(Exception):
    pass


async def _answer(handler: _Handler, request: Request) -> Response:
    """Run ``handler``; abasto's errors and the API's own refusals become JSON error answers."""
    try:
        return await handler(request)
    except _Unauthorized as exc:
        return error_response(
            401,
            exc.code,
            exc.detail,
            "create a token with `abasto api token add NAME --profile analyst`",
            {"WWW-Authenticate": REALM},
        )
    except _TooLarge as exc:
        return error_response(413, "body_too_large", str(exc), "send one statement, not data")
    except _NotReady:
        return error_response(
            503, "not_ready", "the SQL engine is not open yet", "retry in a moment", {"Retry-After": "1"}
        )
    except AbastoError as exc:
        return from_error(exc)
    except Exception:  # a bug: logged here, its text never sent to the caller
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal", "the API failed on this request", "see the server log")


async def _read_json(request: Request, limit: int) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as exc:
        raise InvalidInputError(
            f"the body is not JSON: {exc}",
            hint='send {"sql": "SELECT …"} with Content-Type: application/json',
        ) from exc
