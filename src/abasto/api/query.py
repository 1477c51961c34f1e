"""``POST /v1/query``: the request, its limits, and running it on the governed SQL engine.

The engine (:class:`abasto.analytics.SqlEngine`) checks that the statement is read-only, authorizes
the caller's profile for the endpoint and every table read, records the query in the audit log and
time-travels one table to a snapshot. This module adds what an HTTP endpoint needs on top: a row
limit (the answer says ``truncated``), a per-query timeout (the statement is interrupted and the
answer is 503), and one query at a time on the engine's connection, so an interrupt stops the
statement that timed out and never another caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa

from abasto.analytics.sql import SqlEngine
from abasto.analytics.statements import analyse
from abasto.api.responses import clean_value
from abasto.errors import AbastoError, InvalidInputError, TransientError

__all__ = ["ApiLimits", "QueryRequest", "QueryResult", "QueryRunner", "QueryTimeoutError"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Limits of the SQL endpoint."""

    #: rows returned when the request names no limit
    default_rows: int = 1000
    #: the largest limit a request may ask for
    max_rows: int = 100_000
    #: seconds a query may take (waiting for the engine included) when the request names none
    timeout_s: float = 30.0
    #: the longest timeout a request may ask for
    max_timeout_s: float = 300.0
    #: largest request body
    max_body_bytes: int = 256 * 1024


class QueryTimeoutError(TransientError):
    """The query ran out of time and was interrupted."""

    code = "timeout"


@dataclass(frozen=True, slots=True)
class QueryRequest:
    sql: str
    snapshot_id: int | None
    #: the table the request time-travels, when it named one (``{"curated.x": 123}``)
    snapshot_table: str | None
    limit: int
    timeout_s: float

    @classmethod
    def parse(cls, doc: object, limits: ApiLimits) -> QueryRequest:
        """Validate a decoded JSON body; raises InvalidInputError naming the bad field."""
        hint = (
            'send {"sql": "SELECT …", "snapshot": 123 | {"curated.t": 123}, "limit": 1000, "timeout_s": 30}'
        )
        if not isinstance(doc, dict):
            raise InvalidInputError("the body must be a JSON object", hint=hint)
        unknown = sorted(set(doc) - {"sql", "snapshot", "limit", "timeout_s"})
        if unknown:
            raise InvalidInputError(f"unknown fields: {', '.join(unknown)}", hint=hint)
        sql = doc.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidInputError("'sql' must be a non-empty string", hint=hint)
        snapshot_id, snapshot_table = _snapshot(doc.get("snapshot"), hint)
        limit = doc.get("limit", limits.default_rows)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= limits.max_rows:
            raise InvalidInputError(f"'limit' must be an integer from 0 to {limits.max_rows}", hint=hint)
        timeout = doc.get("timeout_s", limits.timeout_s)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= limits.max_timeout_s
        ):
            raise InvalidInputError(
                f"'timeout_s' must be a number of seconds in (0, {limits.max_timeout_s}]", hint=hint
            )
        return cls(sql, snapshot_id, snapshot_table, limit, float(timeout))


def _snapshot(value: object, hint: str) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, dict) and len(value) == 1:
        ((table, snap),) = value.items()
        if isinstance(snap, int) and not isinstance(snap, bool):
            return snap, str(table)
    raise InvalidInputError(
        "'snapshot' must be a snapshot id, or one {table: snapshot id} pair (time travel reads one table)",
        hint=hint,
    )


@dataclass(frozen=True, slots=True)
class QueryResult:
    query_id: str
    table: pa.Table
    row_count: int
    truncated: bool
    elapsed_ms: float

    def to_json(self) -> dict[str, Any]:
        columns = [{"name": f.name, "type": str(f.type)} for f in self.table.schema]
        values = [_column_values(col) for col in self.table.columns]
        rows = [list(row) for row in zip(*values, strict=True)] if values else []
        return {
            "columns": columns,
            "rows": rows,
            "row_count": self.row_count,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "query_id": self.query_id,
        }

    def to_arrow_stream(self) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return bytes(sink.getvalue().to_pybytes())

    def headers(self) -> dict[str, str]:
        return {
            "X-Abasto-Query-Id": self.query_id,
            "X-Abasto-Row-Count": str(self.row_count),
            "X-Abasto-Truncated": "true" if self.truncated else "false",
            "X-Abasto-Elapsed-Ms": f"{self.elapsed_ms:.3f}",
        }


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    values: list[Any] = column.to_pylist()
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_nested(kind):
        return [clean_value(v) for v in values]
    return values


class QueryRunner:
    """Runs requests on one engine, one at a time, each within its timeout."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self._gate = asyncio.Lock()

    async def run(self, request: QueryRequest, *, principal: str) -> QueryResult:
        """Run ``request`` as ``principal`` (a profile); raises abasto's errors (see the engine)."""
        query_id = uuid.uuid4().hex
        started = time.perf_counter()
        deadline = started + request.timeout_s
        _check_snapshot_table(request)
        try:
            async with asyncio.timeout(request.timeout_s):
                await self._gate.acquire()
        except TimeoutError:
            raise QueryTimeoutError(
                f"the SQL engine stayed busy for {request.timeout_s:g} s (other queries running)",
                hint="retry later, or raise 'timeout_s'",
            ) from None
        try:
            table = await self._execute(request, principal, deadline - time.perf_counter())
        finally:
            self._gate.release()
        elapsed_ms = (time.perf_counter() - started) * 1000
        truncated = table.num_rows > request.limit
        kept = table.slice(0, request.limit) if truncated else table
        return QueryResult(query_id, kept, kept.num_rows, truncated, elapsed_ms)

    async def _execute(self, request: QueryRequest, principal: str, budget_s: float) -> pa.Table:
        loop = asyncio.get_running_loop()
        call = partial(self.engine.query, request.sql, principal=principal, snapshot_id=request.snapshot_id)
        future = loop.run_in_executor(None, call)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(budget_s, 0.001))
        except asyncio.CancelledError:  # the client went away: stop the statement before the next one
            self.engine.interrupt()
            with contextlib.suppress(AbastoError):
                await future
            raise
        except TimeoutError:
            self.engine.interrupt()
            with contextlib.suppress(AbastoError):
                await future  # the statement stops at its next interrupt check
            raise QueryTimeoutError(
                f"the query ran longer than {request.timeout_s:g} s and was stopped",
                hint="narrow it (filters, fewer columns, aggregates), or raise 'timeout_s'",
            ) from None


def _check_snapshot_table(request: QueryRequest) -> None:
    """A ``{table: id}`` snapshot must name the table the query reads (the engine checks the rest)."""
    if request.snapshot_table is None:
        return
    try:
        tables = {t.lower() for t in analyse(request.sql).tables}
    except AbastoError:
        return  # refused statements are refused, and audited, by the engine
    if request.snapshot_table.lower() not in tables:
        raise InvalidInputError(
            f"'snapshot' names {request.snapshot_table!r}, which the query does not read "
            f"(it reads {', '.join(sorted(tables)) or 'no table'})",
            hint='name the table of the FROM clause, e.g. {"curated.sellout_hourly": 123}',
        )
