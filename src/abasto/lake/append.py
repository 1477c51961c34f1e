"""Append Arrow rows to an Iceberg table inside a transaction, as ``Transaction.append`` does,
without pyiceberg's partition split when every row lies in one partition.

pyiceberg 0.12 splits an appended table by partition with one ``filter`` per partition value
followed by ``combine_chunks`` (two full copies of the data); a batch of one partition (a full
load of one day, device events appended by time) is written as is instead. The files written,
their statistics and the snapshot (summary properties included) are those of
``Transaction.append``: the same writer (:func:`pyiceberg.io.pyarrow.write_file`), tasks and
snapshot producer. Any other batch, and any batch under :data:`MIN_ROWS` (where the copies saved
are negligible), goes through ``Transaction.append`` unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import (
    DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE,
    TableProperties,
    Transaction,
    WriteTask,
)
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.utils.config import Config
from pyiceberg.utils.properties import property_as_bool, property_as_int

__all__ = ["MIN_ROWS", "append_rows"]

#: smallest batch written without pyiceberg's partition split
MIN_ROWS = 100_000


def append_rows(tx: Transaction, io: FileIO, rows: pa.Table, snapshot_properties: dict[str, str]) -> None:
    """``tx.append(rows, snapshot_properties=…)``; ``io`` is the table's file IO."""
    metadata = tx.table_metadata
    key = _single_partition(metadata, rows) if rows.num_rows >= max(MIN_ROWS, 1) else None
    if key is None:
        tx.append(rows, snapshot_properties=snapshot_properties)
        return
    downcast = Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False
    _check_pyarrow_schema_compatible(
        metadata.schema(),
        provided_schema=rows.schema,
        downcast_ns_timestamp_to_us=downcast,
        format_version=metadata.format_version,
    )
    target_size = (
        property_as_int(
            metadata.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        or TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT
    )
    task_schema = pyarrow_to_schema(
        rows.schema,
        name_mapping=metadata.schema().name_mapping,
        downcast_ns_timestamp_to_us=downcast,
        format_version=metadata.format_version,
    )
    merge = property_as_bool(
        metadata.properties,
        TableProperties.MANIFEST_MERGE_ENABLED,
        TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
    )
    update = tx.update_snapshot(snapshot_properties=snapshot_properties)
    with update.merge_append() if merge else update.fast_append() as append_files:
        counter = itertools.count(0)
        tasks = (
            WriteTask(
                write_uuid=append_files.commit_uuid,
                task_id=next(counter),
                record_batches=batches,
                partition_key=key,
                schema=task_schema,
            )
            for batches in bin_pack_arrow_table(rows, target_size)
        )
        for data_file in write_file(io=io, table_metadata=metadata, tasks=tasks):
            append_files.append_data_file(data_file)


def _single_partition(metadata: TableMetadata, rows: pa.Table) -> PartitionKey | None:
    """The partition of every row of ``rows`` if they share one; ``None`` if they do not, or the
    table is unpartitioned, or a partition source is not a top-level column."""
    spec = metadata.spec()
    if spec.is_unpartitioned():
        return None
    schema = metadata.schema()
    values: list[PartitionFieldValue] = []
    for field in spec.fields:
        name = schema.find_column_name(field.source_id)
        if name is None or name not in rows.column_names:
            return None
        transform: Any = field.transform.pyarrow_transform(schema.find_field(field.source_id).field_type)
        transformed = transform(rows[name])
        if pc.count_distinct(transformed, mode="all").as_py() != 1:
            return None
        values.append(PartitionFieldValue(field=field, value=transformed[0].as_py()))
    return PartitionKey(field_values=values, partition_spec=spec, schema=schema)
