"""Object-created triggers: the local S3 event notification → Lambda → Glue ``StartJobRun``.

A writer that finished a raw file calls :func:`publish_object_created`, which publishes an S3
notification (``{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":…},
"object":{"key":…}}}]}``) on ``lake.objects.raw`` of the ``LAKE_EVENTS`` stream. A
:class:`TriggerWorker` (durable consumer) maps each key to the :class:`TableSpec` whose source
prefix it lies under, batches per table (up to ``max_files`` objects or ``max_wait_s`` seconds)
and runs that table's curate job through a :class:`JobRunner`, which records the run (device
tables due at the same flush run together, from one read of the raw device files). Messages are
acknowledged once their job ran; keys of no known table (or not in the raw layout) and unreadable
messages are acknowledged and counted, never fatal. A failed job is recorded and its messages
acknowledged (its files stay pending for the next run), unless the failure is retryable (another
writer committed meanwhile): then they are redelivered later.

Events are hints: the curate ledger decides what is applied, so duplicate or late events cost a
run with 0 files, never a file applied twice. :func:`announce_unseen` is the fallback for files
written while nobody listened: it lists the raw prefixes and announces pending files no event
announced yet.

The bucket of a local raw zone is ``raw`` and keys are relative to it; on S3 the bucket and key
are the real ones (the raw URI's path is the key prefix).
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus, urlparse

from abasto.errors import InvalidInputError
from abasto.lake.device_files import DeviceFile
from abasto.lake.device_tables import DEVICE_TABLES
from abasto.lake.jobs.runner import JobRunner, job_tables
from abasto.lake.jobs.runs import JobRun, Trigger
from abasto.lake.raw_files import RawFile
from abasto.lake.tables import ALL_TABLES, TableSpec
from abasto.stream.port import Consumer, ConsumerState, EventStream, PublishResult, StreamMessage, StreamSpec

__all__ = [
    "LAKE_EVENTS_STREAM",
    "LAKE_SUBJECTS",
    "RAW_OBJECTS_SUBJECT",
    "TRIGGER_DURABLE",
    "ObjectRef",
    "Route",
    "TableRouter",
    "TriggerStats",
    "TriggerWorker",
    "announce_unseen",
    "lake_streams",
    "object_created_event",
    "object_ref",
    "parse_object_created",
    "publish_object_created",
]

log = logging.getLogger(__name__)

LAKE_EVENTS_STREAM: Final = "LAKE_EVENTS"
LAKE_SUBJECTS: Final = "lake.>"
RAW_OBJECTS_SUBJECT: Final = "lake.objects.raw"
TRIGGER_DURABLE: Final = "lake-trigger"
#: bucket name of a local (``file://``) raw zone
LOCAL_RAW_BUCKET: Final = "raw"


def lake_streams(*, duplicate_window_s: float = 120.0, max_age_s: float = 7 * 86400.0) -> list[StreamSpec]:
    """The ``LAKE_EVENTS`` stream (subjects ``lake.>``): object-created notifications of the lake."""
    return [
        StreamSpec(
            name=LAKE_EVENTS_STREAM,
            subjects=(LAKE_SUBJECTS,),
            max_age_s=max_age_s,
            duplicate_window_s=duplicate_window_s,
            description="lake object-created notifications (S3 event shape)",
        )
    ]


@dataclass(frozen=True)
class ObjectRef:
    """An object of the raw zone as S3 names it."""

    bucket: str
    key: str


def _raw_root(raw_uri: str) -> tuple[str, str]:
    """(bucket, key prefix) of a raw zone."""
    parsed = urlparse(raw_uri)
    if parsed.scheme == "s3":
        return parsed.netloc, parsed.path.strip("/")
    return LOCAL_RAW_BUCKET, ""


def object_ref(raw_uri: str, relpath: str) -> ObjectRef:
    """The object at ``relpath`` (relative to the raw zone, e.g. ``sales_db/orders/cdc/…``)."""
    bucket, prefix = _raw_root(raw_uri)
    rel = relpath.strip("/")
    return ObjectRef(bucket, posixpath.join(prefix, rel) if prefix else rel)


def object_created_event(
    ref: ObjectRef, *, size: int | None = None, event_time: datetime | None = None
) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Put`` notification for ``ref``."""
    obj: dict[str, Any] = {"key": ref.key}
    if size is not None:
        obj["size"] = size
    stamp = (event_time or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": stamp,
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": ref.bucket}, "object": obj},
            }
        ]
    }


