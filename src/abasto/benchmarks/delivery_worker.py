"""A raw-zone delivery (:class:`~abasto.delivery.RawDelivery`) in its own process, for benchmarks.

In production the delivery is its own service (``abasto delivery run``, Firehose's place), beside
the processor workers (``abasto realtime run``); a benchmark of the whole path runs it the same
way, so the two do not share one interpreter lock. The child connects to NATS, binds its durable
consumer, waits for ``go``, delivers until it has routed ``messages`` stream messages, cuts the
last batch and reports when it finished (``time.monotonic()``: one clock for every process of the
machine) with its metrics.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import queue
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from abasto.delivery import DeliveryConfig, RawDelivery
from abasto.delivery.metrics import DeliveryMetrics
from abasto.errors import ServiceUnavailableError
from abasto.stream.jetstream import JetStreamEventStream

__all__ = ["DeliveryProcess", "DeliveryRun"]

_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DeliveryRun:
    #: when the last batch was written and acknowledged (monotonic seconds)
    finished: float
    metrics: DeliveryMetrics
    #: CPU seconds the delivery process spent from ``go`` to ``finished``
    cpu_s: float


class DeliveryProcess:
    """``async with DeliveryProcess(options, raw_uri, config, messages=n) as d:``
    ``d.go(); run = await d.result(timeout_s)``."""

    def __init__(
        self, options: Mapping[str, object], raw_uri: str, config: DeliveryConfig, *, messages: int
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._go = ctx.Event()
        self._results: Queue[Any] = ctx.Queue()
        self._proc = ctx.Process(
            target=_child,
            args=(dict(options), raw_uri, config, messages, self._ready, self._go, self._results),
            name="abasto-bench-delivery",
            daemon=True,
        )

    async def __aenter__(self) -> DeliveryProcess:
        self._proc.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not await asyncio.to_thread(self._ready.wait, 0.2):
            if not self._results.empty() or not self._proc.is_alive() or time.monotonic() > deadline:
                self._kill()
                try:
                    failure = self._results.get_nowait()
                except queue.Empty:
                    failure = "the delivery process did not bind its consumer within 60 s"
                raise ServiceUnavailableError(str(failure))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._go.set()  # a child still waiting for go must not linger
        await asyncio.to_thread(self._proc.join, 5.0)
        self._kill()

    def go(self) -> None:
        self._go.set()

    async def result(self, timeout_s: float) -> DeliveryRun:
        """The finished run (raises what failed in the child, or if it takes over ``timeout_s``)."""
        try:
            result = await asyncio.to_thread(self._results.get, True, timeout_s)
        except queue.Empty as exc:
            what = f"the delivery process did not finish within {timeout_s:.0f} s"
            raise ServiceUnavailableError(what) from exc
        if isinstance(result, str):
            raise ServiceUnavailableError(result)
        run: DeliveryRun = result
        return run

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)


def _child(
    options: dict[str, object],
    raw_uri: str,
    config: DeliveryConfig,
    messages: int,
    ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
    results: Queue[Any],
) -> None:
    try:
        results.put(asyncio.run(_deliver(options, raw_uri, config, messages, ready, go)))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent, which raises it
        results.put(f"delivery process failed: {exc!r}")


async def _deliver(
    options: dict[str, object],
    raw_uri: str,
    config: DeliveryConfig,
    messages: int,
    ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
) -> DeliveryRun:
    async with JetStreamEventStream.from_connect_options(options, name="bench-delivery") as stream:
        delivery = RawDelivery(stream, raw_uri, config)
        await delivery.start()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.002)
        cpu = time.process_time()
        while delivery.metrics.messages < messages:
            await delivery.poll()
        await delivery.flush()
        return DeliveryRun(
            finished=time.monotonic(), metrics=delivery.metrics, cpu_s=time.process_time() - cpu
        )
