"""The lake's catalog: Iceberg tables with their schema, partitioning and governance metadata."""

from abasto.catalog.factory import CURATED, MARTS, ZONES, ensure_namespace, open_catalog
from abasto.catalog.partitioning import PartitionClause, covering_filter, parse_partition
from abasto.catalog.tables import (
    TableInfo,
    TableMetadata,
    describe_table,
    ensure_table,
    list_tables,
    load_table,
)

__all__ = [
    "CURATED",
    "MARTS",
    "ZONES",
    "PartitionClause",
    "TableInfo",
    "TableMetadata",
    "covering_filter",
    "describe_table",
    "ensure_namespace",
    "ensure_table",
    "list_tables",
    "load_table",
    "open_catalog",
    "parse_partition",
]