def parse_object_created(data: bytes) -> list[ObjectRef]:
    """The objects an S3 notification announces as created (other event names are ignored).

    Keys are URL-decoded as S3 encodes them.

    Raises:
        InvalidInputError: not an S3 notification.
    """
    try:
        doc = json.loads(data)
        records = doc["Records"]
        refs = []
        for record in records:
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            refs.append(ObjectRef(str(s3["bucket"]["name"]), unquote_plus(str(s3["object"]["key"]))))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"not an S3 event notification: {exc!r}") from exc
    return refs


async def publish_object_created(
    stream: EventStream,
    raw_uri: str,
    relpath: str,
    *,
    subject: str = RAW_OBJECTS_SUBJECT,
    size: int | None = None,
) -> PublishResult:
    """Announce a finished raw file (``relpath`` relative to the raw zone, e.g.
    ``sales_db/orders/cdc/2026-09-01/CDC-….parquet``). A retried announcement within the stream's
    duplicate window is stored once (message id = bucket/key).

    Raises:
        NotFoundError: no stream captures ``subject`` (see :func:`lake_streams`).
        ServiceUnavailableError: the stream did not acknowledge.
    """
    ref = object_ref(raw_uri, relpath)
    body = json.dumps(object_created_event(ref, size=size), separators=(",", ":")).encode()
    return await stream.publish(subject, body, msg_id=f"s3/{ref.bucket}/{ref.key}")


@dataclass(frozen=True)
class Route:
    """Where an object goes: the table whose job applies it, the path relative to its source."""

    spec: TableSpec
    relpath: str


class TableRouter:
    """Maps object keys to the curated tables whose raw source prefix holds them (the device
    events feed two tables: ``sales_by_hour`` and ``stock_readings``)."""

    def __init__(self, raw_uri: str, specs: Iterable[TableSpec] | None = None) -> None:
        self.bucket, self.prefix = _raw_root(raw_uri)
        # longest source first, so a nested prefix wins over its parent
        self._specs = sorted(
            specs if specs is not None else [*ALL_TABLES.values(), *DEVICE_TABLES.values()],
            key=lambda s: -len(s.source),
        )

    def route(self, ref: ObjectRef) -> Route | None:
        """The first table of ``ref`` (see :meth:`routes`); None if there is none."""
        found = self.routes(ref)
        return found[0] if found else None

    def routes(self, ref: ObjectRef) -> list[Route]:
        """The tables of ``ref``; empty if it is in no table's prefix or not a raw file of it."""
        if ref.bucket != self.bucket:
            return []
        key = ref.key.lstrip("/")
        if self.prefix:
            if not key.startswith(self.prefix + "/"):
                return []
            key = key[len(self.prefix) + 1 :]
        found: list[Route] = []
        for spec in self._specs:
            if found and spec.source != found[0].spec.source:
                break
            if key.startswith(spec.source + "/"):
                rel = key[len(spec.source) + 1 :]
                try:
                    (DeviceFile.parse if spec.name in DEVICE_TABLES else RawFile.parse)(rel)
                except InvalidInputError:
                    return []
                found.append(Route(spec, rel))
        return found


@dataclass
class TriggerStats:
    """Counters of a trigger worker since it started."""

    messages: int = 0
    objects: int = 0
    unknown: int = 0
    invalid: int = 0
    runs: int = 0
    failed_runs: int = 0
    retried: int = 0
    by_table: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "objects": self.objects,
            "unknown": self.unknown,
            "invalid": self.invalid,
            "runs": self.runs,
            "failed_runs": self.failed_runs,
            "retried": self.retried,
            "by_table": dict(self.by_table),
        }


