"""Counters of the HTTP API (exposed at ``/metrics`` by :mod:`abasto.observability.prometheus`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ApiMetrics"]


@dataclass
class ApiMetrics:
    #: answered requests by (route template, HTTP status)
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: queries by outcome: ok, or the error code of the answer (invalid_request, access_denied…)
    queries: Counter[str] = field(default_factory=Counter)
    #: rows sent back (after the row limit)
    rows_returned: int = 0
    #: queries cut at the row limit
    truncated: int = 0
    #: seconds spent running queries that completed, and how many
    query_seconds: float = 0.0
    queries_timed: int = 0

    def record_query(
        self, outcome: str, *, rows: int = 0, truncated: bool = False, seconds: float = 0.0
    ) -> None:
        self.queries[outcome] += 1
        if outcome == "ok":
            self.rows_returned += rows
            self.truncated += int(truncated)
            self.query_seconds += seconds
            self.queries_timed += 1
