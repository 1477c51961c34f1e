"""Object-created events → trigger worker → curate job runs (the local S3 event → Lambda → Glue)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from test_jobs_builders import PRODUCTS, REGIONS, key_of, keyless_products_file, products_cdc, regions_cdc

from abasto.errors import InvalidInputError
from abasto.lake.jobs import (
    JobRunner,
    ObjectRef,
    RunStatus,
    TableRouter,
    Trigger,
    TriggerWorker,
    announce_unseen,
    object_created_event,
    parse_object_created,
    publish_object_created,
)
from abasto.lake.jobs.triggers import object_ref
from abasto.settings import Settings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def lake_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-lake-jobs")) as server:
        yield server


@pytest.fixture
def spec() -> StreamSpec:
    """A LAKE_EVENTS-like stream with a name and subject space of its own per test."""
    n = next(_counter)
    return StreamSpec(name=f"LAKE{n}", subjects=(f"lake{n}.>",), duplicate_window_s=60)


@pytest.fixture
def subject(spec: StreamSpec) -> str:
    return spec.subjects[0].replace(">", "objects.raw")


@pytest.fixture
async def stream(lake_nats: EphemeralNatsServer, spec: StreamSpec) -> AsyncIterator[EventStream]:
    async with JetStreamEventStream(lake_nats.url, name="lake-jobs-test") as s:
        await s.ensure_streams([spec])
        yield s
        await s.delete_stream(spec.name)


@pytest.fixture
def runner(settings: Settings, catalog: SqlCatalog) -> JobRunner:
    return JobRunner(settings, catalog=catalog)


@pytest.fixture
def worker(stream: EventStream, runner: JobRunner, spec: StreamSpec, subject: str) -> TriggerWorker:
    return TriggerWorker(
        stream, runner, stream_name=spec.name, subject=subject, durable="trigger", max_wait_s=0.2
    )


async def consumer_idle(worker: TriggerWorker) -> bool:
    """Every message acknowledged (acks are asynchronous: wait a little for the server)."""
    for _ in range(40):
        if (await worker.consumer_state()).idle:
            return True
        await asyncio.sleep(0.05)
    return False


def ids(catalog: SqlCatalog, identifier: str, column: str) -> list[str]:
    return sorted(catalog.load_table(identifier).scan().to_arrow()[column].to_pylist())


async def test_an_object_created_event_runs_the_matching_job(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    raw = regions_cdc(settings.raw_uri, ["R1", "R2"], lsn=10)
    await publish_object_created(stream, settings.raw_uri, key_of(raw, REGIONS.source), subject=subject)

    runs = await worker.run_once(fetch_timeout_s=0.3)

    assert [(r.table, r.trigger, r.status, r.files) for r in runs] == [
        ("curated.regions", Trigger.OBJECT_CREATED, RunStatus.OK, 1)
    ]
    assert runs[0].inputs[0].relpath == raw.relpath and runs[0].detail["keys"] == [
        key_of(raw, REGIONS.source)
    ]
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R1", "R2"]
    assert worker.runner.store.runs("curated.regions") == runs
    assert await consumer_idle(worker)


async def test_duplicate_events_apply_a_file_once(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    raw = regions_cdc(settings.raw_uri, ["R1"], lsn=10)
    key = key_of(raw, REGIONS.source)
    first = await publish_object_created(stream, settings.raw_uri, key, subject=subject)
    retried = await publish_object_created(stream, settings.raw_uri, key, subject=subject)
    assert not first.duplicate and retried.duplicate  # a writer's retry is stored once
    # S3 delivers at least once: the same notification again, without a dedup id
    body = json.dumps(object_created_event(object_ref(settings.raw_uri, key))).encode()
    await stream.publish(subject, body)

    runs = await worker.run_once(fetch_timeout_s=0.3)
    assert [r.files for r in runs] == [1]  # both events of the batch start one run

    await stream.publish(subject, body)  # a late duplicate
    later = await worker.run_once(fetch_timeout_s=0.3)
    assert [(r.files, r.ok, r.snapshot_ids) for r in later] == [(0, True, ())]
    assert later[0].snapshot_id == runs[0].snapshot_id
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R1"]
    assert [r.files for r in worker.runner.store.runs("curated.regions")] == [0, 1]


async def test_unknown_keys_and_garbage_are_counted_not_fatal(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    await publish_object_created(
        stream, settings.raw_uri, "devices/pos_events/date=2026-09-01/x.parquet", subject=subject
    )
    await publish_object_created(
        stream, settings.raw_uri, "sales_db/regions/cdc/not-a-change-file.txt", subject=subject
    )
    await stream.publish(subject, b"{not json")
    other_bucket = object_created_event(ObjectRef("someone-elses-bucket", "sales_db/regions/cdc/x.parquet"))
    await stream.publish(subject, json.dumps(other_bucket).encode())
    raw = regions_cdc(settings.raw_uri, ["R9"], lsn=10)
    await publish_object_created(stream, settings.raw_uri, key_of(raw, REGIONS.source), subject=subject)

    runs = await worker.run_once(fetch_timeout_s=0.3)

    assert worker.stats.unknown == 3 and worker.stats.invalid == 1 and worker.stats.messages == 5
    assert [(r.table, r.files) for r in runs] == [("curated.regions", 1)]
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R9"]
    assert await consumer_idle(worker)  # every message acknowledged


async def test_a_failing_job_is_recorded_and_the_worker_goes_on(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    first_key = keyless_products_file(settings.raw_uri, lsn=5)
    bad_key = keyless_products_file(settings.raw_uri, lsn=9)
    region = regions_cdc(settings.raw_uri, ["R1"], lsn=10)
    for key in (first_key, bad_key, key_of(region, REGIONS.source)):
        await publish_object_created(stream, settings.raw_uri, key, subject=subject)

    runs = {r.table: r for r in await worker.run_once(fetch_timeout_s=0.3)}

    failed = runs[PRODUCTS.identifier]
    assert failed.status is RunStatus.FAILED and failed.error and "lack key columns" in failed.error
    assert failed.detail["objects"] == 2
    assert runs[REGIONS.identifier].ok and runs[REGIONS.identifier].files == 1
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R1"]
    assert worker.stats.failed_runs == 1 and worker.stats.runs == 2
    assert await consumer_idle(worker)  # failure recorded; files stay pending
    assert len(worker.runner.pending("products")) == 2
    stored = worker.runner.store.runs(PRODUCTS.identifier)
    assert [(r.status, r.error) for r in stored] == [(RunStatus.FAILED, failed.error)]


async def test_the_watcher_announces_files_written_while_nobody_listened(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    announced_by_writer = regions_cdc(settings.raw_uri, ["R1"], lsn=10)
    await publish_object_created(
        stream, settings.raw_uri, key_of(announced_by_writer, REGIONS.source), subject=subject
    )
    await worker.run_once(fetch_timeout_s=0.3)
    silent = [
        regions_cdc(settings.raw_uri, ["R2"], lsn=20),
        products_cdc(settings.raw_uri, ["LIMA-2L"], lsn=30),
    ]

    keys = await announce_unseen(stream, worker.runner, subject=subject)
    assert sorted(keys) == sorted([key_of(silent[0], REGIONS.source), key_of(silent[1], PRODUCTS.source)])
    assert await announce_unseen(stream, worker.runner, subject=subject) == []  # announced once

    runs = await worker.run_once(fetch_timeout_s=0.3)
    assert sorted((r.table, r.files) for r in runs) == [("curated.products", 1), ("curated.regions", 1)]
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R1", "R2"]


async def test_the_running_worker_debounces_and_runs_one_job_per_table(
    stream: EventStream, worker: TriggerWorker, settings: Settings, catalog: SqlCatalog, subject: str
) -> None:
    worker.max_wait_s = 1.0
    files = [regions_cdc(settings.raw_uri, [f"R{n}"], lsn=10 * (n + 1)) for n in range(3)]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        for raw in files:
            await publish_object_created(
                stream, settings.raw_uri, key_of(raw, REGIONS.source), subject=subject
            )
        for _ in range(100):
            if worker.stats.runs:
                break
            await asyncio.sleep(0.05)
        ran_on_its_own = worker.stats.runs  # the debounce timer fired, not the final flush on stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert ran_on_its_own == 1
    assert [r.files for r in worker.runner.store.runs("curated.regions")] == [3]  # one run for the burst
    assert ids(catalog, REGIONS.identifier, "region_id") == ["R0", "R1", "R2"]


def test_router_maps_keys_to_tables() -> None:
    local = TableRouter("file:///lake/raw")
    cdc = "cdc/2026-09-01/CDC-000000000000000A-000000000000000B.parquet"
    route = local.route(ObjectRef("raw", f"sales_db/order_lines/{cdc}"))
    assert route is not None and route.spec.name == "order_lines" and route.relpath == cdc
    orders = local.route(ObjectRef("raw", f"sales_db/orders/{cdc}"))
    assert orders is not None and orders.spec.name == "orders"
    assert local.route(ObjectRef("raw", "devices/pos_events/date=2026-09-01/hour=06/x.parquet")) is None
    assert local.route(ObjectRef("raw", "sales_db/orders/cdc/_tmp/x.parquet")) is None

    s3 = TableRouter("s3://gaseosas-raw/zone")
    key = f"zone/behavior/documents/{cdc}"
    assert object_ref("s3://gaseosas-raw/zone", f"behavior/documents/{cdc}") == ObjectRef("gaseosas-raw", key)
    routed = s3.route(ObjectRef("gaseosas-raw", key))
    assert routed is not None and routed.spec.name == "behavior_documents"
    assert s3.route(ObjectRef("gaseosas-raw", f"behavior/documents/{cdc}")) is None  # outside the prefix


def test_parse_object_created_reads_s3_notifications() -> None:
    event = object_created_event(ObjectRef("raw", "sales_db/orders/cdc/a b.parquet"))
    assert event["Records"][0]["eventName"] == "ObjectCreated:Put"
    assert parse_object_created(json.dumps(event).encode()) == [
        ObjectRef("raw", "sales_db/orders/cdc/a b.parquet")
    ]
    encoded = {
        "Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "raw"}, "object": {"key": "a+b%3D"}}}
        ]
    }
    assert parse_object_created(json.dumps(encoded).encode()) == [ObjectRef("raw", "a b=")]
    removed = {
        "Records": [
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "raw"}, "object": {"key": "k"}}}
        ]
    }
    assert parse_object_created(json.dumps(removed).encode()) == []
    for garbage in (b"[]", b"{}", b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', b"\xff"):
        with pytest.raises(InvalidInputError):
            parse_object_created(garbage)
