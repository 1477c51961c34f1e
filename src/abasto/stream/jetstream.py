"""NATS JetStream backend of the stream port (nats-py)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Final, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from abasto.errors import (
    AbastoError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    TerminalError,
)
from abasto.stream.port import (
    MSG_ID_HEADER,
    Consumer,
    ConsumerState,
    EventStream,
    OutgoingMessage,
    PublishResult,
    StreamMessage,
    StreamSpec,
    StreamState,
)
from abasto.stream.pull import PullRequests

log = logging.getLogger(__name__)
T = TypeVar("T")

#: JetStream API error codes we translate
_STREAM_NOT_FOUND: Final = 10059
_SUBJECTS_OVERLAP: Final = 10065
_VALID_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class JetStreamMessage(StreamMessage):
    __slots__ = ("_msg", "data", "delivered_count", "headers", "stream_seq", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        meta = msg.metadata
        self.subject = msg.subject
        self.data = msg.data
        self.headers = msg.headers or {}
        self.stream_seq = int(meta.sequence.stream)
        self.delivered_count = int(meta.num_delivered)

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay_s: float | None = None) -> None:
        await self._msg.nak(delay=delay_s)

    async def term(self) -> None:
        await self._msg.term()


class JetStreamConsumer(Consumer):
    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self._sub = sub
        self._pull = PullRequests.of(sub)

    async def fetch(self, batch: int, timeout_s: float = 1.0) -> list[StreamMessage]:
        try:
            if self._pull is not None:
                msgs = await self._pull.fetch(batch, timeout_s)
            else:  # a nats-py without the internals the fast path reads
                msgs = await self._sub.fetch(batch=batch, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except nats.errors.ConnectionClosedError as exc:
            raise ServiceUnavailableError(f"NATS connection closed: {exc}") from exc
        except nats.errors.Error as exc:
            # e.g. 503 while a replicated consumer elects a leader: transient, not a crash
            raise _translated_error(exc) from exc
        return [JetStreamMessage(m) for m in msgs]

    async def state(self) -> ConsumerState:
        info = await _translate(self._sub.consumer_info())
        return ConsumerState(
            pending=int(info.num_pending or 0),
            ack_pending=int(info.num_ack_pending or 0),
            redelivered=int(info.num_redelivered or 0),
        )


class JetStreamEventStream(EventStream):
    """Event stream on a nats-server with JetStream.

    ``url`` may list several servers separated by commas (a cluster).
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        name: str = "abasto",
        timeout_s: float = 5.0,
        max_pending_publishes: int = 8_000,
    ) -> None:
        self._servers = [u.strip() for u in url.split(",") if u.strip()]
        self._user = user
        self._password = password
        self._token = token
        self._name = name
        self._timeout = timeout_s
        self._max_pending = max_pending_publishes
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    @classmethod
    def from_connect_options(
        cls, options: Mapping[str, object], *, name: str = "abasto"
    ) -> JetStreamEventStream:
        """From ``nats.connect`` keyword arguments (``servers``, ``user``, ``password``, ``token``)."""
        servers = options.get("servers")
        url = ",".join(str(s) for s in servers) if isinstance(servers, list | tuple) else str(servers)
        user, password, token = options.get("user"), options.get("password"), options.get("token")
        return cls(
            url,
            user=None if user is None else str(user),
            password=None if password is None else str(password),
            token=None if token is None else str(token),
            name=name,
        )

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise ServiceUnavailableError("stream not connected: call connect() first")
        return self._js

    async def connect(self) -> None:
        if self._nc is not None and self._nc.is_connected:
            return
        kwargs: dict[str, Any] = {
            "servers": self._servers,
            "name": self._name,
            "connect_timeout": max(1, int(self._timeout)),
            "max_reconnect_attempts": 60,
            "reconnect_time_wait": 0.5,
            "error_cb": self._on_error,
        }
        if self._user is not None:
            kwargs["user"] = self._user
            kwargs["password"] = self._password or ""
        if self._token is not None:
            kwargs["token"] = self._token
        try:
            self._nc = await nats.connect(**kwargs)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(
                f"cannot connect to NATS at {','.join(self._servers)}: {exc!r}",
                hint="is nats-server running? try `abasto up`",
            ) from exc
        self._js = self._nc.jetstream(timeout=self._timeout, publish_async_max_pending=self._max_pending)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is None or nc.is_closed:
            return
        try:
            # flush: the server has processed every publish and ack sent so far; no drain, which
            # would wait out the expiry of lingering pull requests
            await nc.flush(timeout=max(1, int(self._timeout)))
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning("NATS flush before close failed: %r", exc)
        await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS client error: %r", exc)

    # --- streams ----------------------------------------------------------------------------
    async def ensure_streams(self, specs: Sequence[StreamSpec]) -> None:
        for spec in specs:
            await self._ensure_stream(spec)

    async def _ensure_stream(self, spec: StreamSpec) -> None:
        config = api.StreamConfig(
            name=spec.name,
            description=spec.description or None,
            subjects=list(spec.subjects),
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.OLD,
            max_bytes=spec.max_bytes,
            max_age=spec.max_age_s,
            duplicate_window=spec.duplicate_window_s,
            num_replicas=spec.replicas,
        )
        try:
            existing = await self.js.stream_info(spec.name)
        except nats.js.errors.NotFoundError:
            existing = None
        except (TimeoutError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(f"stream info {spec.name}: {exc!r}") from exc
        try:
            if existing is None:
                await self.js.add_stream(config)
            elif _differs(existing.config, config):
                await self.js.update_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.err_code == _SUBJECTS_OVERLAP:
                raise ConfigError(
                    f"stream {spec.name}: subjects {spec.subjects} overlap another stream ({exc.description})"
                ) from exc
            raise ConfigError(f"stream {spec.name}: {exc.description} (code {exc.err_code})") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(f"ensure stream {spec.name}: {exc!r}") from exc

    async def stream_state(self, stream: str) -> StreamState:
        try:
            info = await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError as exc:
            raise NotFoundError(f"no stream {stream}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(f"stream info {stream}: {exc!r}") from exc
        st = info.state
        return StreamState(messages=st.messages, bytes=st.bytes, first_seq=st.first_seq, last_seq=st.last_seq)

    async def delete_stream(self, stream: str) -> bool:
        try:
            return bool(await self.js.delete_stream(stream))
        except nats.js.errors.NotFoundError:
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(f"delete stream {stream}: {exc!r}") from exc

    # --- publishing -------------------------------------------------------------------------
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        try:
            ack = await _translate(self.js.publish(subject, data, headers=_headers(msg_id, headers)), subject)
        except NotFoundError as exc:
            raise await self._missing_or_failover(subject, exc) from exc
        return PublishResult(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))

    async def _missing_or_failover(self, subject: str, exc: NotFoundError) -> AbastoError:
        """No stream answered: really none (terminal), or one whose leader is being elected (transient)."""
        try:
            name = await self.js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            return exc
        except (TimeoutError, nats.errors.Error) as lookup:
            return ServiceUnavailableError(f"JetStream cannot place {subject} right now: {lookup!r}")
        return ServiceUnavailableError(
            f"stream {name} captures {subject} but did not answer (leader election?)"
        )

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """Publish every message, then await all their stream acknowledgements.

        While the client has room for more pending publishes, each one is queued without yielding
        to the event loop, so the batch leaves in a few socket writes instead of one per message
        (a ``wait_stall`` timeout makes nats-py yield on every publish, and its flusher then sends
        each message alone: ~5× slower on a busy machine). When the room runs out, publishes wait
        for it up to the stream timeout (then :class:`ServiceUnavailableError`).
        """
        js = self.js
        room: asyncio.Semaphore | None = getattr(js, "_publish_async_pending_semaphore", None)
        futures: list[asyncio.Future[api.PubAck]] = []
        for m in messages:
            headers = _headers(m.msg_id, m.headers)
            stall = None if room is not None and not room.locked() else self._timeout
            publishing = js.publish_async(m.subject, m.data, headers=headers, wait_stall=stall)
            fut = await _translate(publishing, m.subject)
            futures.append(fut)
        acks = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), timeout=self._timeout * 4
        )
        results: list[PublishResult] = []
        first_error: BaseException | None = None
        for m, ack in zip(messages, acks, strict=True):
            if isinstance(ack, BaseException):
                first_error = first_error or _translated_error(ack, m.subject)
                results.append(PublishResult(stream="", seq=0, duplicate=False))
            else:
                results.append(PublishResult(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate)))
        if isinstance(first_error, NotFoundError):
            failed = next(m.subject for m, r in zip(messages, results, strict=True) if not r.stream)
            raise await self._missing_or_failover(failed, first_error) from first_error
        if first_error is not None:
            raise first_error
        return results

    # --- consuming --------------------------------------------------------------------------
    async def consumer(
        self,
        stream: str,
        durable: str,
        *,
        filter_subject: str | None = None,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        start_seq: int | None = None,
    ) -> Consumer:
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL
            if start_seq is None
            else api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_wait=ack_wait_s,
            max_ack_pending=max_ack_pending,
            filter_subject=filter_subject,
        )
        if not _VALID_NAME.match(durable):
            raise InvalidInputError(f"consumer name {durable!r}: use letters, digits, '-' and '_'")
        try:
            await self.js.add_consumer(stream, config)
            sub = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        except nats.js.errors.NotFoundError as exc:
            raise NotFoundError(f"no stream {stream} for consumer {durable}") from exc
        except nats.js.errors.APIError as exc:
            if exc.err_code == _STREAM_NOT_FOUND:
                raise NotFoundError(f"no stream {stream} for consumer {durable}") from exc
            raise ConfigError(f"consumer {durable} on {stream}: {exc.description}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise ServiceUnavailableError(f"consumer {durable} on {stream}: {exc!r}") from exc
        return JetStreamConsumer(sub)


def _headers(msg_id: str | None, headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if msg_id is None and not headers:
        return None
    out = dict(headers) if headers else {}
    if msg_id is not None:
        out[MSG_ID_HEADER] = msg_id
    return out


def _differs(existing: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    fields = ("subjects", "max_bytes", "max_age", "duplicate_window", "description", "discard")
    return any(getattr(existing, f) != getattr(wanted, f) for f in fields)


def _translated_error(exc: BaseException, subject: str | None = None) -> BaseException:
    where = f" (subject {subject})" if subject else ""
    if isinstance(exc, AbastoError):
        return exc
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return NotFoundError(f"no stream captures the subject{where}")
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return ServiceUnavailableError(f"JetStream unavailable{where} (503: leader election or restart)")
    if isinstance(exc, nats.js.errors.APIError):
        if exc.err_code == _STREAM_NOT_FOUND:
            return NotFoundError(f"stream not found{where}: {exc.description}")
        if exc.code is not None and exc.code >= 500:
            return ServiceUnavailableError(f"JetStream error{where}: {exc.description}")
        return TerminalError(f"JetStream rejected the request{where}: {exc.description}")
    if isinstance(exc, nats.js.errors.TooManyStalledMsgsError):
        return ServiceUnavailableError(f"too many unacknowledged publishes{where}")
    if isinstance(exc, nats.errors.Error | asyncio.TimeoutError | OSError):
        return ServiceUnavailableError(f"JetStream unavailable{where}: {exc!r}")
    return exc


async def _translate(aw: Awaitable[T], subject: str | None = None) -> T:
    """Await ``aw``, turning nats-py errors into abasto errors."""
    try:
        return await aw
    except Exception as exc:
        translated = _translated_error(exc, subject)
        if translated is exc:
            raise
        raise translated from exc
