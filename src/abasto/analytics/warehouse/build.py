"""Build the marts into a DuckDB file, incrementally (``abasto warehouse build``).

Curated data is read through the governed SQL engine as ``data_engineer`` and staged in in-memory
databases named ``curated`` and ``realtime`` beside the marts file, so each mart's SQL
(:mod:`abasto.analytics.warehouse.marts`) runs unchanged. All writes to the marts and to the
bookkeeping (:mod:`abasto.analytics.warehouse.state`) happen in one transaction.

The incremental rule:

1. Watermarks: the Iceberg snapshot id each curated source was last built from, and a fingerprint
   of the last alerts table. If no snapshot changed, no alerts table is new and every mart exists,
   the build does nothing (``skipped``).
2. Dimensions (``Refresh.SNAPSHOT``) are rebuilt whole when one of their sources' snapshot changed.
3. Hourly facts (``Refresh.DAILY``): when ``curated.sellout_hourly``'s snapshot changed, a per-UTC-day
   row count and order-independent checksum (sum of row hashes over the columns the facts read) is
   computed by the engine; only the days whose count or checksum differ from the stored ones (new
   days included) are re-read and replaced, and days that vanished are deleted.
4. ``fact_alerts`` is rebuilt when an alerts table with a new fingerprint is given.
5. Derived marts (episodes, ``dim_hour``, ``dim_date``) are recomputed from the marts file when a
   daily or alerts mart changed (a stockout run can cross days, so episodes are not cut by day).

``full=True`` rebuilds everything from the curated tables (the alerts are kept unless given).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from abasto.analytics.sql import SqlEngine
from abasto.analytics.warehouse.alerts import ALERTS_SCHEMA, conform_alerts
from abasto.analytics.warehouse.marts import MARTS, SCHEMA, SELLOUT, Mart, Refresh
from abasto.analytics.warehouse.state import (
    DayChecksums,
    ensure_state,
    load_checksums,
    load_versions,
    save_state,
)
from abasto.catalog import load_table
from abasto.errors import ConfigError, NotFoundError
from abasto.settings import Settings, load_settings

__all__ = ["PRINCIPAL", "BuildReport", "build_marts", "marts_path"]

#: the profile the build reads curated data as
PRINCIPAL = "data_engineer"
ALERTS_SOURCE = "alerts"
#: names the marts' SQL uses for its inputs; the marts file may not be called like them
_STAGES = ("curated", "realtime")
_RESERVED = frozenset({*_STAGES, SCHEMA})
_CHECKSUM_COLUMNS = "store_id, sku, hour_start, units_sold, on_hand_end, out_of_stock"


@dataclass(frozen=True)
class BuildReport:
    """What one build did. ``rebuilt``: marts written (whole or by day); ``days_reprocessed``:
    UTC days of the hourly facts re-read from curated; ``rows``: rows per mart afterwards."""

    path: Path
    skipped: bool
    full: bool
    rebuilt: tuple[str, ...]
    days_reprocessed: tuple[date, ...]
    days_removed: tuple[date, ...]
    rows: dict[str, int]
    versions: dict[str, str]
    duration_s: float


def marts_path(settings: Settings) -> Path:
    """The marts file: ``<home>/warehouse/warehouse.duckdb``."""
    return settings.home_dir / "warehouse" / "warehouse.duckdb"


def build_marts(
    settings: Settings | None = None,
    *,
    full: bool = False,
    alerts: pa.Table | None = None,
    path: Path | None = None,
    engine: SqlEngine | None = None,
) -> BuildReport:
    """Bring the marts file up to date with the curated tables (and ``alerts``, if given).

    Raises:
        NotFoundError: a curated table the marts need does not exist yet.
        InvalidInputError: ``alerts`` lacks columns of :data:`ALERTS_SCHEMA` or has wrong types.
        ConfigError: ``path`` is named like one of the SQL's schemas.
    """
    settings = settings or load_settings()
    path = path or marts_path(settings)
    if path.stem in _RESERVED:
        raise ConfigError(f"the marts file may not be called {path.name!r} (clashes with a schema name)")
    started = time.perf_counter()
    own = engine is None
    if engine is None:
        from abasto.bootstrap import Platform  # noqa: PLC0415

        engine = Platform(settings).sql()
    try:
        conformed = conform_alerts(alerts) if alerts is not None else None
        builder = _Builder(engine, path, full=full, alerts=conformed)
        return builder.run(started)
    finally:
        if own:
            engine.close()


@dataclass
class _Plan:
    marts: set[str] = field(default_factory=set)
    #: None: the daily facts are rebuilt whole
    days: list[date] | None = None
    removed: list[date] = field(default_factory=list)
    checksums: DayChecksums = field(default_factory=dict)


class _Builder:
    def __init__(self, engine: SqlEngine, path: Path, *, full: bool, alerts: pa.Table | None) -> None:
        self.engine = engine
        self.path = path
        self.full = full
        self.alerts = alerts

    def run(self, started: float) -> BuildReport:
        versions = self._current_versions()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path))
        try:
            con.execute("SET TimeZone = 'UTC'")
            ensure_state(con)
            old = load_versions(con)
            existing = _existing_marts(con)
            plan = self._plan(con, versions, old, existing)
            if ALERTS_SOURCE not in versions and ALERTS_SOURCE in old:
                versions[ALERTS_SOURCE] = old[ALERTS_SOURCE]
            if plan.marts:
                self._stage(con, plan)
                self._write(con, plan, versions)
            elif versions != old:
                self._write(con, plan, versions)  # snapshots moved without changing any mart
            rows = {m.name: _count(con, m) for m in MARTS}
        finally:
            con.close()
        return BuildReport(
            path=self.path,
            skipped=not plan.marts,
            full=self.full,
            rebuilt=tuple(m.name for m in MARTS if m.name in plan.marts),
            days_reprocessed=tuple(_reprocessed(plan)),
            days_removed=tuple(plan.removed),
            rows=rows,
            versions=versions,
            duration_s=time.perf_counter() - started,
        )

    # --- planning -----------------------------------------------------------------------------------
    def _current_versions(self) -> dict[str, str]:
        sources = sorted({s for m in MARTS for s in m.sources})
        versions: dict[str, str] = {}
        for name in sources:
            table = load_table(self.engine.catalog, f"curated.{name}")
            if table is None:
                raise NotFoundError(f"curated.{name} does not exist", hint="run `abasto jobs run` first")
            snap = table.current_snapshot()
            versions[name] = str(snap.snapshot_id) if snap else "none"
        if self.alerts is not None:
            versions[ALERTS_SOURCE] = _fingerprint(self.alerts)
        return versions

    def _plan(
        self, con: duckdb.DuckDBPyConnection, now: dict[str, str], old: dict[str, str], existing: set[str]
    ) -> _Plan:
        plan = _Plan(checksums=load_checksums(con))
        for mart in MARTS:
            missing = mart.name not in existing
            if (
                mart.refresh is Refresh.SNAPSHOT
                and (self.full or missing or any(now[s] != old.get(s) for s in mart.sources))
            ) or (
                mart.refresh is Refresh.ALERTS
                and (missing or (ALERTS_SOURCE in now and now[ALERTS_SOURCE] != old.get(ALERTS_SOURCE)))
            ):
                plan.marts.add(mart.name)
        daily = [m for m in MARTS if m.refresh is Refresh.DAILY]
        if self.full or any(m.name not in existing for m in daily):
            plan.checksums, plan.days = self._day_checksums(), None
            plan.marts.update(m.name for m in daily)
        elif now[SELLOUT] != old.get(SELLOUT):
            current = self._day_checksums()
            plan.days = sorted(d for d, c in current.items() if plan.checksums.get(d) != c)
            plan.removed = sorted(set(plan.checksums) - set(current))
            plan.checksums = current
            if plan.days or plan.removed:
                plan.marts.update(m.name for m in daily)
        feeds = {m.name for m in MARTS if m.refresh in (Refresh.DAILY, Refresh.ALERTS)}
        derived = [m for m in MARTS if m.refresh is Refresh.DERIVED]
        if plan.marts & feeds or any(m.name not in existing for m in derived):
            plan.marts.update(m.name for m in derived)
        return plan

    def _day_checksums(self) -> DayChecksums:
        result = self.engine.query(
            f"SELECT CAST(hour_start AS DATE) AS day, count(*) AS n, "
            f"CAST(sum(hash({_CHECKSUM_COLUMNS})) AS VARCHAR) AS checksum "
            f"FROM curated.{SELLOUT} GROUP BY 1",
            principal=PRINCIPAL,
        )
        return {
            d: (int(n), str(c))
            for d, n, c in zip(
                result["day"].to_pylist(),
                result["n"].to_pylist(),
                result["checksum"].to_pylist(),
                strict=True,
            )
        }

    # --- staging and writing ------------------------------------------------------------------------
    def _stage(self, con: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
        for stage in _STAGES:
            con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {stage}")
        needed = {s for m in MARTS if m.name in plan.marts for s in m.sources}
        for name in sorted(needed):
            sql = f"SELECT * FROM curated.{name}"
            if name == SELLOUT and plan.days is not None:
                sql += f" WHERE {_day_filter('hour_start', plan.days)}"
            _load(con, f"curated.{name}", self.engine.query(sql, principal=PRINCIPAL))
        alerts = self.alerts if self.alerts is not None else ALERTS_SCHEMA.empty_table()
        _load(con, "realtime.alerts", alerts)

    def _write(self, con: duckdb.DuckDBPyConnection, plan: _Plan, versions: dict[str, str]) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            for mart in MARTS:
                if mart.name not in plan.marts:
                    continue
                if mart.refresh is Refresh.DAILY and plan.days is not None:
                    _replace_days(con, mart, sorted({*plan.days, *plan.removed}))
                else:
                    con.execute(f"CREATE OR REPLACE TABLE {mart.identifier} AS {mart.sql()}")
            save_state(con, versions, plan.checksums)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _reprocessed(plan: _Plan) -> list[date]:
    daily = any(m.refresh is Refresh.DAILY and m.name in plan.marts for m in MARTS)
    if not daily:
        return []
    return plan.days if plan.days is not None else sorted(plan.checksums)


def _replace_days(con: duckdb.DuckDBPyConnection, mart: Mart, days: list[date]) -> None:
    if not days:
        return
    con.execute(f"DELETE FROM {mart.identifier} WHERE {_day_filter('hour_key', days)}")
    con.execute(f"INSERT INTO {mart.identifier} BY NAME {mart.sql()}")


def _day_filter(column: str, days: list[date]) -> str:
    """``column`` (a UTC timestamp) falls on one of ``days`` (as ranges, so partitions prune)."""
    ranges = [
        f"({column} >= TIMESTAMPTZ '{d.isoformat()} 00:00:00+00' "
        f"AND {column} < TIMESTAMPTZ '{(d + timedelta(days=1)).isoformat()} 00:00:00+00')"
        for d in days
    ]
    return "(" + " OR ".join(ranges) + ")" if ranges else "FALSE"


def _load(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register("_abasto_stage", table)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _abasto_stage")
    finally:
        con.unregister("_abasto_stage")


def _existing_marts(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database()",
        [SCHEMA],
    ).fetchall()
    return {str(r[0]) for r in rows}


def _count(con: duckdb.DuckDBPyConnection, mart: Mart) -> int:
    if mart.name not in _existing_marts(con):
        return 0
    row = con.execute(f"SELECT count(*) FROM {mart.identifier}").fetchone()
    return int(row[0]) if row else 0


def _fingerprint(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:32]