@dataclass
class _Held:
    """A message waiting for the jobs of the tables it announced."""

    msg: StreamMessage
    tables: set[str]
    settled: bool = False


@dataclass
class _Batch:
    spec: TableSpec
    first_at: float
    held: list[_Held] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class TriggerWorker:
    """Consumes object-created events and runs the matching curate jobs (the local Lambda).

    ``max_files``: objects of one table that start its job at once; ``max_wait_s``: the longest an
    announced object waits for more of its table (debounce). Jobs run in a thread, one at a time.
    """

    def __init__(
        self,
        stream: EventStream,
        runner: JobRunner,
        *,
        stream_name: str = LAKE_EVENTS_STREAM,
        subject: str = RAW_OBJECTS_SUBJECT,
        durable: str = TRIGGER_DURABLE,
        max_files: int = 100,
        max_wait_s: float = 5.0,
        fetch_batch: int = 200,
        ack_wait_s: float = 600.0,
        retry_delay_s: float = 5.0,
    ) -> None:
        self.stream = stream
        self.runner = runner
        self.router = TableRouter(runner.raw_uri)
        self.stream_name, self.subject, self.durable = stream_name, subject, durable
        self.max_files, self.max_wait_s = max_files, max_wait_s
        self.fetch_batch, self.ack_wait_s, self.retry_delay_s = fetch_batch, ack_wait_s, retry_delay_s
        self.stats = TriggerStats()
        self._consumer: Consumer | None = None
        self._batches: dict[str, _Batch] = {}

    async def _bound(self) -> Consumer:
        if self._consumer is None:
            self._consumer = await self.stream.consumer(
                self.stream_name, self.durable, filter_subject=self.subject, ack_wait_s=self.ack_wait_s
            )
        return self._consumer

    async def consumer_state(self) -> ConsumerState:
        """What is left for the worker's durable consumer (``idle``: every event acknowledged)."""
        return await (await self._bound()).state()

    async def run_once(self, *, fetch_timeout_s: float = 0.5) -> list[JobRun]:
        """Consume every event stored now, run the jobs they call for, return the runs."""
        consumer = await self._bound()
        runs: list[JobRun] = []
        while msgs := await consumer.fetch(self.fetch_batch, timeout_s=fetch_timeout_s):
            for msg in msgs:
                await self._accept(msg)
            runs += await self._flush(force=False)
        runs += await self._flush(force=True)
        return runs

    async def run_forever(self, stop: asyncio.Event, *, watch_interval_s: float | None = None) -> None:
        """Consume until ``stop`` is set; with ``watch_interval_s``, also announce unseen raw files
        that often (:func:`announce_unseen`)."""
        consumer = await self._bound()
        next_watch = time.monotonic()
        while not stop.is_set():
            if watch_interval_s is not None and time.monotonic() >= next_watch:
                await announce_unseen(self.stream, self.runner, subject=self.subject)
                next_watch = time.monotonic() + watch_interval_s
            for msg in await consumer.fetch(self.fetch_batch, timeout_s=self._poll_s()):
                await self._accept(msg)
            await self._flush(force=False)
        await self._flush(force=True)

    def _poll_s(self) -> float:
        if not self._batches:
            return 1.0
        oldest = min(b.first_at for b in self._batches.values())
        return max(0.05, min(1.0, oldest + self.max_wait_s - time.monotonic()))

    async def _accept(self, msg: StreamMessage) -> None:
        self.stats.messages += 1
        try:
            refs = parse_object_created(msg.data)
        except InvalidInputError as exc:
            self.stats.invalid += 1
            log.warning("lake trigger: dropping message %s: %s", msg.stream_seq, exc)
            await msg.ack()
            return
        routes: list[tuple[Route, ObjectRef]] = []
        for ref in refs:
            found = self.router.routes(ref)
            if not found:
                self.stats.unknown += 1
                log.info("lake trigger: no job for s3://%s/%s", ref.bucket, ref.key)
            routes += [(route, ref) for route in found]
        if not routes:
            await msg.ack()
            return
        held = _Held(msg, {r.spec.name for r, _ in routes})
        self.stats.objects += len({ref.key for _, ref in routes})
        for route, ref in routes:
            batch = self._batches.setdefault(route.spec.name, _Batch(route.spec, time.monotonic()))
            if not batch.held or batch.held[-1] is not held:
                batch.held.append(held)
            batch.keys.append(ref.key)
        self.runner.store.mark_seen(list(dict.fromkeys(ref.key for _, ref in routes)), via="event")

    async def _flush(self, *, force: bool) -> list[JobRun]:
        now = time.monotonic()
        due = [
            name
            for name, b in self._batches.items()
            if force or len(b.keys) >= self.max_files or now - b.first_at >= self.max_wait_s
        ]
        started = await self._start(due)
        runs: list[JobRun] = []
        for name in due:
            batch = self._batches.pop(name)
            run = started[name]
            if isinstance(run, Exception):  # the run could not even start (catalog, lock): retry later
                log.warning("lake trigger: job %s did not run: %s", name, run)
                await self._settle(batch, name, retry=True)
                continue
            runs.append(run)
            self.stats.runs += 1
            self.stats.by_table[name] += 1
            if not run.ok:
                self.stats.failed_runs += 1
                log.warning("lake trigger: job %s failed: %s", name, run.error)
            await self._settle(batch, name, retry=not run.ok and bool(run.detail.get("retryable")))
        return runs

    async def _start(self, due: list[str]) -> dict[str, JobRun | Exception]:
        """Run the jobs of the ``due`` tables: the device tables among them together, from one read
        of the raw device files, the others one by one. Per table: its run, or what kept it from
        starting."""
        out: dict[str, JobRun | Exception] = {}
        device = [name for name in due if name in DEVICE_TABLES]
        if len(device) > 1:
            keys = list(dict.fromkeys(k for name in device for k in self._batches[name].keys))
            detail: dict[str, Any] = {"objects": len(keys), "keys": keys[:20]}
            try:
                out.update(
                    await asyncio.to_thread(
                        self.runner.run_device_tables, device, Trigger.OBJECT_CREATED, detail=detail
                    )
                )
            except Exception as exc:  # noqa: BLE001 - settled per table by the caller
                out.update(dict.fromkeys(device, exc))
        for name in due:
            if name in out:
                continue
            batch = self._batches[name]
            detail = {"objects": len(batch.keys), "keys": batch.keys[:20]}
            try:
                out[name] = await asyncio.to_thread(
                    self.runner.run, name, Trigger.OBJECT_CREATED, detail=detail
                )
            except Exception as exc:  # noqa: BLE001 - settled by the caller
                out[name] = exc
        return out

    async def _settle(self, batch: _Batch, table: str, *, retry: bool) -> None:
        for held in batch.held:
            held.tables.discard(table)
            if held.settled:
                continue
            if retry:
                self.stats.retried += 1
                held.settled = True
                await held.msg.nak(self.retry_delay_s)
            elif not held.tables:
                held.settled = True
                await held.msg.ack()


async def announce_unseen(
    stream: EventStream,
    runner: JobRunner,
    *,
    subject: str = RAW_OBJECTS_SUBJECT,
    tables: Iterable[str] | None = None,
) -> list[str]:
    """Announce the pending raw files of ``tables`` (all) that no event announced yet; returns
    their keys. A table whose raw prefix holds a stray file is skipped (logged)."""
    announced: list[str] = []
    for name in tables if tables is not None else job_tables():
        try:
            pending = runner.pending_keys(name)
        except InvalidInputError as exc:
            log.warning("lake watcher: %s: %s", name, exc)
            continue
        by_key = {object_ref(runner.raw_uri, relpath).key: relpath for relpath in pending}
        for key in runner.store.unseen(list(by_key)):  # a file of two tables is announced once
            await publish_object_created(stream, runner.raw_uri, by_key[key], subject=subject)
            runner.store.mark_seen([key], via="watcher")
            announced.append(key)
    return announced
