"""Low-latency, low-overhead pull requests for a JetStream pull consumer (nats-py).

nats-py's ``PullSubscription.fetch`` waits for each message of a batch with ``next_msg``: a task, a
``wait_for`` and a uuid per message, which at a few thousand messages a second costs as much as
the processing it feeds, and its no-wait probe followed by a lingering request makes a consumer
that has caught up wait for a whole batch to fill.

:class:`PullRequests` sends one request per fetch: ``{"batch": n, "expires": …, "no_wait": true}``.
The server treats a no-wait request with an expiry as one-shot: it waits (up to the expiry) for at
least one message, delivers what is available (up to ``n``) and ends the request with a status
(404 no messages / 408 timeout) when it has nothing more — so a fetch returns as soon as messages
are flowing, with all of them, and never holds delivered messages while waiting for more. The
messages are taken from the subscription's queue without a task per message, under one timeout.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

__all__ = ["PullRequests"]

_STATUS: Final = api.Header.STATUS
_HEARTBEAT: Final = api.StatusCode.CONTROL_MESSAGE
#: statuses ending a pull request without an error (no messages, request expired, conflicts such
#: as a leadership change or the consumer's max waiting reached): nats-py's "temporary" set
_END: Final = frozenset({api.StatusCode.NO_MESSAGES, api.StatusCode.REQUEST_TIMEOUT, api.StatusCode.CONFLICT})
#: the server expires a request this much before the client stops waiting (at most a tenth of the
#: timeout), so the request's end status normally arrives within the fetch that sent it
_EXPIRY_MARGIN_S: Final = 0.05


class PullRequests:
    """Fetches of one pull subscription (see the module docstring)."""

    def __init__(self, nc: NatsClient, sub: Subscription, next_subject: str, inbox: str) -> None:
        self._nc = nc
        self._sub = sub
        self._queue: asyncio.Queue[Msg] = sub._pending_queue
        self._next = next_subject
        self._inbox = inbox

    @classmethod
    def of(cls, psub: JetStreamContext.PullSubscription) -> PullRequests | None:
        """For ``psub``, or None if this nats-py lacks the attributes it relies on."""
        nc = getattr(psub, "_nc", None)
        sub = getattr(psub, "_sub", None)
        next_subject = getattr(psub, "_nms", None)
        inbox = getattr(psub, "_deliver", None)
        if (
            not isinstance(nc, NatsClient)
            or not isinstance(sub, Subscription)
            or not isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue)
            or not isinstance(getattr(sub, "_pending_size", None), int)
            or not isinstance(next_subject, str)
            or not isinstance(inbox, str)
        ):
            return None
        return cls(nc, sub, next_subject, inbox)

    async def fetch(self, batch: int, timeout_s: float) -> list[Msg]:
        """Up to ``batch`` messages: those already delivered, else those of one new request.

        Returns ``[]`` when none arrived within ``timeout_s``. Raises nats-py errors (closed
        connection, a non-temporary JetStream status such as a 503), for the caller to translate.
        """
        batch = max(1, batch)
        msgs = self._leftovers(batch)
        if msgs:
            return msgs  # delivered for an earlier request that ended on the client side first
        if self._nc.is_closed:
            raise nats.errors.ConnectionClosedError
        expires_s = max(timeout_s - min(_EXPIRY_MARGIN_S, timeout_s / 10), 0.001)
        request = {"batch": batch, "expires": int(expires_s * 1e9), "no_wait": True}
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + timeout_s):
                while len(msgs) < batch:
                    msg = await self._queue.get()  # no suspension while messages are queued
                    if self._take(msg, msgs):
                        break
        except TimeoutError:
            if self._nc.is_closed:
                raise nats.errors.ConnectionClosedError from None
        return msgs

    def _leftovers(self, batch: int) -> list[Msg]:
        """Messages already queued, dropping end statuses of earlier requests."""
        msgs: list[Msg] = []
        while len(msgs) < batch and not self._queue.empty():
            msg = self._queue.get_nowait()
            self._done(msg)
            if not _status(msg):
                msgs.append(msg)
        return msgs

    def _take(self, msg: Msg, into: list[Msg]) -> bool:
        """Keep a data message; True when ``msg`` ends the request."""
        self._done(msg)
        status = _status(msg)
        if not status:
            into.append(msg)
            return False
        if status == _HEARTBEAT:
            return False
        if status in _END:
            return True
        raise nats.js.errors.APIError.from_msg(msg)

    def _done(self, msg: Msg) -> None:
        # what Subscription.next_msg does for each message it hands out (slow-consumer accounting)
        self._sub._pending_size -= len(msg.data)
        self._queue.task_done()


def _status(msg: Msg) -> str | None:
    return None if msg.headers is None else msg.headers.get(_STATUS)
