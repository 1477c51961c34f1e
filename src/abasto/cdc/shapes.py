"""Relation messages → typed table shapes, and tuple data → row images (text values, typed when written)."""

from __future__ import annotations

from typing import Any

import psycopg

from abasto.cdc.change_files import TableShape
from abasto.cdc.pgoutput import UNCHANGED, DecodeError, Relation, Tuple
from abasto.cdc.pgtypes import CatalogLookup, CatalogType, column_type
from abasto.errors import TerminalError


def catalog_lookup(conn: psycopg.Connection[Any]) -> CatalogLookup:
    """Resolve non-built-in types (domains, arrays of them, enums) through ``pg_type``, cached."""
    cache: dict[int, CatalogType | None] = {}

    def lookup(oid: int) -> CatalogType | None:
        if oid not in cache:
            row = conn.execute(
                "SELECT typtype, typbasetype, CASE WHEN typcategory = 'A' THEN typelem ELSE 0 END, typtypmod "
                "FROM pg_type WHERE oid = %s",
                (oid,),
            ).fetchone()
            cache[oid] = (
                None
                if row is None
                else CatalogType(
                    oid=oid,
                    typtype=row[0],
                    base_oid=int(row[1]),
                    element_oid=int(row[2]),
                    base_modifier=int(row[3]),
                )
            )
        return cache[oid]

    return lookup


class ShapeCatalog:
    """The table shape of every relation id seen in the stream (the latest Relation message wins)."""

    def __init__(self, lookup: CatalogLookup | None = None) -> None:
        self._lookup = lookup
        self._shapes: dict[int, TableShape] = {}

    def on_relation(self, rel: Relation) -> TableShape:
        signature = tuple((c.name, c.type_oid, c.type_modifier) for c in rel.columns)
        current = self._shapes.get(rel.relation_id)
        same_table = current is not None and (current.schema, current.table) == (rel.namespace, rel.name)
        if current is not None and same_table and current.signature == signature:
            return current
        shape = TableShape(
            schema=rel.namespace,
            table=rel.name,
            columns=tuple(c.name for c in rel.columns),
            types=tuple(column_type(c.type_oid, c.type_modifier, self._lookup) for c in rel.columns),
            signature=signature,
        )
        self._shapes[rel.relation_id] = shape
        return shape

    def shape(self, relation_id: int) -> TableShape:
        """Raises:
        DecodeError: no Relation message announced this relation id.
        """
        try:
            return self._shapes[relation_id]
        except KeyError:
            raise DecodeError(f"change for relation {relation_id} before its Relation message") from None


def text_image(shape: TableShape, values: Tuple, *, old: Tuple | None = None) -> Tuple:
    """Row image of ``values`` as sent (text ``bytes`` or None, typed later when written); unchanged
    TOASTed values are taken from ``old`` (the old row).

    Raises:
        TerminalError: an unchanged TOASTed value with no old row to take it from (the table needs
            REPLICA IDENTITY FULL).
        DecodeError: the column count differs from the table's.
    """
    if len(values) != len(shape.columns):
        raise DecodeError(f"{shape.qualified}: {len(values)} values for {len(shape.columns)} columns")
    if UNCHANGED not in values:
        return values
    filled = list(values)
    for index, value in enumerate(values):
        if value is UNCHANGED:
            kept = old[index] if old is not None and len(old) == len(values) else None
            if not isinstance(kept, bytes):  # no old row, only its key, or nothing usable in it
                raise TerminalError(
                    f"{shape.qualified}.{shape.columns[index]}: an UPDATE left a large (TOASTed) value "
                    "unchanged and the change carries no copy of it",
                    hint=f"ALTER TABLE {shape.qualified} REPLICA IDENTITY FULL",
                )
            filled[index] = kept
    return tuple(filled)


def text_key_image(shape: TableShape, values: Tuple) -> Tuple:
    """Text image of a delete's old key/row: the columns it carries, nulls elsewhere."""
    if UNCHANGED in values:
        values = tuple(None if v is UNCHANGED else v for v in values)
    return text_image(shape, values)
