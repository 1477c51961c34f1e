"""A paced JetStream publisher (and listener) in its own process, for latency benchmarks.

Measuring latency with the publisher in the process under test couples the two: whenever the
consumer holds the event loop (a batch of engine work), publishes stall and then leave in a burst,
and the publisher's own CPU slows the consumer down. Here a child process publishes the payloads
on a fixed schedule (message ``k`` is due ``k / pace`` seconds after the start; every wake-up sends
all messages due, never more), recording when each was handed to the client, and optionally
listens to a core subject (e.g. ``alerts.>``), recording when each message id first arrives. All
times are ``time.monotonic()``: CLOCK_MONOTONIC, one clock for every process of the machine, so
the parent may subtract them from its own readings.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import queue
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from abasto.errors import ServiceUnavailableError
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import MSG_ID_HEADER

__all__ = ["PacedPublisher", "PacedRun"]

#: how long the parent waits for the child to connect, and for its results after stop
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PacedRun:
    #: per payload index, when it was handed to the NATS client (monotonic seconds)
    sent: list[float]
    #: per listened message id, when it first arrived (monotonic seconds)
    seen: dict[str, float]
    #: first to last publish
    seconds: float
    #: the worst delay of a publish behind its schedule
    max_behind_s: float

    @property
    def rate(self) -> float:
        return len(self.sent) / self.seconds if self.seconds > 0 else 0.0


class PacedPublisher:
    """``async with PacedPublisher(...) as pub: pub.go(); await pub.published(); run = await pub.stop()``."""

    def __init__(
        self,
        options: Mapping[str, object],
        payloads: Sequence[tuple[str, bytes]],
        pace: float,
        *,
        listen: str | None = None,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._go = ctx.Event()
        self._published = ctx.Event()
        self._stop = ctx.Event()
        self._results: Queue[Any] = ctx.Queue()
        self._proc = ctx.Process(
            target=_child,
            args=(
                dict(options),
                list(payloads),
                pace,
                listen,
                (self._ready, self._go, self._published, self._stop),
                self._results,
            ),
            name="abasto-paced-publisher",
            daemon=True,
        )

    async def __aenter__(self) -> PacedPublisher:
        self._proc.start()
        if not await asyncio.to_thread(self._ready.wait, _START_TIMEOUT_S):
            self._kill()
            raise ServiceUnavailableError("the paced publisher did not connect to NATS within 60 s")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._proc.join, 5.0)
        self._kill()

    def go(self) -> None:
        self._go.set()

    async def published(self, timeout_s: float) -> None:
        if not await asyncio.to_thread(self._published.wait, timeout_s):
            raise ServiceUnavailableError(f"the paced publisher did not finish within {timeout_s:.0f} s")

    async def stop(self) -> PacedRun:
        """Stop listening and collect the run (raises what failed in the child)."""
        self._stop.set()
        try:
            result = await asyncio.to_thread(self._results.get, True, _START_TIMEOUT_S)
        except queue.Empty as exc:
            raise ServiceUnavailableError("the paced publisher sent no results") from exc
        if isinstance(result, str):
            raise ServiceUnavailableError(result, hint="see the nats-server log of the benchmark home")
        run: PacedRun = result
        return run

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)


_Events = tuple[
    multiprocessing.synchronize.Event,
    multiprocessing.synchronize.Event,
    multiprocessing.synchronize.Event,
    multiprocessing.synchronize.Event,
]


def _child(
    options: dict[str, object],
    payloads: list[tuple[str, bytes]],
    pace: float,
    listen: str | None,
    events: _Events,
    results: Queue[Any],
) -> None:
    try:
        results.put(asyncio.run(_publish_paced(options, payloads, pace, listen, events)))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent, which raises it
        results.put(f"paced publisher failed: {exc!r}")


async def _publish_paced(
    options: dict[str, object],
    payloads: list[tuple[str, bytes]],
    pace: float,
    listen: str | None,
    events: _Events,
) -> PacedRun:
    ready, go, published, stop = events
    seen: dict[str, float] = {}
    async with JetStreamEventStream.from_connect_options(options, name="bench-paced") as stream:
        js = stream.js
        nc = js._nc
        if listen is not None:

            async def on_msg(msg: Any) -> None:
                key = (msg.headers or {}).get(MSG_ID_HEADER)
                if key is not None and key not in seen:
                    seen[key] = time.monotonic()

            await nc.subscribe(listen, cb=on_msg)
            await nc.flush()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.005)
        room: asyncio.Semaphore | None = getattr(js, "_publish_async_pending_semaphore", None)
        sent = [0.0] * len(payloads)
        futures: list[asyncio.Future[Any]] = []
        n, k, behind = len(payloads), 0, 0.0
        t0 = time.monotonic()
        while k < n:
            now = time.monotonic()
            due = min(n, int((now - t0) * pace) + 1)
            if k < due:
                behind = max(behind, now - (t0 + k / pace))
            while k < due:
                subject, data = payloads[k]
                sent[k] = now
                stall = None if room is not None and not room.locked() else 5.0
                futures.append(await js.publish_async(subject, data, wait_stall=stall))
                k += 1
            wait = t0 + k / pace - time.monotonic()
            await asyncio.sleep(max(wait, 0.0))  # yields: the client flushes what was queued
        seconds = time.monotonic() - t0
        acks = await asyncio.gather(*futures, return_exceptions=True)
        failed = next((a for a in acks if isinstance(a, BaseException)), None)
        if failed is not None:
            raise ServiceUnavailableError(f"a paced publish was not stored: {failed!r}")
        published.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)
    return PacedRun(sent=sent, seen=seen, seconds=seconds, max_behind_s=behind)
