"""Webhook sink: HTTP POST of the notification JSON, signed, retried, idempotent.

Headers sent with every attempt:

- ``Content-Type: application/json``
- ``Idempotency-Key``: the alert id (one alert = one operation for the receiver, whichever
  topic or retry delivers it)
- ``X-Abasto-Topic``, ``X-Abasto-Message-Id``
- ``X-Abasto-Timestamp``: Unix seconds when the attempt was signed
- ``X-Abasto-Signature``: ``v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` — binding the
  timestamp lets receivers refuse replays (see :func:`verify_signature`)

Transient failures (connection errors, timeouts, HTTP 5xx, 408 and 429) are retried with
exponential backoff (honouring ``Retry-After``); any other non-2xx answer is terminal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self

import httpx
from pydantic import SecretStr

from abasto.errors import ConfigError
from abasto.notify.ports import DeliveryFailedError, DeliveryRejectedError, Notification, SinkAck
from abasto.notify.retry import RetryPolicy

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Abasto-Signature"
TIMESTAMP_HEADER: Final = "X-Abasto-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
TOPIC_HEADER: Final = "X-Abasto-Topic"
MESSAGE_ID_HEADER: Final = "X-Abasto-Message-Id"
SIGNATURE_VERSION: Final = "v1"
USER_AGENT: Final = "abasto-notify/0.1"
_RETRYABLE_4XX: Final = frozenset({408, 429})


def _secret_bytes(secret: SecretStr | str | bytes) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: SecretStr | str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Abasto-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(_secret_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(
    secret: SecretStr | str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Receiver side: the signature is ours and the timestamp is within ``tolerance_s`` of now."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def _redact(url: httpx.URL) -> str:
    """The URL without credentials or query string (they may carry tokens)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


class WebhookSink:
    """POSTs each notification to one URL. Thread-safe; close it (or use ``with``) when done."""

    def __init__(
        self,
        url: str,
        *,
        secret: SecretStr | str | bytes | None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"invalid webhook URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"webhook URL must be http(s)://host/..., got {_redact(parsed)!r}")
        self._url = parsed
        self._name = f"webhook:{_redact(parsed)}"
        self._secret = secret
        if secret is None:
            log.warning("webhook %s has no secret: its requests are not signed", self._name)
        self._retry = retry or RetryPolicy()
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, notification: Notification) -> SinkAck:
        body = notification.to_json()
        last_error = ""
        for attempt in range(1, self._retry.max_attempts + 1):
            retry_after: float | None = None
            try:
                headers = self._headers(notification, body)
                response = self._client.post(self._url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                last_error = f"timeout: {type(exc).__name__}"
            except httpx.TransportError as exc:
                last_error = f"connection error: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return SinkAck(attempts=attempt, detail=f"HTTP {status}")
                summary = f"HTTP {status} {response.reason_phrase}: {response.text[:200]}".rstrip(": ")
                if status < 500 and status not in _RETRYABLE_4XX:
                    raise DeliveryRejectedError(f"{self._name} refused: {summary}", attempts=attempt)
                last_error = summary
                retry_after = _retry_after(response)
            if attempt < self._retry.max_attempts:
                delay = self._retry.delay(attempt, retry_after_s=retry_after, rng=self._rng)
                log.info(
                    "%s attempt %d failed (%s); retrying in %.2fs", self._name, attempt, last_error, delay
                )
                self._sleep(delay)
        raise DeliveryFailedError(
            f"{self._name} failed after {self._retry.max_attempts} attempts: {last_error}",
            attempts=self._retry.max_attempts,
        )

    def _headers(self, notification: Notification, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: notification.alert.alert_id,
            TOPIC_HEADER: notification.topic,
            MESSAGE_ID_HEADER: notification.message_id,
        }
        if self._secret is not None:
            timestamp = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return headers

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WebhookSink({self._name})"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
