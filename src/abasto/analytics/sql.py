"""Governed SQL over the lake (the Athena of the seed): DuckDB reading the catalog's Iceberg tables.

Every catalog table is a view ``<zone>.<table>`` over ``iceberg_scan('<metadata json>')``, so users
write ``SELECT … FROM curated.sellout_hourly``. Each query is checked (one read-only statement, see
:mod:`abasto.analytics.statements`), authorized for the endpoint and for every table it reads
(:func:`abasto.analytics.access.authorize`), audited, then run; the result is an Arrow table.
Views follow the catalog: a commit becomes visible to the next query.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError

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
        self._con.close()

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
        with self._lock:
            self._refresh_views()
            resources = list(analysed.tables)
            decisions = [authorize(principal, "query", "sql")]
            decisions += [authorize(principal, "read", r) for r in resources]
            self.audit.append("sql.query", decisions, sql=sql, snapshot_id=snapshot_id)
            denied = [d.reason for d in decisions if not d.allowed]
            if denied:
                raise AccessDeniedError("; ".join(denied))
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

    def views(self) -> dict[str, str]:
        """``zone.table`` → Iceberg metadata location of every view (refreshed from the catalog)."""
        with self._lock:
            self._refresh_views()
            return dict(self._views)

    # --- internals ------------------------------------------------------------------------------
    def _refresh_views(self) -> None:
        current: dict[str, str] = {}
        for zone in ZONES:
            try:
                idents = self.catalog.list_tables(zone)
            except NoSuchNamespaceError:
                continue
            for ident in idents:
                name = ".".join(ident)
                table = load_table(self.catalog, name)
                if table is not None:
                    current[name] = table.metadata_location
        for name in set(self._views) - set(current):
            self._con.execute(f"DROP VIEW IF EXISTS {_qualified(name)}")
        for name, location in current.items():
            if self._views.get(name) != location:
                self._create_view(name, location)
        self._views = current

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
