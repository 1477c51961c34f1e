"""Monitoring: Prometheus exposition of the live counters of abasto's running components."""

from abasto.observability.exporter import serve_metrics
from abasto.observability.prometheus import (
    ApiCollector,
    DeliveryCollector,
    IngestCollector,
    ProcessorCollector,
    RefusalCollector,
    registry_of,
)

__all__ = [
    "ApiCollector",
    "DeliveryCollector",
    "IngestCollector",
    "ProcessorCollector",
    "RefusalCollector",
    "registry_of",
    "serve_metrics",
]
