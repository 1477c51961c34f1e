"""Governed SQL over the lake (the Athena of the seed): DuckDB reading the catalog's Iceberg tables.

Every catalog table is a view ``<zone>.<table>`` over ``iceberg_scan('<metadata json>')``, so users
write ``SELECT … FROM curated.sellout_hourly``. Each query is checked (one read-only statement, see
:mod:`abasto.analytics.statements`), authorized for the endpoint and for every table it reads
(:func:`abasto.analytics.access.authorize`), audited, then run; the result is an Arrow table.
Views follow the catalog: a commit becomes visible to the next query.

Keeping views fresh is cheap: before a query runs, only the catalog tables it names are looked up,
and only their *metadata location* (for pyiceberg's ``SqlCatalog``, one indexed ``SELECT`` on its
``iceberg_tables``, no metadata JSON parsed); a view is recreated only when that location moved
(a commit), created when a table appears, dropped when it is gone. Statements that name no table
(``SHOW TABLES``, ``SELECT 1``…) reconcile every view with one listing of the same kind.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import NoSuchNamespaceError
from sqlalchemy import bindparam, func, select
from sqlalchemy.sql.compiler import SQLCompiler

from abasto.analytics.access import AuditLog, Decision, authorize
from abasto.analytics.duckdb_env import connect, lock_down
from abasto.analytics.statements import analyse
from abasto.catalog import ZONES, load_table, open_catalog
from abasto.errors import AbastoError, AccessDeniedError, ConfigError, InvalidInputError, NotFoundError
from abasto.settings import Settings, load_settings

__all__ = ["SqlEngine", "audit_log_path", "query"]


def audit_log_path(settings: Settings) -> Path:
    """Where SQL requests are audited (JSON Lines)."""
    return settings.home_dir / "audit" / "sql.jsonl"


class SqlEngine:
    """One DuckDB connection serving governed queries; thread-safe (queries run one at a time)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        catalog: Catalog | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.catalog = catalog or open_catalog(self.settings)
        self.audit = audit or AuditLog(audit_log_path(self.settings))
        warehouse = _local_dir(self.settings.warehouse_uri)
        self._views: dict[str, str] = {}
        self._lookup: _SqlCatalogLookup | None = None
        self._lock = threading.Lock()
        self._con = connect()
        for zone in ZONES:
            self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{zone}"')
        lock_down(self._con, [str(warehouse)])

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection and the audit file (the log reopens it if used again)."""
        self._con.close()
        self.audit.close()
        if self._lookup is not None:
            self._lookup.close()

    def query(self, sql: str, *, principal: str, snapshot_id: int | None = None) -> pa.Table:
        """Run one read-only statement as ``principal`` (a profile).

        ``snapshot_id`` time-travels the one catalog table the query reads to that Iceberg snapshot.

        Raises:
            AccessDeniedError: the statement is not read-only, or the profile may not read a table.
            InvalidInputError: the SQL is malformed or fails (unknown table or column…).
            NotFoundError: ``snapshot_id`` is not a snapshot of the table.
        """
        try:
            analysed = analyse(sql)
        except AbastoError as exc:
            refused = Decision(principal, "query", "sql", False, str(exc))
            self.audit.append("sql.refused", [refused], sql=sql)
            raise
        resources = list(analysed.tables)
        decisions = [authorize(principal, "query", "sql")]
        decisions += [authorize(principal, "read", r) for r in resources]
        self.audit.append("sql.query", decisions, sql=sql, snapshot_id=snapshot_id)
        denied = [d.reason for d in decisions if not d.allowed]
        if denied:
            raise AccessDeniedError("; ".join(denied))
        with self._lock:
            self._refresh_views(resources or None)
            travelled = self._time_travel(resources, snapshot_id) if snapshot_id is not None else None
            try:
                result = self._con.execute(sql).to_arrow_table()
            except duckdb.PermissionException as exc:
                raise AccessDeniedError(f"query refused by the sandbox: {exc}") from exc
            except duckdb.Error as exc:
                raise InvalidInputError(f"query failed: {exc}") from exc
            finally:
                if travelled is not None:
                    self._create_view(travelled, self._views[travelled])
        return result

    def interrupt(self) -> None:
        """Abort the statement running now (call from another thread; it fails with "Interrupted").

        Used by the HTTP API to enforce its per-query timeout; the connection stays usable.
        """
        self._con.interrupt()

    def views(self) -> dict[str, str]:
        """``zone.table`` → Iceberg metadata location of every view (refreshed from the catalog)."""
        with self._lock:
            self._refresh_views()
            return dict(self._views)

    # --- internals ------------------------------------------------------------------------------
    def _refresh_views(self, referenced: Collection[str] | None = None) -> None:
        """Bring views in line with the catalog: those ``referenced`` (``zone.table``), or all."""
        if referenced is None:
            current = self._locations(None)
            stale = set(self._views) - set(current)
        else:
            wanted = {r for r in referenced if _zone_table(r) is not None}
            if not wanted:
                return
            current = self._locations(wanted)
            missing = {r.lower() for r in wanted} - {n.lower() for n in current}
            stale = {n for n in self._views if n.lower() in missing}
        for name in stale:
            self._con.execute(f"DROP VIEW IF EXISTS {_qualified(name)}")
            del self._views[name]
        for name, location in current.items():
            if self._views.get(name) != location:
                self._create_view(name, location)
                self._views[name] = location

    def _locations(self, wanted: Collection[str] | None) -> dict[str, str]:
        """Catalog name → current metadata location of the ``wanted`` tables, or of every table.

        Names match case-insensitively, as DuckDB resolves them. On a :class:`SqlCatalog` this is
        one indexed row read of its ``iceberg_tables`` per table; other catalogs load each wanted
        table (pyiceberg has no cheaper portable lookup) and list the zones only for a name they miss.
        """
        if isinstance(self.catalog, SqlCatalog):
            if self._lookup is None:
                self._lookup = _SqlCatalogLookup(self.catalog)
            return self._lookup.locations(wanted)
        names = sorted(wanted) if wanted is not None else []
        current = self._load_locations(names)
        missing = {n.lower() for n in names} - {n.lower() for n in current}
        if wanted is None or missing:
            listed: list[str] = []
            for zone in ZONES:
                try:
                    listed += [".".join(ident) for ident in self.catalog.list_tables(zone)]
                except NoSuchNamespaceError:
                    continue
            current |= self._load_locations([n for n in listed if wanted is None or n.lower() in missing])
        return current

    def _load_locations(self, names: list[str]) -> dict[str, str]:
        current: dict[str, str] = {}
        for name in names:
            table = load_table(self.catalog, name)
            if table is not None:
                current[".".join(table.name())] = table.metadata_location
        return current

    def _create_view(self, name: str, location: str, snapshot_id: int | None = None) -> None:
        args = f"'{_sql_string(location)}'"
        if snapshot_id is not None:
            args += f", snapshot_from_id={int(snapshot_id)}"
        self._con.execute(f"CREATE OR REPLACE VIEW {_qualified(name)} AS SELECT * FROM iceberg_scan({args})")

    def _time_travel(self, resources: list[str], snapshot_id: int) -> str:
        tables = [r for r in resources if r in self._views]
        if len(tables) != 1:
            raise InvalidInputError(
                f"time travel needs a query over exactly one table (got {tables or 'none'})"
            )
        name = tables[0]
        table = load_table(self.catalog, name)
        if table is None or table.snapshot_by_id(snapshot_id) is None:
            raise NotFoundError(f"{name} has no snapshot {snapshot_id}", hint="see `abasto tables`")
        self._create_view(name, self._views[name], snapshot_id)
        return name


def query(
    sql: str, *, principal: str, snapshot_id: int | None = None, settings: Settings | None = None
) -> pa.Table:
    """Run one governed read-only query (see :meth:`SqlEngine.query`) on a short-lived engine."""
    with SqlEngine(settings) as engine:
        return engine.query(sql, principal=principal, snapshot_id=snapshot_id)


def _zone_table(name: str) -> tuple[str, str] | None:
    """``(zone, table)`` of a catalog view name, or ``None`` if it names no view."""
    zone, dot, table = name.partition(".")
    return (zone, table) if dot and table and "." not in table and zone in ZONES else None


class _SqlCatalogLookup:
    """Metadata locations straight from a :class:`SqlCatalog`'s ``iceberg_tables`` (nothing parsed).

    Two statements compiled once for the catalog's database (by ``zone.table``, by zone) run on one
    DBAPI connection kept from the catalog's engine; each lookup ends its read transaction, so it
    always sees the latest commit. Table names match case-insensitively, as DuckDB resolves them.
    Used under the engine's lock only.
    """

    def __init__(self, catalog: SqlCatalog) -> None:
        cols = IcebergTables
        base = select(cols.table_namespace, cols.table_name, cols.metadata_location).where(
            cols.catalog_name == catalog.name, cols.metadata_location.is_not(None)
        )
        if (type_filter := catalog._iceberg_type_filter()) is not None:  # skip other engines' views
            base = base.where(type_filter)
        by_zone = base.where(cols.table_namespace == bindparam("zone"))
        by_name = by_zone.where(func.lower(cols.table_name) == bindparam("table"))
        self._engine = catalog.engine
        self._by_zone = by_zone.compile(dialect=self._engine.dialect)
        self._by_name = by_name.compile(dialect=self._engine.dialect)
        self._dbapi: Any = None

    def locations(self, wanted: Collection[str] | None) -> dict[str, str]:
        """``zone.table`` → metadata location, for the ``wanted`` names or every table of the zones."""
        if wanted is None:
            runs = [(self._by_zone, {"zone": zone}) for zone in ZONES]
        else:
            pairs = {zt for zt in map(_zone_table, wanted) if zt is not None}
            runs = [(self._by_name, {"zone": z, "table": t.lower()}) for z, t in sorted(pairs)]
        try:
            rows = self._fetch(runs)
        except self._engine.dialect.loaded_dbapi.Error:  # a broken connection: retry on a fresh one
            self.close()
            rows = self._fetch(runs)
        return {f"{zone}.{table}": str(location) for zone, table, location in rows}

    def close(self) -> None:
        if self._dbapi is not None:
            with contextlib.suppress(Exception):
                self._dbapi.close()
            self._dbapi = None

    def _fetch(self, runs: list[tuple[SQLCompiler, dict[str, str]]]) -> list[Any]:
        if self._dbapi is None:
            self._dbapi = self._engine.raw_connection()
        rows: list[Any] = []
        cursor = self._dbapi.cursor()
        try:
            for compiled, values in runs:
                params = compiled.construct_params(values)
                if compiled.positiontup is not None:
                    cursor.execute(compiled.string, tuple(params[k] for k in compiled.positiontup))
                else:
                    cursor.execute(compiled.string, params)
                rows += cursor.fetchall()
        finally:
            cursor.close()
            self._dbapi.rollback()  # end the read transaction (a no-op on SQLite outside one)
        return rows


def _local_dir(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ConfigError(
            f"the embedded SQL engine reads a local warehouse, not {uri!r}",
            hint="at scale, query the same tables with Athena",
        )
    path = Path(unquote(parsed.path) if parsed.scheme else uri)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _qualified(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
