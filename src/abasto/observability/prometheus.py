"""Prometheus exposition of abasto's live counters (CloudWatch metrics' local counterpart).

Each collector reads a counters object of a running component *at scrape time* (nothing is copied
or kept twice): the stream processor's :class:`~abasto.realtime.metrics.ProcessorMetrics`, the raw
delivery's :class:`~abasto.delivery.metrics.DeliveryMetrics`, the ingest gateway's
:class:`~abasto.ingest.metrics.IngestMetrics` (and the MQTT refusals of
:class:`~abasto.ingest.refusals.RefusalCounter`), and the SQL API's :class:`~abasto.api.metrics.ApiMetrics`.
A collector takes a *function* returning the object, so it can be registered before the component
exists (it then exposes nothing) and follows a component that replaces its counters.

Names follow Prometheus conventions: ``abasto_<component>_<what>_total`` counters, one label per
breakdown (``outcome``, ``reason``, ``kind``…), ``const_labels`` for the process (``worker="0"``).

Stream processor (``abasto realtime run --metrics-port``):

* ``abasto_events_received_total`` — messages read from the POS stream;
* ``abasto_events_total{outcome}`` — ``accepted`` / ``rejected`` / ``duplicate`` (they add up to received);
* ``abasto_events_late_total`` — accepted events older than the store's watermark (a subset of accepted);
* ``abasto_events_rejected_total{reason}``, ``abasto_events_accepted_by_type_total{type}``;
* ``abasto_alerts_total{kind}``, ``abasto_risk_evaluations_total``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from abasto.api.metrics import ApiMetrics
    from abasto.delivery.metrics import DeliveryMetrics
    from abasto.ingest.metrics import IngestMetrics
    from abasto.ingest.refusals import RefusalCounter
    from abasto.realtime.metrics import ProcessorMetrics

__all__ = [
    "ApiCollector",
    "DeliveryCollector",
    "IngestCollector",
    "ProcessorCollector",
    "RefusalCollector",
    "registry_of",
]

T = TypeVar("T")


class _Collector(Collector, Generic[T]):
    """Reads ``source()`` at each scrape; exposes nothing while it returns ``None``."""

    def __init__(
        self, source: Callable[[], T | None], *, const_labels: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.const_labels = dict(const_labels or {})

    def collect(self) -> Iterator[Metric]:
        counters = self.source()
        if counters is None:
            return iter(())
        return iter(list(self._families(counters)))

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are known only from live counters; registration skips the clash check

    @abstractmethod
    def _families(self, counters: T) -> Iterable[Metric]:
        """The metric families of one scrape, read from ``counters`` (each collector's own)."""

    def counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        """A counter without breakdown."""
        family = CounterMetricFamily(name, doc, labels=list(self.const_labels))
        family.add_metric(list(self.const_labels.values()), value)
        return family

    def breakdown(
        self, name: str, doc: str, label: str, values: Mapping[str, int] | Mapping[int, int]
    ) -> Metric:
        """A counter with one sample per key of ``values`` (copied first: the owner may be counting)."""
        family = CounterMetricFamily(name, doc, labels=[*self.const_labels, label])
        fixed = list(self.const_labels.values())
        for key, value in sorted(dict(values).items()):
            family.add_metric([*fixed, str(key)], value)
        return family


class ProcessorCollector(_Collector["ProcessorMetrics"]):
    """The stream processor's counters (:attr:`abasto.realtime.processor.Processor.metrics`)."""

    def _families(self, m: ProcessorMetrics) -> Iterable[Metric]:
        rejected = dict(m.rejected)
        yield self.counter("abasto_events_received", "Messages read from the POS stream.", m.received)
        yield self.breakdown(
            "abasto_events",
            "POS stream messages by outcome (accepted, rejected, duplicate).",
            "outcome",
            {"accepted": m.accepted, "rejected": sum(rejected.values()), "duplicate": m.duplicates},
        )
        yield self.counter(
            "abasto_events_late",
            "Accepted events older than their store's watermark (applied anyway).",
            m.late,
        )
        yield self.breakdown(
            "abasto_events_rejected",
            "Messages sent to the dead-letter stream, by reason.",
            "reason",
            rejected,
        )
        yield self.breakdown(
            "abasto_events_accepted_by_type", "Accepted events by payload type.", "type", m.by_type
        )
        yield self.breakdown("abasto_alerts", "Alerts raised, by kind.", "kind", m.alerts)
        yield self.counter(
            "abasto_risk_evaluations", "Stockout-risk evaluations of a store×SKU.", m.evaluations
        )


class DeliveryCollector(_Collector["DeliveryMetrics"]):
    """The raw delivery's counters (``RawDelivery.metrics``)."""

    def _families(self, m: DeliveryMetrics) -> Iterable[Metric]:
        yield self.counter(
            "abasto_delivery_messages", "Stream messages handled by the raw delivery.", m.messages
        )
        yield self.counter(
            "abasto_delivery_rows_written", "Rows written to new raw Parquet files.", m.rows_written
        )
        yield self.breakdown(
            "abasto_delivery_invalid",
            "Invalid payloads left out of the raw zone, by reason.",
            "reason",
            m.invalid,
        )
        yield self.counter(
            "abasto_delivery_duplicates", "Second copies of an event inside one batch, dropped.", m.duplicates
        )
        yield self.counter(
            "abasto_delivery_duplicates_across_batches",
            "Copies of an event an earlier batch already wrote (within the dedup horizon), dropped.",
            m.duplicates_across_batches,
        )
        yield self.counter(
            "abasto_delivery_beyond_horizon",
            "Rows written whose seq was at or below their device's dedup horizon (not checked).",
            m.beyond_horizon,
        )
        yield self.counter("abasto_delivery_batches", "Batches cut and delivered.", m.batches)
        yield self.breakdown(
            "abasto_delivery_files",
            "Raw files of delivered batches: written, or skipped as already present.",
            "outcome",
            {"written": m.files_written, "skipped": m.files_skipped},
        )
        yield self.counter(
            "abasto_delivery_batches_recovered",
            "Batches completed from their manifest after a crash.",
            m.batches_recovered,
        )
        yield self.counter(
            "abasto_delivery_already_delivered_messages",
            "Messages of batches whose files were all present (acknowledged, nothing written).",
            m.already_delivered,
        )


class IngestCollector(_Collector["IngestMetrics"]):
    """The HTTP ingest gateway's counters."""

    def _families(self, m: IngestMetrics) -> Iterable[Metric]:
        yield self.breakdown(
            "abasto_ingest_requests", "Event posts answered, by HTTP status.", "code", m.requests
        )
        yield self.breakdown(
            "abasto_ingest_events",
            "Events of acknowledged batches by result (accepted, duplicate, rejected).",
            "outcome",
            {"accepted": 0, "duplicate": 0, "rejected": 0} | dict(m.events),
        )
        yield self.breakdown("abasto_ingest_rejected", "Rejected events, by reason.", "reason", m.rejected)


class RefusalCollector(_Collector["RefusalCounter"]):
    """Publishes nats-server refused (a device outside its own topic), read from the server's log."""

    def _families(self, m: RefusalCounter) -> Iterable[Metric]:
        yield self.breakdown(
            "abasto_mqtt_refused_publishes",
            "Publishes nats-server refused for permissions, by user.",
            "user",
            m.refused_publishes(),
        )


class ApiCollector(_Collector["ApiMetrics"]):
    """The SQL HTTP API's counters."""

    def _families(self, m: ApiMetrics) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "abasto_api_requests",
            "API requests answered, by route and HTTP status.",
            labels=[*self.const_labels, "route", "code"],
        )
        for (route, code), value in sorted(dict(m.requests).items()):
            requests.add_metric([*self.const_labels.values(), route, str(code)], value)
        yield requests
        yield self.breakdown(
            "abasto_api_queries", "SQL queries by outcome (ok or the error code).", "outcome", m.queries
        )
        yield self.counter(
            "abasto_api_rows_returned", "Rows sent back by completed queries.", m.rows_returned
        )
        yield self.counter("abasto_api_truncated_queries", "Queries cut at their row limit.", m.truncated)
        duration = SummaryMetricFamily(
            "abasto_api_query_duration_seconds",
            "Time to run completed queries (waiting included).",
            labels=list(self.const_labels),
        )
        duration.add_metric(list(self.const_labels.values()), m.queries_timed, m.query_seconds)
        yield duration


def registry_of(*collectors: Collector) -> CollectorRegistry:
    """A registry holding only ``collectors`` (no process or platform metrics of the library)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry
