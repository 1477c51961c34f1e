"""DDL of the sales database (``schema.sql``, shipped as package data) and the table order."""

from __future__ import annotations

from importlib.resources import files

from abasto.sources.pg import connect

SCHEMA = "sales"

#: every table of the schema, parents before children (load order; reverse for deletes)
TABLES: tuple[str, ...] = (
    "regions",
    "reps",
    "routes",
    "customers",
    "products",
    "assortment",
    "orders",
    "order_lines",
    "deliveries",
    "sellout_hourly",
)

#: serialises concurrent schema creation (CREATE ... IF NOT EXISTS can race)
_DDL_LOCK_KEY = 0x61_62_61_73_74_6F_01


def ddl() -> str:
    """The schema script (idempotent)."""
    return files("abasto.sources.sales_db").joinpath("schema.sql").read_text(encoding="utf-8")


def create_schema(dsn: str) -> None:
    """Create schema ``sales`` with its tables, keys and indexes if they are missing.

    Raises:
        ServiceUnavailableError: PostgreSQL cannot be reached.
    """
    with connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        conn.execute(ddl().encode())
