"""Failover of the JetStream backend: nothing acknowledged is lost when a server dies mid-run.

* A three-node cluster with the POS stream replicated R3: the stream leader (or a follower) is
  SIGKILLed while a publisher is running; the publisher retries every unacknowledged event with the
  same ``Nats-Msg-Id`` until it is acknowledged. Afterwards every acknowledged event is in the stream
  exactly once, at the sequence its acknowledgement named, and the killed node catches up when it
  is restarted.
* A single nats-server killed (or restarted) mid-run: the client reconnects, resends what was not
  acknowledged, and again nothing acknowledged is lost or stored twice.

The publisher is a device fleet's view: an event counts as delivered only once its PubAck arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from abasto.contracts.events import DeviceEvent, SaleScan, encode_event
from abasto.errors import NotFoundError, ServiceUnavailableError
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.ephemeral_cluster import EphemeralNatsCluster
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import MSG_ID_HEADER, Consumer, EventStream, PublishResult, StreamSpec
from abasto.stream.topology import POS_STREAM, POS_SUBJECTS, pos_subject

T0 = datetime(2026, 10, 14, 14, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Out:
    subject: str
    data: bytes
    msg_id: str


def device_events(n: int, stores: int = 20) -> list[Out]:
    """``n`` sale events spread over ``stores`` devices, seq 1, 2, … per device."""
    seqs: Counter[str] = Counter()
    out: list[Out] = []
    for i in range(n):
        store = f"S{i % stores:04d}"
        device = f"dev-{store}-1"
        seqs[device] += 1
        event = DeviceEvent(
            device_id=device,
            store_id=store,
            seq=seqs[device],
            event_time=T0 + timedelta(seconds=i),
            payload=SaleScan(sku="COLA-600-NR", qty=1 + i % 3, price=16.0),
        )
        out.append(Out(pos_subject(store, device), encode_event(event), event.msg_id))
    return out


@dataclass
class Ledger:
    """What the publisher saw: the first PubAck of each msg id, and the failed attempts."""

    acks: dict[str, PublishResult] = field(default_factory=dict)
    duplicate_acks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    #: events acknowledged when the server went down (proves the outage was mid-run)
    acked_at_outage: int | None = None


async def publish_until_acked(
    stream: EventStream,
    msgs: list[Out],
    ledger: Ledger,
    *,
    concurrency: int = 32,
    deadline_s: float = 60.0,
    notify_at: int = 0,
) -> None:
    """Publish every message; an unacknowledged one is re-sent (same msg id) until acknowledged."""
    deadline = time.monotonic() + deadline_s
    todo = iter(msgs)

    async def worker() -> None:
        for m in todo:
            backoff = 0.05
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{m.msg_id} not acknowledged within {deadline_s}s: {ledger.errors}")
                try:
                    ack = await stream.publish(m.subject, m.data, msg_id=m.msg_id)
                except (ServiceUnavailableError, NotFoundError) as exc:
                    # no leader yet / disconnected / no responders: the event is not delivered
                    ledger.errors[type(exc).__name__] += 1
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
                if m.msg_id in ledger.acks:  # pragma: no cover - each msg id is owned by one worker
                    raise AssertionError(f"{m.msg_id} acknowledged twice by the publisher")
                ledger.duplicate_acks += ack.duplicate
                ledger.acks[m.msg_id] = ack
                if notify_at and len(ledger.acks) >= notify_at:
                    ledger.acked.set()
                break

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def assert_nothing_acked_lost(
    msgs: list[Out], ledger: Ledger, stored: list[Out], stored_seqs: list[int]
) -> None:
    by_id = {m.msg_id: m for m in msgs}
    ids = Counter(o.msg_id for o in stored)
    assert set(ledger.acks) == set(by_id), "the publisher gave up on some events"
    dupes = {k: c for k, c in ids.items() if c > 1}
    assert not dupes, f"stored more than once: {list(dupes)[:5]}"
    assert len(stored) == len(ledger.acks)
    assert set(ids) == set(ledger.acks)
    for o, seq in zip(stored, stored_seqs, strict=True):
        assert o.data == by_id[o.msg_id].data and o.subject == by_id[o.msg_id].subject
        # the acknowledgement named where the event is (a re-sent duplicate names the original)
        assert ledger.acks[o.msg_id].seq == seq


async def bind_consumer(stream: EventStream, durable: str, timeout_s: float = 30.0) -> Consumer:
    """Create the consumer, retrying while the (replicated) consumer's group elects a leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await stream.consumer(POS_STREAM, durable, ack_wait_s=30)
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def stored_with_seqs(stream: EventStream, durable: str, expected: int) -> tuple[list[Out], list[int]]:
    """Every stored message of POS (by stream sequence), read through a fresh durable consumer.

    A consumer redelivery (an ack lost in a failover) is not a stored duplicate: messages are keyed
    by stream sequence. Errors while the consumer's replicated group has no leader are retried
    (nats-py's 503 escapes ``JetStreamConsumer.fetch`` untranslated).
    """
    consumer = await bind_consumer(stream, durable)
    by_seq: dict[int, Out] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            batch = await consumer.fetch(500, timeout_s=0.5)
            for msg in batch:
                got = Out(msg.subject, msg.data, msg.headers.get(MSG_ID_HEADER, ""))
                assert by_seq.setdefault(msg.stream_seq, got) == got
                await msg.ack()
            if not batch and len(by_seq) >= expected and (await consumer.state()).idle:
                break
        except ServiceUnavailableError:  # the port translates 503s during leader election
            await asyncio.sleep(0.2)
    seqs = sorted(by_seq)
    return [by_seq[s] for s in seqs], seqs


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


