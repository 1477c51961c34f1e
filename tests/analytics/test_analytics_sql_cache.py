"""The cheap per-query path of SqlEngine: views refreshed only when the catalog moved, cached checks,
an audit file kept open — with freshness and governance unchanged."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from abasto.analytics import AuditLog, SqlEngine
from abasto.analytics.statements import analyse
from abasto.catalog import TableMetadata, ensure_table, open_catalog
from abasto.errors import AccessDeniedError, InvalidInputError
from abasto.settings import Settings, load_settings

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("qty", pa.int64())])


def rows(start: int, n: int) -> pa.Table:
    return pa.table({"id": list(range(start, start + n)), "qty": [1] * n}, schema=SCHEMA)


def make_table(catalog: Catalog, identifier: str, n: int) -> Table:
    table = ensure_table(
        catalog, identifier, SCHEMA, keys=("id",), metadata=TableMetadata(owner="t", description="t")
    )
    table.append(rows(0, n))
    return table


def count(engine: SqlEngine, table: str) -> int:
    return int(engine.query(f"SELECT count(*) AS n FROM {table}", principal="analyst")["n"][0].as_py())


class Spy:
    """Counts catalog calls (``load_table``, ``list_tables``) and view (re)creations of an engine."""

    def __init__(self, engine: SqlEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.created: list[str] = []
        for method in ("load_table", "list_tables"):
            original = getattr(engine.catalog, method)
            monkeypatch.setattr(engine.catalog, method, self._counting(method, original))
        create = engine._create_view

        def created(name: str, location: str, snapshot_id: int | None = None) -> None:
            self.created.append(name)
            create(name, location, snapshot_id)

        monkeypatch.setattr(engine, "_create_view", created)

    def _counting(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def catalog(settings: Settings) -> SqlCatalog:
    catalog = open_catalog(settings)
    make_table(catalog, "curated.orders", 10)
    make_table(catalog, "curated.stock", 5)
    return catalog


@pytest.fixture
def engine(settings: Settings, catalog: SqlCatalog, tmp_path: Path) -> Iterator[SqlEngine]:
    with SqlEngine(settings, catalog=catalog, audit=AuditLog(tmp_path / "audit.jsonl")) as eng:
        yield eng


def test_a_commit_is_seen_by_the_next_query_of_the_same_engine(settings: Settings, engine: SqlEngine) -> None:
    assert count(engine, "curated.orders") == 10
    writer = open_catalog(settings)  # another writer, as a curate job in another process would be
    writer.load_table("curated.orders").append(rows(10, 7))
    assert count(engine, "curated.orders") == 17
    writer.load_table("curated.orders").delete("id < 5")
    assert count(engine, "curated.orders") == 12


def test_tables_created_or_dropped_after_the_engine_started_follow_the_catalog(
    settings: Settings, engine: SqlEngine
) -> None:
    assert "curated.late" not in engine.views()
    writer = open_catalog(settings)
    make_table(writer, "curated.late", 3)
    assert count(engine, "curated.late") == 3
    make_table(writer, "curated.later", 1)  # statements naming no table reconcile every view
    listed = engine.query("SHOW ALL TABLES", principal="analyst").select(["schema", "name"]).to_pylist()
    assert {"schema": "curated", "name": "later"} in listed
    writer.drop_table("curated.late")
    with pytest.raises(InvalidInputError, match="late"):
        count(engine, "curated.late")
    assert "curated.late" not in engine.views()


def test_an_unchanged_table_is_not_reloaded(
    settings: Settings, engine: SqlEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert count(engine, "curated.orders") == 10  # first query creates the view
    spy = Spy(engine, monkeypatch)
    for _ in range(5):
        assert count(engine, "curated.orders") == 10
    assert spy.calls == Counter()  # no pyiceberg load/list: one row lookup in iceberg_tables
    assert spy.created == []

    # a commit to another table does not touch this query's view (nor load anything)
    open_catalog(settings).load_table("curated.stock").append(rows(5, 1))
    assert count(engine, "curated.orders") == 10
    assert spy.created == []

    # a commit to the table it reads recreates exactly that view, once
    open_catalog(settings).load_table("curated.orders").append(rows(10, 1))
    assert count(engine, "curated.orders") == 11
    assert count(engine, "curated.orders") == 11
    assert spy.created == ["curated.orders"]
    assert count(engine, "curated.stock") == 6
    assert spy.created == ["curated.orders", "curated.stock"]
    assert spy.calls == Counter()


class _PlainCatalog:
    """A catalog that is not a SqlCatalog (as Glue/REST would be): only the generic API is used."""

    def __init__(self, inner: SqlCatalog) -> None:
        self.inner = inner

    def load_table(self, identifier: str) -> Table:
        return self.inner.load_table(identifier)

    def list_tables(self, namespace: str) -> list[tuple[str, ...]]:
        return self.inner.list_tables(namespace)


def test_other_catalogs_load_only_the_tables_a_query_reads(
    settings: Settings, catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = cast(Catalog, _PlainCatalog(catalog))
    with SqlEngine(settings, catalog=plain, audit=AuditLog(tmp_path / "a.jsonl")) as engine:
        assert count(engine, "curated.orders") == 10
        spy = Spy(engine, monkeypatch)
        assert count(engine, "curated.orders") == 10
        assert spy.calls == Counter({"load_table": 1})  # this table only, no listing
        assert spy.created == []
        catalog.load_table("curated.orders").append(rows(10, 2))
        assert count(engine, "curated.orders") == 12
        assert spy.created == ["curated.orders"]
        assert count(engine, "curated.ORDERS") == 12  # a miss by exact name lists the zones once
        assert count(engine, "curated.orders") == 12
        assert spy.created == ["curated.orders"]


def test_table_names_resolve_case_insensitively_as_in_duckdb(engine: SqlEngine) -> None:
    assert count(engine, "curated.orders") == 10
    assert count(engine, "curated.ORDERS") == 10
    assert count(engine, "curated.orders") == 10


def test_governance_is_unchanged_on_the_fast_path(engine: SqlEngine) -> None:
    sql = "SELECT count(*) FROM curated.orders"
    engine.query(sql, principal="analyst")
    for _ in range(2):  # cached analysis, authorization still per query and per principal
        with pytest.raises(AccessDeniedError, match="may not read the curated zone"):
            engine.query(sql, principal="planner")
        with pytest.raises(AccessDeniedError, match="DELETE"):
            engine.query("DELETE FROM curated.orders", principal="analyst")
    records = [json.loads(line) for line in engine.audit.path.read_text().splitlines()]
    assert [(r["principal"], r["allowed"], r["event"]) for r in records] == [
        ("analyst", True, "sql.query"),
        ("planner", False, "sql.query"),
        ("analyst", False, "sql.refused"),
        ("planner", False, "sql.query"),
        ("analyst", False, "sql.refused"),
    ]
    assert records[1]["decisions"][1] == {
        "principal": "planner",
        "action": "read",
        "resource": "curated.orders",
        "allowed": False,
        "reason": "profile 'planner' may not read the curated zone",
    }


def test_analysis_of_accepted_statements_is_cached() -> None:
    sql = "SELECT * FROM curated.orders o JOIN curated.stock s USING (id)"
    first = analyse(sql)
    assert analyse(sql) is first
    assert first.tables == ("curated.orders", "curated.stock")
    for _ in range(2):  # refusals are not cached away
        with pytest.raises(AccessDeniedError, match="read_parquet"):
            analyse("SELECT * FROM read_parquet('/etc/passwd')")


def test_audit_file_stays_open_and_survives_rotation(engine: SqlEngine, tmp_path: Path) -> None:
    path = engine.audit.path
    engine.query("SELECT 1", principal="analyst")
    path.rename(tmp_path / "audit.jsonl.1")  # rotated away
    engine.query("SELECT 2", principal="analyst")
    assert [json.loads(x)["sql"] for x in (tmp_path / "audit.jsonl.1").read_text().splitlines()] == [
        "SELECT 1"
    ]
    path.unlink()  # deleted
    engine.query("SELECT 3", principal="analyst")
    assert [json.loads(x)["sql"] for x in path.read_text().splitlines()] == ["SELECT 3"]
    engine.audit.sync()
    engine.audit.close()
    engine.query("SELECT 4", principal="analyst")  # reopens after close
    assert [json.loads(x)["sql"] for x in path.read_text().splitlines()] == ["SELECT 3", "SELECT 4"]


def test_audit_lines_stay_whole_under_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path) for _ in range(4)]  # separate descriptors, like separate processes
    big = "x" * 20_000  # larger than any write buffer

    def write(log: AuditLog) -> None:
        for i in range(50):
            log.append("sql.query", [], sql=f"{big}{i}")

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(json.loads(line)["sql"].startswith(big) for line in lines)


def test_queries_from_several_threads(engine: SqlEngine) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:  # the catalog connection is kept across threads
        futures = [pool.submit(count, engine, "curated.orders") for _ in range(20)]
        assert [f.result() for f in futures] == [10] * 20
