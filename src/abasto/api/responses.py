"""JSON bodies of the HTTP API: errors as ``{error, detail, hint}`` and Arrow values as JSON."""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from starlette.responses import Response

from abasto.errors import (
    AbastoError,
    AccessDeniedError,
    NotFoundError,
    TerminalError,
    TransientError,
)

__all__ = ["error_code", "error_response", "from_error", "json_response", "status_of"]


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``doc`` as JSON; dates and times as ISO 8601, decimals as strings, bytes as base64."""
    body = json.dumps(doc, default=_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(
    status: int, error: str, detail: str, hint: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": error, "detail": detail, "hint": hint}, status, headers)


def status_of(exc: AbastoError) -> tuple[int, str]:
    """HTTP status and error code of one of abasto's errors (bad input of any kind is a 400)."""
    if isinstance(exc, AccessDeniedError):
        return 403, "access_denied"
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, TransientError):
        return 503, "unavailable"
    if isinstance(exc, TerminalError) and exc.http_status < 500:
        return 400, "invalid_request"
    return 500, "internal"


def error_code(exc: AbastoError) -> str:
    """The ``error`` field for ``exc``: its own ``code`` if it declares one, else its status' code."""
    own = getattr(exc, "code", None)
    return str(own) if own else status_of(exc)[1]


def from_error(exc: AbastoError) -> Response:
    """The JSON error answer for one of abasto's errors (503s say when to retry)."""
    status, _ = status_of(exc)
    code = error_code(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return error_response(status, code, str(exc), exc.hint, headers)


def clean_value(value: Any) -> Any:
    """A value of a result row that JSON can carry (NaN and ±inf become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    if isinstance(value, dict):
        return {k: clean_value(v) for k, v in value.items()}
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
