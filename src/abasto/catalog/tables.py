"""Create, describe and list the lake's Iceberg tables.

Every table carries its governance metadata as table properties (``owner``, ``comment``,
``classification``, PII columns, source) so the catalog answers "who owns this, what is it, how
sensitive is it, where does it come from" (Glue/Lake Formation read the same keys later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table

from abasto.catalog.arrow_types import normalize_schema
from abasto.catalog.factory import ensure_namespace
from abasto.catalog.partitioning import parse_partition
from abasto.errors import InvalidInputError

__all__ = ["TableInfo", "TableMetadata", "describe_table", "ensure_table", "list_tables", "load_table"]

CLASSIFICATIONS = ("public", "internal", "confidential", "pii")


@dataclass(frozen=True)
class TableMetadata:
    """Governance metadata stored as Iceberg table properties."""

    owner: str
    description: str
    classification: str = "internal"
    pii_columns: tuple[str, ...] = ()
    source: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.classification not in CLASSIFICATIONS:
            raise InvalidInputError(
                f"classification {self.classification!r} is not one of {', '.join(CLASSIFICATIONS)}"
            )

    def as_properties(self) -> dict[str, str]:
        props = {
            "owner": self.owner,
            "comment": self.description,
            "classification": self.classification,
            "abasto.pii-columns": ",".join(self.pii_columns),
            "abasto.source": self.source,
        }
        props.update(self.extra)
        return props


@dataclass(frozen=True)
class TableInfo:
    """What ``abasto tables`` shows about one table."""

    identifier: str
    rows: int
    snapshot_id: int | None
    updated_at: datetime | None
    owner: str
    classification: str
    description: str
    metadata_location: str


def load_table(catalog: Catalog, identifier: str) -> Table | None:
    """The table, or ``None`` if it does not exist."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return None


def ensure_table(
    catalog: Catalog,
    identifier: str,
    schema: pa.Schema,
    *,
    keys: tuple[str, ...],
    partition_by: str | None = None,
    metadata: TableMetadata,
) -> Table:
    """Load ``identifier`` or create it from an Arrow schema in one atomic catalog commit.

    ``keys`` become Iceberg identifier fields (required columns); ``partition_by`` is a clause for
    :func:`~abasto.catalog.partitioning.parse_partition`. An existing table is returned unchanged.

    Raises:
        InvalidInputError: a key or the partition column is missing from ``schema``.
    """
    existing = load_table(catalog, identifier)
    if existing is not None:
        return existing
    missing = [k for k in keys if k not in schema.names]
    clause = parse_partition(partition_by) if partition_by else None
    if clause is not None and clause.column not in schema.names:
        missing.append(clause.column)
    if missing:
        raise InvalidInputError(f"{identifier}: columns {missing} (keys/partition) are not in the data")
    namespace = identifier.rsplit(".", 1)[0]
    ensure_namespace(catalog, namespace)
    arrow_schema = normalize_schema(schema, required=keys)
    try:
        tx = catalog.create_table_transaction(
            identifier, schema=arrow_schema, properties=metadata.as_properties()
        )
        if keys:
            with tx.update_schema() as update:
                update.set_identifier_fields(*keys)
        if clause is not None:
            with tx.update_spec() as spec:
                spec.add_field(clause.column, clause.transform, clause.field_name)
        tx.commit_transaction()
    except TableAlreadyExistsError:  # another job created it meanwhile
        pass
    return catalog.load_table(identifier)


def describe_table(identifier: str, table: Table) -> TableInfo:
    snap = table.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    rows = int(summary.get("total-records", "0"))
    props = table.properties
    return TableInfo(
        identifier=identifier,
        rows=rows,
        snapshot_id=snap.snapshot_id if snap else None,
        updated_at=datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=UTC) if snap else None,
        owner=props.get("owner", ""),
        classification=props.get("classification", ""),
        description=props.get("comment", ""),
        metadata_location=table.metadata_location,
    )


def list_tables(catalog: Catalog, namespace: str) -> list[TableInfo]:
    """Tables of ``namespace`` sorted by name (empty if the namespace does not exist yet)."""
    try:
        idents = catalog.list_tables(namespace)
    except NoSuchNamespaceError:
        return []
    infos = []
    for ident in sorted(idents):
        name = ".".join(ident)
        table = load_table(catalog, name)
        if table is not None:
            infos.append(describe_table(name, table))
    return infos
