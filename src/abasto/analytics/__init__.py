"""Analytics over the lake: governed SQL (DuckDB over Iceberg); the warehouse marts come later."""

from abasto.analytics.access import AuditLog, Decision, authorize
from abasto.analytics.sql import SqlEngine, query

__all__ = ["AuditLog", "Decision", "SqlEngine", "authorize", "query"]
