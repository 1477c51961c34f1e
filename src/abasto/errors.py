"""The one exception root of abasto.

Every error abasto raises on purpose derives from :class:`AbastoError` and is either
:class:`TransientError` (worth retrying: a server restarting, a timeout, a full buffer) or
:class:`TerminalError` (retrying cannot help: bad input, a wrong setting, a denied request).
Workers and retry loops decide on that split only (see :func:`is_transient`).

Each error carries ``http_status`` so the one API handler can map it; unknown exceptions
become a generic 500 without leaking their text.
"""

from __future__ import annotations


class AbastoError(Exception):
    """Root of every error abasto raises on purpose."""

    http_status: int = 500
    #: what the user can do next; shown by the CLI under the message
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class TransientError(AbastoError):
    """The operation may succeed if retried later."""

    http_status = 503


class TerminalError(AbastoError):
    """Retrying the same operation cannot succeed."""

    http_status = 400


# --- configuration and environment -------------------------------------------------------

class ConfigError(TerminalError):
    """A setting is missing or invalid."""


class ServiceError(TerminalError):
    """An embedded service cannot be started, stopped or reached in a way retrying won't fix."""

    http_status = 500


class PortInUseError(ServiceError):
    """A configured port is taken by another process."""


class ServiceUnavailableError(TransientError):
    """A service is down or not answering yet."""


# --- data ----------------------------------------------------------------------------------

class InvalidInputError(TerminalError):
    """Input data is malformed; the message names the field and what was wrong."""

    http_status = 422


class InvalidEventError(InvalidInputError):
    """A device event failed validation. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NotFoundError(TerminalError):
    """A named thing (table, model version, device, service) does not exist."""

    http_status = 404


class AccessDeniedError(TerminalError):
    """The governance check refused the request; the message explains why."""

    http_status = 403


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is worth retrying.

    Our own errors declare it; common OS-level connection failures count as transient.
    """
    if isinstance(exc, AbastoError):
        return isinstance(exc, TransientError)
    return isinstance(exc, ConnectionError | TimeoutError)
