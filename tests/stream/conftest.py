"""Backends of the stream port under test, each behind the same factory (conformance suite)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec

StreamFactory = Callable[[], EventStream]

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def ephemeral_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-stream")) as server:
        yield server


@pytest.fixture(params=["jetstream"])
def stream_factory(request: pytest.FixtureRequest) -> StreamFactory:
    """Makes unconnected EventStream clients of one backend (all talking to the same store)."""
    if request.param == "jetstream":
        server: EphemeralNatsServer = request.getfixturevalue("ephemeral_nats")
        return lambda: JetStreamEventStream(server.url, name="conformance")
    raise AssertionError(request.param)


@pytest.fixture
async def stream(stream_factory: StreamFactory) -> AsyncIterator[EventStream]:
    async with stream_factory() as s:
        yield s


@pytest.fixture
def spec() -> StreamSpec:
    """A stream with a unique name and subject space per test."""
    n = next(_counter)
    return StreamSpec(name=f"T{n}", subjects=(f"t{n}.>",), duplicate_window_s=60)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EphemeralNatsServer]:
    """A server this test may kill and restart."""
    with EphemeralNatsServer(tmp_path / "nats") as server:
        yield server
