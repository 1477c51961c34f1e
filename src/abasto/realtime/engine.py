"""The processor's core, free of I/O: raw message in → state updated → alerts and dead letters out.

For each message: validate (decode_event; subject ↔ store), deduplicate by (device, seq), advance
the store's event-time watermark, apply the event to its store×SKU state and evaluate that pair;
when a store's watermark crosses an hour, evaluate every pair of the store at that hour (stopped
sales are only visible then). Most pairs are unchanged between two such hours: the detector keeps,
per pair and per store, until when the re-check is known to end as the last one did (no alert, no
change, the same evaluations counted; forgotten when an event touches a pair of the store), and
only counts the evaluations of a re-check before then (``Detector.evaluate_store``).
Nothing raised by one message escapes: it becomes a dead letter with a reason.

Batched records (``abasto.pos.batch/v1``, told apart by their ``schema``) take a fast path: the
message is decoded once, each event is deduplicated, counted, watermarked and applied in order as
above, but the risk evaluation a sale triggers is deferred: a pair whose only changes are sales is
evaluated once, at its own newest event time, at the next *flush point* — before a stock reading of
that pair, before any delivery at the store (it moves every pair's next-delivery horizon), before
the store's hour evaluations when the watermark crosses an hour, and at the end of the batch;
readings and deliveries themselves are evaluated at once, as unbatched. So the state after a
batch, the counters (accepted, duplicates, late, by type) and the alert kinds per store×SKU
episode are those of the same events sent one by one; a projected-stockout alert that the
unbatched path raises at a sale inside the batch is raised at the pair's last sale of the run of
sales instead (``raised_at`` later by at most the batch's time span, its figures computed on that
later state). An invalid event inside a batch is dead-lettered alone (``DeadLetter.index``), the
others are applied; an error while applying a batch dead-letters the whole message
(``processing_error``). ``received`` counts messages; ``evaluations`` is lower by design.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from abasto.contracts.alerts import Alert
from abasto.contracts.batches import BatchedEvent, decode_batch_record, is_batch
from abasto.contracts.events import DeliveryReceipt, DeviceEvent, SaleScan, StockReading, decode_event
from abasto.contracts.patterns import DemandPattern
from abasto.errors import InvalidEventError
from abasto.realtime.dedup import SeqDeduper
from abasto.realtime.demand import ExpectedDemand
from abasto.realtime.detector import Detector
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.reference import ReferenceData
from abasto.realtime.snapshot import SNAPSHOT_VERSION, EngineSnapshot, MetricsSnapshot, PairSnapshot
from abasto.realtime.state import PairState
from abasto.realtime.tuning import DetectorTuning
from abasto.realtime.velocity import EwmaRate
from abasto.realtime.watermark import Watermark
from abasto.stream.topology import store_of_pos_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input refused by the processor, kept verbatim with the reason."""

    subject: str
    data: bytes
    reason: str
    detail: str
    #: position of the event in its batch message (``abasto.pos.batch/v1``); None: the whole message
    index: int | None = None


Output = Alert | DeadLetter

_PAIR_EVENTS = (SaleScan, StockReading, DeliveryReceipt)
_UNSEEN = "\x00unseen"
#: subjects remembered before the memo starts afresh
_MAX_SUBJECTS = 100_000


