"""``GET /v1/tables`` and ``GET /v1/tables/{name}``: what the caller may read, and how to time-travel it.

Both go through the governance seam (:func:`abasto.analytics.access.authorize`, ``read`` on
``<zone>.<table>``) and land in the same audit log as queries. A table the profile may not read is
left out of the listing, and describing it is refused (403) before its existence is checked, so a
profile learns nothing about zones it may not read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.analytics.access import AuditLog, authorize
from abasto.catalog import ZONES, list_tables, load_table
from abasto.catalog.tables import describe_table
from abasto.errors import AccessDeniedError, NotFoundError

__all__ = ["describe", "readable_tables"]


def readable_tables(catalog: Catalog, profile: str, audit: AuditLog) -> list[dict[str, Any]]:
    """The catalog tables ``profile`` may read, with their current snapshot."""
    decisions = [authorize(profile, "read", f"{zone}.*") for zone in ZONES]
    audit.append("api.tables", decisions)
    tables: list[dict[str, Any]] = []
    for zone, decision in zip(ZONES, decisions, strict=True):
        if not decision.allowed:
            continue
        for info in list_tables(catalog, zone):
            tables.append(
                {
                    "name": info.identifier,
                    "rows": info.rows,
                    "snapshot_id": info.snapshot_id,
                    "updated_at": info.updated_at,
                    "owner": info.owner,
                    "classification": info.classification,
                    "description": info.description,
                }
            )
    return tables


def describe(catalog: Catalog, name: str, profile: str, audit: AuditLog) -> dict[str, Any]:
    """Schema, partitioning and snapshots (for time travel) of one table ``profile`` may read."""
    decision = authorize(profile, "read", name)
    audit.append("api.table", [decision], table=name)
    if not decision.allowed:
        raise AccessDeniedError(decision.reason, hint="GET /v1/tables lists the tables you may read")
    table = load_table(catalog, name) if name.partition(".")[0] in ZONES else None
    if table is None:
        raise NotFoundError(f"no catalog table {name!r}", hint="GET /v1/tables lists the tables you may read")
    info = describe_table(name, table)
    return {
        "name": name,
        "rows": info.rows,
        "owner": info.owner,
        "classification": info.classification,
        "description": info.description,
        "current_snapshot_id": info.snapshot_id,
        "columns": [
            {
                "id": f.field_id,
                "name": f.name,
                "type": str(f.field_type),
                "required": f.required,
                "doc": f.doc,
            }
            for f in table.schema().fields
        ],
        "partitioning": [
            {"source_id": p.source_id, "name": p.name, "transform": str(p.transform)}
            for p in table.spec().fields
        ],
        "snapshots": _snapshots(table),
    }


def _snapshots(table: Table) -> list[dict[str, Any]]:
    out = []
    for snap in table.metadata.snapshots:
        summary = snap.summary
        out.append(
            {
                "snapshot_id": snap.snapshot_id,
                "parent_snapshot_id": snap.parent_snapshot_id,
                "committed_at": datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=UTC),
                "operation": str(summary.operation.value) if summary is not None else None,
                "summary": dict(summary.additional_properties) if summary is not None else {},
            }
        )
    return out