# --- three-node cluster, R3 ----------------------------------------------------------------------


async def stream_leader(stream: JetStreamEventStream) -> str:
    info = await stream.js.stream_info(POS_STREAM)
    assert info.cluster is not None and info.cluster.leader
    return str(info.cluster.leader)


async def run_cluster_failover(tmp_path: Path, n: int, victim_role: str) -> dict[str, object]:
    msgs = device_events(n)
    with EphemeralNatsCluster(tmp_path / "cluster") as cluster:
        spec = StreamSpec(name=POS_STREAM, subjects=(POS_SUBJECTS,), duplicate_window_s=300, replicas=3)
        async with JetStreamEventStream(cluster.url, name="fleet", timeout_s=2.0) as stream:
            await stream.ensure_streams([spec])
            info = await stream.js.stream_info(POS_STREAM)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
            leader = await stream_leader(stream)
            ledger = Ledger()
            killed: list[str] = []

            async def killer() -> None:
                await ledger.acked.wait()
                current = await stream_leader(stream)
                victim = (
                    current
                    if victim_role == "leader"
                    else next(name for name in cluster.nodes if name != current)
                )
                await asyncio.to_thread(cluster.kill, victim)
                ledger.acked_at_outage = len(ledger.acks)
                killed.append(victim)

            killing = asyncio.create_task(killer())
            await publish_until_acked(stream, msgs, ledger, notify_at=n // 3, deadline_s=90)
            await killing
            (victim,) = killed
            assert ledger.acked_at_outage is not None and ledger.acked_at_outage < n
            if victim_role == "leader":
                # the stream was without a leader for a while: the publisher had to re-send
                assert sum(ledger.errors.values()) > 0
            assert victim not in cluster.running()
            # the stream has a leader again, on a surviving node
            assert await stream_leader(stream) != victim
            if victim_role == "leader":
                assert leader in cluster.nodes

        # a fresh client reads what the surviving two nodes hold
        async with JetStreamEventStream(cluster.url, name="auditor", timeout_s=5.0) as audit:
            stored, seqs = await stored_with_seqs(audit, "audit", n)
            assert_nothing_acked_lost(msgs, ledger, stored, seqs)
            state = await audit.stream_state(POS_STREAM)
            assert state.messages == n

            # the killed node comes back on its old store and catches up with the others
            await asyncio.to_thread(cluster.start_node, victim)

            async def caught_up() -> bool:
                return cluster.stream_messages(victim, POS_STREAM) == n

            await wait_for(caught_up, 30, f"{victim} to catch up")
        return {"victim": victim, "errors": dict(ledger.errors), "duplicate_acks": ledger.duplicate_acks}


async def test_r3_stream_survives_sigkill_of_its_leader(tmp_path: Path) -> None:
    figures = await run_cluster_failover(tmp_path, n=3_000, victim_role="leader")
    assert figures["victim"] in {"n1", "n2", "n3"}


@pytest.mark.slow
async def test_r3_stream_survives_sigkill_of_a_follower(tmp_path: Path) -> None:
    await run_cluster_failover(tmp_path, n=20_000, victim_role="follower")


@pytest.mark.slow
async def test_r3_stream_survives_sigkill_of_its_leader_under_a_longer_run(tmp_path: Path) -> None:
    await run_cluster_failover(tmp_path, n=20_000, victim_role="leader")


# --- single server restarted mid-run ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigkill", "graceful"])
async def test_single_server_restart_mid_run_loses_nothing_acknowledged(tmp_path: Path, how: str) -> None:
    n = 3_000
    msgs = device_events(n)
    with EphemeralNatsServer(tmp_path / "nats") as server:
        spec = StreamSpec(name=POS_STREAM, subjects=(POS_SUBJECTS,), duplicate_window_s=300)
        async with JetStreamEventStream(server.url, name="fleet", timeout_s=1.0) as stream:
            await stream.ensure_streams([spec])
            ledger = Ledger()

            async def restarter() -> None:
                await ledger.acked.wait()
                await asyncio.to_thread(server.kill if how == "sigkill" else server.stop)
                ledger.acked_at_outage = len(ledger.acks)
                await asyncio.sleep(0.5)  # down for a while: the client reconnects in a loop
                await asyncio.to_thread(server.start)

            restarting = asyncio.create_task(restarter())
            await publish_until_acked(stream, msgs, ledger, notify_at=n // 3, deadline_s=60)
            await restarting
            assert ledger.acked_at_outage is not None and ledger.acked_at_outage < n
            if how == "sigkill":
                # the crash was felt by the publisher: some publishes failed and were re-sent
                assert sum(ledger.errors.values()) > 0

        async with JetStreamEventStream(server.url, name="auditor") as audit:
            stored, seqs = await stored_with_seqs(audit, "audit", n)
            assert_nothing_acked_lost(msgs, ledger, stored, seqs)
            assert (await audit.stream_state(POS_STREAM)).messages == n
