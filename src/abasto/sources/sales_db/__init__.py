"""The sales database of gaseosas SA (the seed's Amazon RDS): schema ``sales`` in PostgreSQL."""

from __future__ import annotations

from abasto.sources.sales_db.load import load_world
from abasto.sources.sales_db.schema import SCHEMA, TABLES, create_schema

__all__ = ["SCHEMA", "TABLES", "create_schema", "load_world"]
