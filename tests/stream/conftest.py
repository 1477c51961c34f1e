"""Backends of the stream port under test, each behind the same factory (conformance suite).

Kinesis runs against moto in server mode on 127.0.0.1 (no AWS account is reachable here); boto3
is pointed at its endpoint with dummy credentials.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.kinesis import KinesisEventStream
from abasto.stream.kinesis_aws import AwsConnection
from abasto.stream.port import EventStream, StreamSpec

StreamFactory = Callable[[], EventStream]

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def ephemeral_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-stream")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (Kinesis + DynamoDB) on a free local port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def moto_connection(moto_endpoint: str) -> AwsConnection:
    """boto3 settings for the moto server."""
    return AwsConnection(
        region="us-east-1",
        endpoint_url=moto_endpoint,
        access_key_id="testing",
        secret_access_key="testing",  # moto's dummy credentials
        timeout_s=5.0,
        max_attempts=2,
    )


@pytest.fixture(params=["jetstream", "kinesis"])
def stream_factory(request: pytest.FixtureRequest) -> StreamFactory:
    """Makes unconnected EventStream clients of one backend (all talking to the same store)."""
    if request.param == "jetstream":
        server: EphemeralNatsServer = request.getfixturevalue("ephemeral_nats")
        return lambda: JetStreamEventStream(server.url, name="conformance")
    if request.param == "kinesis":
        conn: AwsConnection = request.getfixturevalue("moto_connection")
        return lambda: KinesisEventStream(conn, table="abasto-conformance", poll_interval_s=0.05)
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