class Engine:
    def __init__(
        self,
        pattern: DemandPattern,
        reference: ReferenceData,
        tuning: DetectorTuning | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.tuning = tuning or DetectorTuning()
        self.metrics = ProcessorMetrics()
        self._tz = ZoneInfo(reference.timezone)
        self._store_deliveries: dict[str, datetime] = {}
        self._detector = Detector(
            ExpectedDemand(pattern, reference.timezone), reference, self.tuning, self._store_deliveries
        )
        self._dedup = SeqDeduper(self.tuning.dedup_window)
        self._lateness = timedelta(seconds=self.tuning.allowed_lateness_s)
        self._clocks: dict[str, Watermark] = {}
        #: per store: the newest event time from which its watermark may cross an hour
        #: (``Watermark.crossing_from`` after its last ``hours_crossed``; see ``_apply``)
        self._crossing: dict[str, datetime | None] = {}
        self._clock = clock
        #: store → sku → state, in creation order (a store's pairs are evaluated in this order)
        self._pairs: dict[str, dict[str, PairState]] = {}
        self._demand = self._detector.demand
        self._holds = self._detector.store_holds
        #: one string object per store/SKU name, whatever the number of events that spelled it
        self._names: dict[str, str] = {}
        #: the local day of the last instant asked: [start, end) in UTC, date, local midnight
        self._day: tuple[datetime, datetime, date, datetime] | None = None
        self._day_episodes: dict[date, str] = {}
        #: subject → its store (``store_of_pos_subject``)
        self._subjects: dict[str, str | None] = {}

    # --- inspection ------------------------------------------------------------------------------
    def watermark(self, store_id: str) -> datetime | None:
        """The store's event-time watermark (its newest event time − allowed lateness)."""
        clock = self._clocks.get(store_id)
        return None if clock is None else clock.current

    def pair(self, store_id: str, sku: str) -> PairState | None:
        per = self._pairs.get(store_id)
        return None if per is None else per.get(sku)

    def pairs(self) -> Iterator[PairState]:
        for per in self._pairs.values():
            yield from per.values()

    # --- checkpoint ------------------------------------------------------------------------------
    def snapshot(self) -> EngineSnapshot:
        """Everything that decides future outputs, as plain data (see ``realtime.snapshot``)."""
        pairs = [
            PairSnapshot(
                st.store_id,
                st.sku,
                st.first_seen_at,
                *st.velocity.export(),
                st.on_hand,
                st.last_reading_at,
                st.last_event_at,
                st.last_sale_at,
                st.day,
                st.counting_since,
                st.sales_today,
                st.episode,
                sorted(st.alerted),
            )
            for st in self.pairs()
        ]
        return EngineSnapshot(
            version=SNAPSHOT_VERSION,
            pairs=pairs,
            dedup=self._dedup.export(),
            watermarks=[(store, *wm.export()) for store, wm in self._clocks.items()],
            store_deliveries=dict(self._store_deliveries),
            model_calls=self._detector.export_model_calls(),
            demand_origins=self._demand.origins(),
            evaluations=self._detector.evaluations,
            metrics=MetricsSnapshot.of(self.metrics),
        )

    def restore(self, snap: EngineSnapshot) -> None:
        """Replace the whole state by ``snap`` (taken by an engine with the same pattern and tuning)."""
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"engine snapshot version {snap.version}, expected {SNAPSHOT_VERSION}")
        self._pairs.clear()
        self._day = None
        for p in snap.pairs:
            velocity = EwmaRate(self.tuning.velocity_half_life_h)
            velocity.restore(p.velocity_mass, p.velocity_at)
            st = PairState(
                store_id=self._name(p.store_id),
                sku=self._name(p.sku),
                first_seen_at=p.first_seen_at,
                velocity=velocity,
                on_hand=p.on_hand,
                last_reading_at=p.last_reading_at,
                last_event_at=p.last_event_at,
                last_sale_at=p.last_sale_at,
                day=p.day,
                counting_since=None if p.counting_since is None else p.counting_since.astimezone(self._tz),
                sales_today=p.sales_today,
                episode=p.episode,
                alerted=frozenset(p.alerted),
            )
            self._pairs.setdefault(st.store_id, {})[st.sku] = st
        self._dedup.restore(snap.dedup)
        self._clocks.clear()
        self._crossing.clear()
        for store, newest, last_hour in snap.watermarks:
            wm = self._clocks[store] = Watermark(self._lateness)
            wm.restore(newest, last_hour)
        # the detector holds this very dict: update it in place
        self._store_deliveries.clear()
        self._store_deliveries.update(snap.store_deliveries)
        self._detector.restore_model_calls(snap.model_calls)
        self._holds.clear()
        self._detector.evaluations = snap.evaluations
        self._demand.restore_origins(snap.demand_origins)
        snap.metrics.restore_into(self.metrics)
        self.metrics.evaluations = snap.evaluations

    # --- processing ------------------------------------------------------------------------------
    def process(self, subject: str, data: bytes) -> list[Output]:
        """Apply one raw message; never raises."""
        if is_batch(data):
            return self._process_batch(subject, data)
        self.metrics.received += 1
        try:
            event = decode_event(data, now=self._clock() if self._clock else None)
        except InvalidEventError as exc:
            return [self._reject(subject, data, exc.reason, exc.detail)]
        wrong = self._check_subject(subject, data, event.store_id, "event")
        if wrong is not None:
            return [wrong]
        if not self._dedup.first_time(event.device_id, event.seq):
            self.metrics.duplicates += 1
            return []
        try:
            out = self._apply(event)
        except Exception as exc:
            log.exception("processing %s failed", event.msg_id)
            return [self._reject(subject, data, "processing_error", repr(exc))]
        if out:
            self.metrics.alerts.update(a.kind for a in out)
            return list(out)
        return []

    def _check_subject(self, subject: str, data: bytes, store_id: str, what: str) -> DeadLetter | None:
        """The dead letter of a message whose subject is not ``pos.<store_id>.…`` of its payload."""
        store = self._subjects.get(subject, _UNSEEN)
        if store is _UNSEEN:
            # a pure function of the subject, asked again for every message of a device
            if len(self._subjects) >= _MAX_SUBJECTS:
                self._subjects.clear()
            store = self._subjects[subject] = store_of_pos_subject(subject)
        if store is None:
            detail = f"expected pos.<store_id>.<device_id>, got {subject}"
            return self._reject(subject, data, "bad_subject", detail)
        if store_id != store:
            detail = f"{what} for store {store_id} published on {subject}"
            return self._reject(subject, data, "store_mismatch", detail)
        return None

    def _reject(
        self, subject: str, data: bytes, reason: str, detail: str, index: int | None = None
    ) -> DeadLetter:
        self.metrics.rejected[reason] += 1
        return DeadLetter(subject=subject, data=data, reason=reason, detail=detail, index=index)

    # --- batched records -------------------------------------------------------------------------
    def _process_batch(self, subject: str, data: bytes) -> list[Output]:
        self.metrics.received += 1
        try:
            record = decode_batch_record(data, now=self._clock() if self._clock else None)
        except InvalidEventError as exc:
            return [self._reject(subject, data, exc.reason, exc.detail)]
        wrong = self._check_subject(subject, data, record.store_id, "batch")
        if wrong is not None:
            return [wrong]
        out: list[Output] = [
            self._reject(subject, r.data, r.reason, r.detail, r.index) for r in record.rejected
        ]
        try:
            alerts = self._apply_batch(record.store_id, record.device_id, record.events)
        except Exception as exc:
            log.exception("processing batch %s of %s failed", subject, record.device_id)
            return [*out, self._reject(subject, data, "processing_error", repr(exc))]
        if alerts:
            self.metrics.alerts.update(a.kind for a in alerts)
            out += alerts
        return out

    def _apply_batch(self, store_id: str, device_id: str, events: list[BatchedEvent]) -> list[Alert]:
        """Apply one device's events in order, deferring sale evaluations (module docstring)."""
        m = self.metrics
        first_time = self._dedup.first_time
        clock = self._clocks.get(store_id)
        if clock is None:
            clock = self._clocks[store_id] = Watermark(self._lateness)
        detector = self._detector
        max_catchup = self.tuning.max_catchup_hours
        tolerance = self.tuning.replenish_tolerance_units
        types: dict[type, int] = {}
        #: pairs changed by sales only since their last evaluation, by SKU (in first-touch order)
        dirty: dict[str, PairState] = {}
        out: list[Alert] = []
        accepted = duplicates = late = 0
        #: the event time from which the watermark may cross an hour (None: ask it)
        crossing: datetime | None = None
        for e in events:
            if not first_time(device_id, e.seq):
                duplicates += 1
                continue
            accepted += 1
            payload = e.payload
            kind = type(payload)
            types[kind] = types.get(kind, 0) + 1
            at = e.event_time
            if at.tzinfo is not UTC:
                at = at.astimezone(UTC)
            if clock.is_late(at):
                late += 1
            clock.observe(at)
            hours: list[datetime] = []
            if crossing is None or at >= crossing:
                hours = clock.hours_crossed(max_catchup)
                crossing = clock.crossing_from()
            if kind is SaleScan:
                assert isinstance(payload, SaleScan)
                st = self._state(store_id, payload.sku, at)
                local_day, midnight = self._local_day(at)
                st.touch(at, local_day, midnight)
                st.sale(at, payload.qty, local_day)
                dirty[st.sku] = st
            elif kind is DeliveryReceipt or kind is StockReading:
                assert isinstance(payload, (DeliveryReceipt, StockReading))
                st = self._state(store_id, payload.sku, at)
                if kind is DeliveryReceipt:
                    # the store's last delivery moves every pair's next-delivery horizon
                    out += self._flush(dirty)
                else:
                    pending = dirty.pop(st.sku, None)
                    if pending is not None:
                        out += detector.evaluate(pending, pending.last_event_at or at, stopped=False)
                local_day, midnight = self._local_day(at)
                st.touch(at, local_day, midnight)
                if isinstance(payload, DeliveryReceipt):
                    st.delivery(at, payload.qty)
                    last = self._store_deliveries.get(store_id)
                    if last is None or at > last:
                        self._store_deliveries[store_id] = at
                else:
                    st.reading(at, payload.on_hand, tolerance)
                out += detector.evaluate(st, st.last_event_at or at)
            if hours:
                out += self._flush(dirty)
                for hour in hours:
                    out += self.evaluate_store(store_id, hour)
        out += self._flush(dirty)
        m.accepted += accepted
        m.duplicates += duplicates
        m.late += late
        for kind, n in types.items():
            m.by_type[kind.__name__] += n
        m.evaluations = detector.evaluations
        return out

    def _flush(self, dirty: dict[str, PairState]) -> list[Alert]:
        """Evaluate the pairs changed by sales since their last evaluation, as a sale would."""
        out: list[Alert] = []
        for st in dirty.values():
            assert st.last_event_at is not None  # touched
            out += self._detector.evaluate(st, st.last_event_at, stopped=False)
        dirty.clear()
        return out

    def _apply(self, event: DeviceEvent) -> list[Alert]:
        m = self.metrics
        m.accepted += 1
        payload = event.payload
        m.by_type[type(payload).__name__] += 1
        at = event.event_time
        if at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        clock = self._clocks.get(event.store_id)
        if clock is None:
            clock = self._clocks[event.store_id] = Watermark(self._lateness)
        if clock.is_late(at):
            m.late += 1
        clock.observe(at)
        out: list[Alert] = []
        if isinstance(payload, _PAIR_EVENTS):
            st = self._state(event.store_id, payload.sku, at)
            local_day, midnight = self._local_day(at)
            st.touch(at, local_day, midnight)
            if isinstance(payload, SaleScan):
                st.sale(at, payload.qty, local_day)
            elif isinstance(payload, DeliveryReceipt):
                st.delivery(at, payload.qty)
                last = self._store_deliveries.get(event.store_id)
                if last is None or at > last:
                    self._store_deliveries[event.store_id] = at
            else:
                st.reading(at, payload.on_hand, self.tuning.replenish_tolerance_units)
            now = st.last_event_at or at
            out += self._detector.evaluate(st, now, stopped=not isinstance(payload, SaleScan))
        # the watermark trails the newest event time, which stays below crossing_from() after
        # hours_crossed(): an older event cannot make it cross an hour (a stale, older bound left
        # by a batch only asks hours_crossed for nothing)
        crossing = self._crossing.get(event.store_id)
        if crossing is None or at >= crossing:
            for hour in clock.hours_crossed(self.tuning.max_catchup_hours):
                out += self.evaluate_store(event.store_id, hour)
            self._crossing[event.store_id] = clock.crossing_from()
        m.evaluations = self._detector.evaluations
        return out

    def _state(self, store_id: str, sku: str, at: datetime) -> PairState:
        """The pair an event is about to change (its store's re-check timer no longer holds)."""
        self._holds.pop(store_id, None)
        per = self._pairs.get(store_id)
        if per is None:
            store_id = self._name(store_id)
            per = self._pairs[store_id] = {}
        st = per.get(sku)
        if st is None:
            local_day = self._local_day(at)[0]
            episode = self._day_episodes.get(local_day)
            if episode is None:
                episode = self._day_episodes[local_day] = f"d{local_day.isoformat()}"
            sku = self._name(sku)
            st = per[sku] = PairState(
                store_id=self._name(store_id),
                sku=sku,
                first_seen_at=at,
                velocity=EwmaRate(self.tuning.velocity_half_life_h),
                episode=episode,
            )
        return st

    def _name(self, name: str) -> str:
        return self._names.setdefault(name, name)

    def _local_day(self, at: datetime) -> tuple[date, datetime]:
        """(local date of ``at``, its local midnight): one time zone conversion per local day."""
        day = self._day
        if day is None or not day[0] <= at < day[1]:
            local = at.astimezone(self._tz).date()
            midnight = datetime(local.year, local.month, local.day, tzinfo=self._tz)
            nxt = local + timedelta(days=1)
            end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self._tz)
            day = self._day = (midnight.astimezone(UTC), end.astimezone(UTC), local, midnight)
        return day[2], day[3]

    def evaluate_store(self, store_id: str, at: datetime) -> list[Alert]:
        """Evaluate every pair of a store as of ``at`` (or the pair's own newer event time)."""
        per = self._pairs.get(store_id)
        if per is None:
            return []
        return self._detector.evaluate_store(store_id, per.values(), at)
