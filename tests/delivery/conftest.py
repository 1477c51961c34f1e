"""A throwaway nats-server for the delivery tests; each test gets a stream of its own."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def delivery_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-delivery")) as server:
        yield server


@pytest.fixture
def pos_spec() -> StreamSpec:
    """A POS-like stream with a unique name and subject space per test."""
    n = next(_counter)
    return StreamSpec(name=f"DPOS{n}", subjects=(f"dpos{n}.>",), duplicate_window_s=60)


@pytest.fixture
async def stream(delivery_nats: EphemeralNatsServer, pos_spec: StreamSpec) -> AsyncIterator[EventStream]:
    async with JetStreamEventStream(delivery_nats.url, name="delivery-test") as s:
        await s.ensure_streams([pos_spec])
        yield s
        await s.delete_stream(pos_spec.name)
