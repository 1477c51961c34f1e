"""File and webhook sinks (the webhook against a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from abasto.contracts.alerts import Alert
from abasto.errors import ConfigError, TerminalError, TransientError
from abasto.notify import (
    DeliveryFailedError,
    DeliveryRejectedError,
    FileSink,
    Notification,
    RetryPolicy,
    WebhookSink,
    sign,
    verify_signature,
)
from abasto.notify.ports import message_id

SECRET = "s3cr3t-for-tests"
AlertFactory = Callable[..., Alert]


def _notification(alert: Alert, topic: str = "urgent") -> Notification:
    return Notification(
        message_id=message_id(alert.alert_id, topic),
        topic=topic,
        published_at=datetime(2025, 10, 13, 20, 5, 1, tzinfo=UTC),
        locale="es",
        subject="Riesgo de quiebre de stock (92 %): COLA-600-NR en S0001",
        text="Riesgo de quiebre de stock: COLA-600-NR en el punto de venta S0001.\nSegunda línea ñ",
        alert=alert,
    )


# --- file ---------------------------------------------------------------------------------------


def test_file_sink_appends_one_parseable_line_per_delivery(
    tmp_path: Path, alert_factory: AlertFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    path = tmp_path / "deep" / "dir" / "notifications.jsonl"
    sink = FileSink(path)
    assert sink.name == f"file:{path}"
    first, second = _notification(alert_factory()), _notification(alert_factory(risk=0.5), "stockout-alerts")
    assert sink.deliver(first).attempts == 1
    sink.deliver(second)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records == FileSink.read(path)
    assert records[0]["topic"] == "urgent"
    assert records[0]["text"] == first.text  # the newline stays inside its JSON line
    assert records[0]["alert"]["alert_id"] == first.alert.alert_id
    assert records[0]["alert"]["risk"] == 0.92
    assert records[1]["message_id"] == f"{second.alert.alert_id}/stockout-alerts"
    assert datetime.fromisoformat(records[0]["delivered_at"]).tzinfo is not None
    assert len(synced) >= 3  # each line, plus the directory when the file was created


def test_file_sink_is_safe_from_many_threads(tmp_path: Path, alert_factory: AlertFactory) -> None:
    sink = FileSink(tmp_path / "n.jsonl")
    notes = [_notification(alert_factory(alert_id=f"al-{i:04d}")) for i in range(64)]
    threads = [threading.Thread(target=sink.deliver, args=(n,)) for n in notes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(r["alert"]["alert_id"] for r in FileSink.read(tmp_path / "n.jsonl"))
    assert ids == sorted(n.alert.alert_id for n in notes)


def test_file_sink_errors_are_classified(tmp_path: Path, alert_factory: AlertFactory) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(DeliveryRejectedError) as info:
        FileSink(tmp_path / "a-directory").deliver(_notification(alert_factory()))
    assert isinstance(info.value, TerminalError)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DeliveryRejectedError):
        FileSink(tmp_path / "a-file" / "n.jsonl").deliver(_notification(alert_factory()))


# --- webhook ------------------------------------------------------------------------------------


class _Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _sink(url: str, sleeps: _Sleeps | None = None, **kw: Any) -> WebhookSink:
    kw.setdefault("retry", RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=1.0, jitter=False))
    return WebhookSink(url, secret=SecretStr(SECRET), sleep=sleeps if sleeps is not None else _Sleeps(), **kw)


def test_webhook_posts_signed_json_with_idempotency_key(
    webhook_server: Any, alert_factory: AlertFactory
) -> None:
    note = _notification(alert_factory())
    with _sink(webhook_server.url) as sink:
        ack = sink.deliver(note)
    assert (ack.attempts, ack.detail) == (1, "HTTP 200")
    (request,) = webhook_server.requests
    assert request.path == "/hooks/abasto"
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == note.alert.alert_id
    assert headers["x-abasto-topic"] == "urgent"
    assert headers["x-abasto-message-id"] == note.message_id
    assert verify_signature(
        SECRET, request.body, headers["x-abasto-timestamp"], headers["x-abasto-signature"]
    )
    assert headers["x-abasto-signature"] == sign(SECRET, int(headers["x-abasto-timestamp"]), request.body)
    body = request.json()
    assert body["alert"]["alert_id"] == note.alert.alert_id
    assert body["text"] == note.text
    # a different secret, a changed body or an old timestamp do not verify
    ts, sig = headers["x-abasto-timestamp"], headers["x-abasto-signature"]
    assert not verify_signature("other", request.body, ts, sig)
    assert not verify_signature(SECRET, request.body.replace(b"0.92", b"0.10"), ts, sig)
    assert not verify_signature(SECRET, request.body, ts, sig, now=int(ts) + 301)
    assert not verify_signature(SECRET, request.body, "yesterday", sig)


def test_webhook_retries_5xx_with_backoff_then_succeeds(
    webhook_server: Any, alert_factory: AlertFactory
) -> None:
    webhook_server.respond(500, 502)
    sleeps = _Sleeps()
    with _sink(webhook_server.url, sleeps) as sink:
        ack = sink.deliver(_notification(alert_factory()))
    assert ack.attempts == 3
    assert len(webhook_server.requests) == 3
    assert sleeps == [0.01, 0.02]  # exponential
    keys = {r.headers["Idempotency-Key"] for r in webhook_server.requests}
    assert keys == {alert_factory().alert_id}  # every retry carries the same key
    for r in webhook_server.requests:  # and each attempt is signed
        assert verify_signature(
            SECRET, r.body, r.headers["X-Abasto-Timestamp"], r.headers["X-Abasto-Signature"]
        )


def test_webhook_does_not_retry_4xx(webhook_server: Any, alert_factory: AlertFactory) -> None:
    webhook_server.respond(400)
    sleeps = _Sleeps()
    with _sink(webhook_server.url, sleeps) as sink, pytest.raises(DeliveryRejectedError) as info:
        sink.deliver(_notification(alert_factory()))
    assert isinstance(info.value, TerminalError)
    assert "HTTP 400" in str(info.value)
    assert info.value.attempts == 1
    assert len(webhook_server.requests) == 1
    assert sleeps == []


def test_webhook_gives_up_after_max_attempts(webhook_server: Any, alert_factory: AlertFactory) -> None:
    webhook_server.respond(503, 503, 503, 503, 503)
    sleeps = _Sleeps()
    with _sink(webhook_server.url, sleeps) as sink, pytest.raises(DeliveryFailedError) as info:
        sink.deliver(_notification(alert_factory()))
    assert isinstance(info.value, TransientError)
    assert info.value.attempts == 4
    assert "after 4 attempts: HTTP 503" in str(info.value)
    assert len(webhook_server.requests) == 4
    assert sleeps == [0.01, 0.02, 0.04]


def test_webhook_honours_retry_after_on_429(webhook_server: Any, alert_factory: AlertFactory) -> None:
    webhook_server.respond(429, headers={"Retry-After": "0.5"})
    sleeps = _Sleeps()
    with _sink(webhook_server.url, sleeps) as sink:
        assert sink.deliver(_notification(alert_factory())).attempts == 2
    assert sleeps == [0.5]


def test_webhook_retries_timeouts(webhook_server: Any, alert_factory: AlertFactory) -> None:
    webhook_server.respond(200, delay_s=1.0)  # first answer comes too late
    with _sink(webhook_server.url, timeout_s=0.2) as sink:
        assert sink.deliver(_notification(alert_factory())).attempts == 2
    assert len(webhook_server.requests) == 2


def test_webhook_retries_connection_errors(alert_factory: AlertFactory) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = _Sleeps()
    with _sink(f"http://127.0.0.1:{port}/hook", sleeps) as sink, pytest.raises(DeliveryFailedError) as info:
        sink.deliver(_notification(alert_factory()))
    assert "connection error" in str(info.value)
    assert len(sleeps) == 3


def test_webhook_without_secret_is_unsigned(webhook_server: Any, alert_factory: AlertFactory) -> None:
    with WebhookSink(webhook_server.url, secret=None) as sink:
        sink.deliver(_notification(alert_factory()))
    headers = {k.lower() for k in webhook_server.requests[0].headers}
    assert "x-abasto-signature" not in headers
    assert "idempotency-key" in headers


def test_webhook_name_hides_credentials_and_query() -> None:
    with WebhookSink("https://user:pw@hooks.example.com:8443/a/b?token=abc", secret=None) as sink:
        assert sink.name == "webhook:https://hooks.example.com:8443/a/b"
        assert "pw" not in repr(sink)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "http:///path"])
def test_webhook_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigError):
        WebhookSink(url, secret=None)


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(7)
    for failures, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        delay = policy.delay(failures, rng=rng)
        assert cap / 2 <= delay <= cap
    assert policy.delay(1, retry_after_s=60, rng=rng) == 5.0  # Retry-After, capped
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
