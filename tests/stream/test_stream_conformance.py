"""Behaviour every EventStream backend must show (parametrized over backends by `stream_factory`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from abasto.errors import ConfigError, NotFoundError
from abasto.settings import NatsSettings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import Consumer, EventStream, OutgoingMessage, StreamSpec
from abasto.stream.topology import abasto_streams

StreamFactory = Callable[[], EventStream]


def subject(spec: StreamSpec, tail: str) -> str:
    return spec.subjects[0].replace(">", tail)


async def test_publish_assigns_increasing_sequences(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    first = await stream.publish(subject(spec, "a"), b"one")
    second = await stream.publish(subject(spec, "b"), b"two")
    assert (first.stream, first.duplicate) == (spec.name, False)
    assert second.seq == first.seq + 1
    state = await stream.stream_state(spec.name)
    assert (state.messages, state.last_seq) == (2, second.seq)


async def test_same_msg_id_is_stored_once_within_the_window(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    first = await stream.publish(subject(spec, "x"), b"payload", msg_id="dev-1:7")
    again = await stream.publish(subject(spec, "x"), b"payload", msg_id="dev-1:7")
    other = await stream.publish(subject(spec, "x"), b"payload", msg_id="dev-1:8")
    assert not first.duplicate
    assert again.duplicate and again.seq == first.seq
    assert not other.duplicate
    assert (await stream.stream_state(spec.name)).messages == 2


async def test_publish_batch_keeps_order_and_dedups(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    batch = [OutgoingMessage(subject(spec, "d"), f"m{i}".encode(), msg_id=f"d:{i % 50}") for i in range(80)]
    results = await stream.publish_batch(batch)
    assert len(results) == 80
    assert [r.duplicate for r in results] == [False] * 50 + [True] * 30
    stored = [r.seq for r in results[:50]]
    assert stored == sorted(stored) and len(set(stored)) == 50
    assert (await stream.stream_state(spec.name)).messages == 50


async def test_publish_without_a_stream_is_not_found(stream: EventStream) -> None:
    with pytest.raises(NotFoundError):
        await stream.publish("nowhere.at.all", b"x")
    with pytest.raises(NotFoundError):
        await stream.publish_batch([OutgoingMessage("nowhere.else", b"x")])


async def test_consumer_delivers_in_order_with_headers_and_ack_clears(
    stream: EventStream, spec: StreamSpec
) -> None:
    await stream.ensure_streams([spec])
    for i in range(5):
        await stream.publish(subject(spec, f"s{i}"), f"m{i}".encode(), msg_id=f"id{i}", headers={"K": "v"})
    consumer = await stream.consumer(spec.name, "reader")
    msgs = await consumer.fetch(10, timeout_s=1)
    assert [m.data for m in msgs] == [f"m{i}".encode() for i in range(5)]
    assert [m.subject for m in msgs] == [subject(spec, f"s{i}") for i in range(5)]
    assert [m.msg_id for m in msgs] == [f"id{i}" for i in range(5)]
    assert all(m.headers["K"] == "v" and m.delivered_count == 1 for m in msgs)
    assert (await consumer.state()).ack_pending == 5
    for m in msgs:
        await m.ack()
    await _eventually(lambda: _idle(consumer))
    assert await consumer.fetch(10, timeout_s=0.3) == []


async def test_filter_subject_limits_what_a_consumer_sees(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    await stream.publish(subject(spec, "keep.1"), b"k")
    await stream.publish(subject(spec, "drop.1"), b"d")
    consumer = await stream.consumer(spec.name, "filtered", filter_subject=subject(spec, "keep.>"))
    assert [m.data for m in await consumer.fetch(10, timeout_s=0.5)] == [b"k"]


async def test_a_new_consumer_can_start_at_a_sequence(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    results = await stream.publish_batch(
        [OutgoingMessage(subject(spec, "s"), str(i).encode()) for i in range(5)]
    )
    consumer = await stream.consumer(spec.name, "from-third", start_seq=results[2].seq)
    assert [m.data for m in await consumer.fetch(10, timeout_s=0.5)] == [b"2", b"3", b"4"]


async def test_unacked_messages_are_redelivered_after_ack_wait(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    await stream.publish(subject(spec, "r"), b"again")
    consumer = await stream.consumer(spec.name, "slow", ack_wait_s=1.0)
    (first,) = await consumer.fetch(1, timeout_s=1)
    assert await consumer.fetch(1, timeout_s=0.3) == []  # not yet: still within ack_wait
    await asyncio.sleep(1.2)
    (second,) = await consumer.fetch(1, timeout_s=2)
    assert second.stream_seq == first.stream_seq
    assert second.delivered_count == 2
    await second.ack()


async def test_nak_redelivers_and_term_does_not(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    await stream.publish(subject(spec, "n"), b"nak-me")
    await stream.publish(subject(spec, "t"), b"term-me")
    consumer = await stream.consumer(spec.name, "naker", ack_wait_s=30)
    nak_me, term_me = await consumer.fetch(2, timeout_s=1)
    await nak_me.nak()
    await term_me.term()
    (redelivered,) = await consumer.fetch(5, timeout_s=1)
    assert redelivered.data == b"nak-me" and redelivered.delivered_count == 2
    await redelivered.ack()
    assert await consumer.fetch(5, timeout_s=0.3) == []


async def test_durable_consumer_resumes_after_reconnect(
    stream_factory: StreamFactory, spec: StreamSpec
) -> None:
    async with stream_factory() as s1:
        await s1.ensure_streams([spec])
        await s1.publish_batch([OutgoingMessage(subject(spec, "q"), str(i).encode()) for i in range(10)])
        consumer = await s1.consumer(spec.name, "durable-1")
        got = await consumer.fetch(4, timeout_s=1)
        for m in got:
            await m.ack()
        assert [m.data for m in got] == [b"0", b"1", b"2", b"3"]
        await _eventually(lambda: _ack_pending_is(consumer, 0))
    async with stream_factory() as s2:
        consumer = await s2.consumer(spec.name, "durable-1")
        assert (await consumer.state()).pending == 6
        rest = await consumer.fetch(100, timeout_s=1)
        assert [m.data for m in rest] == [str(i).encode() for i in range(4, 10)]


async def test_ensure_streams_is_idempotent_and_updates_limits(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    await stream.publish(subject(spec, "keep"), b"still here")
    await stream.ensure_streams([spec])
    await stream.ensure_streams([dataclasses.replace(spec, max_bytes=64 * 1024 * 1024)])
    assert (await stream.stream_state(spec.name)).messages == 1


async def test_overlapping_subjects_are_a_config_error(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    clash = StreamSpec(name=spec.name + "B", subjects=spec.subjects)
    with pytest.raises(ConfigError):
        await stream.ensure_streams([clash])


async def test_unknown_stream_state_is_not_found(stream: EventStream) -> None:
    with pytest.raises(NotFoundError):
        await stream.stream_state("NO_SUCH_STREAM")


# --- JetStream specifics -----------------------------------------------------------------------


async def test_abasto_streams_on_jetstream_have_the_configured_limits(
    own_server: EphemeralNatsServer,
) -> None:
    nats_settings = NatsSettings(stream_max_bytes=123 * 1024 * 1024, duplicate_window_s=90)
    async with JetStreamEventStream(own_server.url) as s:
        await s.ensure_streams(abasto_streams(nats_settings))
        info = await s.js.stream_info("POS")
        assert info.config.subjects == ["pos.>"]
        assert info.config.max_bytes == 123 * 1024 * 1024
        assert info.config.duplicate_window == 90
        assert info.config.storage == "file"
        assert info.config.discard == "old"
        assert (await s.js.stream_info("ALERTS")).config.subjects == ["alerts.>"]
        assert (await s.js.stream_info("DLQ")).config.subjects == ["dlq.>"]


async def test_jetstream_keeps_messages_and_consumer_position_across_a_restart(
    own_server: EphemeralNatsServer, spec: StreamSpec
) -> None:
    async with JetStreamEventStream(own_server.url) as s:
        await s.ensure_streams([spec])
        await s.publish_batch([OutgoingMessage(subject(spec, "c"), str(i).encode()) for i in range(6)])
        consumer = await s.consumer(spec.name, "survivor")
        for m in await consumer.fetch(3, timeout_s=1):
            await m.ack()
        await _eventually(lambda: _ack_pending_is(consumer, 0))
    own_server.restart()
    async with JetStreamEventStream(own_server.url) as s:
        assert (await s.stream_state(spec.name)).messages == 6
        consumer = await s.consumer(spec.name, "survivor")
        assert [m.data for m in await consumer.fetch(10, timeout_s=1)] == [b"3", b"4", b"5"]


async def test_jetstream_loses_no_stored_message_when_killed(
    own_server: EphemeralNatsServer, spec: StreamSpec
) -> None:
    async with JetStreamEventStream(own_server.url) as s:
        await s.ensure_streams([spec])
        results = await s.publish_batch(
            [OutgoingMessage(subject(spec, "k"), str(i).encode()) for i in range(50)]
        )
        assert all(not r.duplicate for r in results)
        consumer = await s.consumer(spec.name, "crash")
        for m in await consumer.fetch(20, timeout_s=1):
            await m.ack()
    own_server.kill()
    own_server.start()
    async with JetStreamEventStream(own_server.url) as s:
        assert (await s.stream_state(spec.name)).messages == 50
        consumer = await s.consumer(spec.name, "crash")
        seen = [int(m.data) for m in await consumer.fetch(100, timeout_s=1)]
        # at-least-once: acknowledgements may be lost in a crash, messages may not
        assert seen == list(range(seen[0], 50)) and seen[0] <= 20


async def _idle(consumer: Consumer) -> bool:
    return (await consumer.state()).idle


async def _ack_pending_is(consumer: Consumer, n: int) -> bool:
    return (await consumer.state()).ack_pending == n


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_delete_stream_removes_messages_and_dedup_state(stream: EventStream, spec: StreamSpec) -> None:
    await stream.ensure_streams([spec])
    await stream.publish(subject(spec, "z"), b"payload", msg_id="dev-9:1")
    assert await stream.delete_stream(spec.name) is True
    assert await stream.delete_stream(spec.name) is False
    with pytest.raises(NotFoundError):
        await stream.stream_state(spec.name)
    await stream.ensure_streams([spec])
    again = await stream.publish(subject(spec, "z"), b"payload", msg_id="dev-9:1")
    assert not again.duplicate
    assert (await stream.stream_state(spec.name)).messages == 1
