"""Change capture end to end: full load, ordered change records, schema change, crash safety."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

import abasto.cdc.full_load as full_load_module
import abasto.cdc.pipeline as pipeline_module
from abasto.cdc import CdcPipeline
from abasto.cdc.lsn import lsn16, parse_lsn
from abasto.cdc.pgoutput import Begin, Commit, Insert, PgOutputDecoder, Update
from abasto.cdc.raw_zone import RawZone, StagedFile
from abasto.errors import TerminalError
from abasto.sources.behavior import PostgresDocumentStore

pytestmark = pytest.mark.services

DDL = """
CREATE SCHEMA sales;
CREATE TABLE sales.items (
    id integer PRIMARY KEY, name text NOT NULL, qty integer, price numeric(10, 2),
    tags smallint[], at timestamptz, doc jsonb
);
CREATE TABLE sales.notes (body text);
INSERT INTO sales.items VALUES
    (1, 'cola', 5, 14.50, '{0,3}', '2026-09-01 10:00+00', '{"a": 1}'),
    (2, 'agua', NULL, NULL, NULL, NULL, NULL),
    (3, 'limón', 7, 9.99, '{}', '2026-09-01 11:00+00', '[]');
"""


def run(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def slot_confirmed(dsn: str, slot: str = "abasto_slot") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    assert row is not None
    return parse_lsn(row[0])


@pytest.fixture
def source(cdc_dsn: str) -> str:
    run(cdc_dsn, DDL)
    return cdc_dsn


@pytest.fixture
def pipeline(source: str, tmp_path: Path) -> Iterator[CdcPipeline]:
    p = CdcPipeline(source, (tmp_path / "raw").as_uri(), schemas=("sales",))
    yield p
    p.close()


def test_full_load_is_the_source_at_the_slot_snapshot(pipeline: CdcPipeline, source: str, raw) -> None:
    result = pipeline.full_load()
    run(source, "INSERT INTO sales.items (id, name) VALUES (4, 'after the snapshot')")

    assert result.tables == {"sales.items": 3, "sales.notes": 0}
    assert result.files == [
        f"sales_db/items/full_load/LOAD-{lsn16(result.lsn)}-00001.parquet",
        f"sales_db/notes/full_load/LOAD-{lsn16(result.lsn)}-00001.parquet",
    ]
    items = raw.table("sales_db", "items", "full_load")
    rows = sorted(items.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert {r["Op"] for r in rows} == {"I"} and {r["_lsn"] for r in rows} == {result.lsn}
    assert sorted(r["_seq"] for r in rows) == [0, 1, 2]
    first = rows[0]
    assert first["price"] == Decimal("14.50") and first["tags"] == [0, 3] and first["doc"] == '{"a": 1}'
    assert first["at"] == datetime(2026, 9, 1, 10, tzinfo=UTC) and rows[2]["name"] == "limón"
    assert str(items.schema.field("price").type) == "decimal128(10, 2)"
    notes = raw.table("sales_db", "notes", "full_load")
    assert notes.num_rows == 0 and notes.column_names == ["Op", "_lsn", "_commit_ts", "_seq", "body"]
    assert slot_confirmed(source) == result.lsn
    status = pipeline.status()
    assert status.full_load_lsn == result.lsn and status.exists and status.lag_bytes is not None


def test_changes_in_commit_order_with_ops_and_images(pipeline: CdcPipeline, source: str, raw) -> None:
    pipeline.full_load()
    run(source, "INSERT INTO sales.items (id, name, qty) VALUES (10, 'nueva', 1)")
    with psycopg.connect(source) as conn:  # the same row updated twice in one transaction
        conn.execute("UPDATE sales.items SET name = 'x' WHERE id = 1")
        conn.execute("UPDATE sales.items SET name = 'y', qty = qty + 1 WHERE id = 1")
    with psycopg.connect(source) as conn:  # rolled back: must never appear
        conn.execute("INSERT INTO sales.items (id, name) VALUES (99, 'fantasma')")
        conn.execute("UPDATE sales.items SET name = 'nope' WHERE id = 3")
        conn.rollback()
    run(source, "DELETE FROM sales.items WHERE id = 2")
    run(
        source,
        "INSERT INTO sales.notes VALUES ('hola')",
        "UPDATE sales.notes SET body = 'adiós'",
        "DELETE FROM sales.notes",
    )

    result = pipeline.capture_once()
    assert result.changes == 7 and result.transactions == 6
    items = raw.changes("sales_db", "items")
    assert [(r["Op"], r["id"], r["name"]) for r in items] == [
        ("I", 10, "nueva"),
        ("U", 1, "x"),
        ("U", 1, "y"),
        ("D", 2, None),
    ]
    insert, upd1, upd2, delete = items
    assert insert["_lsn"] < upd1["_lsn"] == upd2["_lsn"] < delete["_lsn"]
    assert (upd1["_seq"], upd2["_seq"]) == (0, 1)
    assert upd2["qty"] == 6 and upd2["price"] == Decimal("14.50") and upd2["tags"] == [0, 3]
    assert upd2["at"] == datetime(2026, 9, 1, 10, tzinfo=UTC) and upd2["doc"] == '{"a": 1}'
    assert all(delete[c] is None for c in ("name", "qty", "price", "tags", "at", "doc"))  # key only
    assert 99 not in {r["id"] for r in items}

    notes = raw.changes("sales_db", "notes")  # no primary key: REPLICA IDENTITY FULL was set
    assert [(r["Op"], r["body"]) for r in notes] == [("I", "hola"), ("U", "adiós"), ("D", "adiós")]

    # typed like the source, the same as the full load
    cdc_file = raw.files("sales_db/items/cdc/**/*.parquet")[0]
    load_file = raw.files("sales_db/items/full_load/*.parquet")[0]
    assert pq.read_schema(cdc_file) == pq.read_schema(load_file)
    day = datetime.now(UTC).date().isoformat()
    assert cdc_file.parent.name == day
    assert cdc_file.name == f"CDC-{lsn16(insert['_lsn'])}-{lsn16(delete['_lsn'])}.parquet"

    again = pipeline.capture_once()
    assert again.changes == 0 and again.files == []
    assert len(raw.changes("sales_db", "items")) == 4


def test_interleaved_transactions_are_written_in_commit_order(
    pipeline: CdcPipeline, source: str, raw
) -> None:
    pipeline.full_load()
    first = psycopg.connect(source)
    second = psycopg.connect(source)
    try:
        first.execute("INSERT INTO sales.items (id, name) VALUES (20, 'begun first')")
        second.execute("INSERT INTO sales.items (id, name) VALUES (21, 'committed first')")
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()
    pipeline.capture_once()
    assert [r["id"] for r in raw.changes("sales_db", "items")] == [21, 20]


def test_a_column_added_mid_stream_starts_a_new_file(pipeline: CdcPipeline, source: str, raw) -> None:
    pipeline.full_load()
    run(
        source,
        "INSERT INTO sales.items (id, name) VALUES (30, 'before')",
        "ALTER TABLE sales.items ADD COLUMN promo text DEFAULT 'none'",
        "INSERT INTO sales.items (id, name, promo) VALUES (31, 'after', '2x1')",
        "UPDATE sales.items SET qty = 1 WHERE id = 30",
    )
    result = pipeline.capture_once()
    assert result.changes == 3
    files = raw.files("sales_db/items/cdc/**/*.parquet")
    assert len(files) == 2
    schemas = [pq.read_schema(f).names for f in files]
    assert "promo" not in schemas[0] and schemas[1][-1] == "promo"
    records = raw.changes("sales_db", "items")
    assert [(r["Op"], r["id"], r.get("promo")) for r in records] == [
        ("I", 30, None),
        ("I", 31, "2x1"),
        ("U", 30, "none"),
    ]


def test_schema_change_inside_one_transaction_splits_without_loss(
    pipeline: CdcPipeline, source: str, raw
) -> None:
    pipeline.full_load()
    with psycopg.connect(source) as conn:
        conn.execute("INSERT INTO sales.items (id, name) VALUES (40, 'a')")
        conn.execute("ALTER TABLE sales.items ADD COLUMN extra integer")
        conn.execute("INSERT INTO sales.items (id, name, extra) VALUES (41, 'b', 7)")
    pipeline.capture_once()
    files = raw.files("sales_db/items/cdc/**/*.parquet")
    assert len(files) == 2
    assert files[0].name.endswith(".parquet") and files[1].stem.endswith("_1")
    records = raw.changes("sales_db", "items")
    assert [(r["id"], r["_seq"], r.get("extra")) for r in records] == [(40, 0, None), (41, 1, 7)]


def test_truncate_is_recorded(pipeline: CdcPipeline, source: str, raw) -> None:
    pipeline.full_load()
    run(source, "TRUNCATE sales.items")
    assert pipeline.capture_once().changes == 1
    (record,) = raw.changes("sales_db", "items")
    assert record["Op"] == "T" and record["id"] is None


def test_a_large_unchanged_document_is_carried_by_the_old_row(cdc_dsn: str, tmp_path: Path, raw) -> None:
    big = {"notes": "".join(f"{i:x}" for i in range(20_000))}  # stored out of line (TOAST)
    with PostgresDocumentStore(cdc_dsn) as store:
        store.put("STORE#S1", "VISIT#1", big)
    with CdcPipeline(cdc_dsn, (tmp_path / "raw").as_uri(), schemas=("behavior",)) as p:
        p.full_load()
        run(cdc_dsn, "UPDATE behavior.documents SET updated_at = now()")
        assert p.capture_once().changes == 1
    (record,) = raw.changes("behavior", "documents")
    assert record["Op"] == "U" and record["pk"] == "STORE#S1"
    assert record["doc"] is not None and len(record["doc"]) > 20_000


def test_full_load_once_unless_reloaded(pipeline: CdcPipeline, source: str, tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="full load"):
        pipeline.capture_once()
    first = pipeline.full_load()
    with pytest.raises(TerminalError, match="done at"):
        pipeline.full_load()
    run(source, "INSERT INTO sales.items (id, name) VALUES (50, 'x')")
    second = pipeline.full_load(reload=True)
    assert second.lsn > first.lsn and second.tables["sales.items"] == 4
    assert pipeline.capture_once().changes == 0  # the insert is in the new snapshot, not a change


def test_interrupted_full_load_starts_over(pipeline: CdcPipeline, source: str, raw, monkeypatch) -> None:
    calls = {"n": 0}
    real = full_load_module._copy_table

    def failing(*args, **kwargs):  # second table fails
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(full_load_module, "_copy_table", failing)
    with pytest.raises(RuntimeError):
        pipeline.full_load()
    assert raw.files() == []  # nothing published
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
    monkeypatch.setattr(full_load_module, "_copy_table", real)
    assert pipeline.full_load().tables["sales.items"] == 3


def test_restart_resumes_from_the_confirmed_position(source: str, tmp_path: Path, raw) -> None:
    uri = (tmp_path / "raw").as_uri()
    with CdcPipeline(source, uri, schemas=("sales",)) as p:
        p.full_load()
        run(source, "INSERT INTO sales.items (id, name) VALUES (60, 'one')")
        assert p.capture_once().changes == 1
    run(source, "INSERT INTO sales.items (id, name) VALUES (61, 'two')")
    with CdcPipeline(source, uri, schemas=("sales",)) as p:
        assert p.capture_once().changes == 1
    assert [r["id"] for r in raw.changes("sales_db", "items")] == [60, 61]


def test_kill_between_write_and_advance_duplicates_nothing(
    pipeline: CdcPipeline, source: str, tmp_path: Path, raw, monkeypatch
) -> None:
    pipeline.full_load()
    before = slot_confirmed(source)
    run(source, "INSERT INTO sales.items (id, name) VALUES (70, 'x')", "UPDATE sales.notes SET body = 'y'")

    def killed(*_args: object) -> None:
        raise RuntimeError("killed before advancing the slot")

    monkeypatch.setattr(pipeline_module, "advance_slot", killed)
    with pytest.raises(RuntimeError):
        pipeline.capture_once()
    pipeline.close()
    written = raw.files("**/cdc/**/*.parquet")
    assert len(written) == 1 and slot_confirmed(source) == before  # file durable, slot not moved

    monkeypatch.undo()
    with CdcPipeline(source, (tmp_path / "raw").as_uri(), schemas=("sales",)) as rerun:
        result = rerun.capture_once()
    assert result.changes == 0 and result.written == ()
    assert raw.files("**/cdc/**/*.parquet") == written
    assert [r["id"] for r in raw.changes("sales_db", "items")] == [70]
    assert slot_confirmed(source) > before


def test_kill_while_publishing_replays_the_same_batch(source: str, tmp_path: Path, raw, monkeypatch) -> None:
    uri = (tmp_path / "raw").as_uri()
    with CdcPipeline(source, uri, schemas=("sales",)) as p:
        p.full_load()
        before = slot_confirmed(source)
        run(
            source,
            "INSERT INTO sales.items (id, name) VALUES (80, 'a')",
            "INSERT INTO sales.notes VALUES ('n1')",
            "INSERT INTO sales.items (id, name) VALUES (81, 'b')",
        )
        real_publish = RawZone.publish
        published: list[str] = []

        def publish_one_then_die(self: RawZone, staged: StagedFile) -> bool:
            if published:
                raise RuntimeError("killed while renaming files into place")
            published.append(staged.name)
            return real_publish(self, staged)

        monkeypatch.setattr(RawZone, "publish", publish_one_then_die)
        with pytest.raises(RuntimeError):
            p.capture_once(max_changes=1000)
    assert len(raw.files("**/cdc/**/*.parquet")) == 1 and slot_confirmed(source) == before
    assert not list((tmp_path / "raw").rglob("*.tmp"))

    monkeypatch.undo()
    # another batch size after the restart must not change the files of the interrupted batch
    with CdcPipeline(source, uri, schemas=("sales",)) as p:
        result = p.capture_once(max_changes=1)
        assert len(result.files) == 2 and len(result.written) == 1
        assert p.capture_once().changes == 0
    assert [r["id"] for r in raw.changes("sales_db", "items")] == [80, 81]
    assert [r["body"] for r in raw.changes("sales_db", "notes")] == ["n1"]


def test_confirmed_lsn_never_passes_what_is_in_raw(source: str, tmp_path: Path, raw, monkeypatch) -> None:
    """An oracle slot sees every transaction; after each capture attempt (some killed on purpose),
    every transaction the pipeline's slot has confirmed is in the raw zone, exactly once."""
    uri = (tmp_path / "raw").as_uri()
    pipeline = CdcPipeline(source, uri, schemas=("sales",))
    pipeline.full_load()
    run(source, "SELECT pg_create_logical_replication_slot('oracle', 'pgoutput')")
    for i in range(30):
        if i % 3 == 0:
            run(source, f"UPDATE sales.items SET qty = {i} WHERE id = 1")
        else:
            run(source, f"INSERT INTO sales.items (id, name) VALUES ({100 + i}, 'n{i}')")
            if i % 5 == 0:
                run(source, f"INSERT INTO sales.items (id, name) VALUES ({200 + i}, 'm'), ({300 + i}, 'k')")

    with psycopg.connect(source) as conn:
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes('oracle', NULL, NULL, "
            "'proto_version', '1', 'publication_names', 'abasto_pub')"
        ).fetchall()
    decoder = PgOutputDecoder(1)
    oracle: list[tuple[int, int, int]] = []  # (commit lsn, end lsn, changes)
    count = 0
    for (data,) in rows:
        message = decoder.decode(bytes(data))
        if isinstance(message, Begin):
            count = 0
        elif isinstance(message, Insert | Update):
            count += 1
        elif isinstance(message, Commit):
            oracle.append((message.commit_lsn, message.end_lsn, count))

    real_publish = RawZone.publish
    attempts = {"n": 0}

    def sometimes_killed(self: RawZone, staged: StagedFile) -> bool:
        attempts["n"] += 1
        if attempts["n"] % 4 == 0:
            raise RuntimeError("killed")
        return real_publish(self, staged)

    monkeypatch.setattr(RawZone, "publish", sometimes_killed)
    for _ in range(60):
        try:
            pipeline.capture_once(max_changes=4)
        except RuntimeError:
            pipeline.close()
            pipeline = CdcPipeline(source, uri, schemas=("sales",))
        confirmed = slot_confirmed(source)
        by_lsn: dict[int, int] = {}
        for record in raw.changes("sales_db", "items"):
            by_lsn[record["_lsn"]] = by_lsn.get(record["_lsn"], 0) + 1
        for commit_lsn, end_lsn, changes in oracle:
            if end_lsn <= confirmed:
                assert by_lsn.get(commit_lsn) == changes, (
                    f"confirmed {confirmed:X} but {commit_lsn:X} missing"
                )
        assert all(n == dict((c, k) for c, _, k in oracle).get(lsn) for lsn, n in by_lsn.items())  # no dups
    pipeline.close()
    assert slot_confirmed(source) >= oracle[-1][1]
    assert sum(k for *_, k in oracle) == len(raw.changes("sales_db", "items"))
    run(source, "SELECT pg_drop_replication_slot('oracle')")


def test_status_reports_lag_and_positions(pipeline: CdcPipeline, source: str) -> None:
    load = pipeline.full_load()
    run(source, "INSERT INTO sales.items (id, name) SELECT g, 'bulk' FROM generate_series(1000, 1100) g")
    behind = pipeline.status()
    assert behind.confirmed_lsn == load.lsn and behind.lag_bytes is not None and behind.lag_bytes > 0
    result = pipeline.capture_once()
    after = pipeline.status()
    assert result.changes == 101
    assert after.confirmed_lsn == result.last_lsn == after.raw_confirmed_lsn
    assert after.lag_bytes is not None and after.lag_bytes < behind.lag_bytes
    assert after.as_dict()["slot"] == "abasto_slot"


def test_idle_source_does_not_pin_wal(pipeline: CdcPipeline, source: str) -> None:
    pipeline.full_load()
    run(
        source,
        "CREATE TABLE public.unpublished (x int)",
        "INSERT INTO public.unpublished SELECT generate_series(1, 5000)",
    )
    before = slot_confirmed(source)
    result = pipeline.capture_once()
    assert result.changes == 0
    assert slot_confirmed(source) > before  # moved past WAL that held nothing of ours


def slot_restart(dsn: str, slot: str = "abasto_slot") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    assert row is not None
    return parse_lsn(row[0])


def test_the_restart_position_follows_the_capture(pipeline: CdcPipeline, source: str) -> None:
    """A batch that leaves restart_lsn far behind ends by logging running transactions, and the
    next batch's advance passes that record: the slot's restart position moves up with the capture
    rather than staying where the slot began."""
    pipeline.full_load()
    start = slot_restart(source)
    run(
        source, "INSERT INTO sales.notes SELECT repeat('x', 300) FROM generate_series(1, 8000)"
    )  # > 1 MB of WAL
    with psycopg.connect(source) as conn:
        written = parse_lsn(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])  # type: ignore[index]
    assert written - start > pipeline_module.RESTART_LAG_BYTES
    assert pipeline.capture_once(max_changes=100_000).changes == 8000  # ends by logging the record
    run(source, "INSERT INTO sales.notes VALUES ('after')")
    assert pipeline.capture_once().changes == 1  # its advance passes the record
    assert slot_restart(source) >= written


def test_one_capture_per_slot(pipeline: CdcPipeline, source: str, tmp_path: Path) -> None:
    pipeline.full_load()
    with (
        CdcPipeline(source, (tmp_path / "raw").as_uri(), schemas=("sales",), lock_wait_s=0.3) as other,
        pytest.raises(TerminalError, match="another change capture"),
    ):
        other.capture_once()


def test_capture_lock_released_while_waiting_is_taken(
    pipeline: CdcPipeline, source: str, tmp_path: Path
) -> None:
    """A capture started while its killed predecessor's session still holds the lock waits for it."""
    pipeline.full_load()
    pipeline.capture_once()  # holds the lock from now on
    threading.Timer(0.5, pipeline.close).start()
    with CdcPipeline(source, (tmp_path / "raw").as_uri(), schemas=("sales",), lock_wait_s=10) as other:
        started = time.monotonic()
        result = other.capture_once()
        waited = time.monotonic() - started
    assert result.drained
    assert 0.3 < waited < 8


def test_run_until_stopped(pipeline: CdcPipeline, source: str, raw) -> None:
    pipeline.full_load()
    stop = threading.Event()
    batches = []
    worker = threading.Thread(target=pipeline.run, args=(stop, 0.05), kwargs={"on_batch": batches.append})
    worker.start()
    try:
        run(source, "INSERT INTO sales.items (id, name) VALUES (90, 'live')")
        deadline = time.monotonic() + 10
        while not raw.changes("sales_db", "items") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert [r["id"] for r in raw.changes("sales_db", "items")] == [90]
    assert sum(b.changes for b in batches) == 1


def test_listed_tables_only_and_drop(source: str, tmp_path: Path, raw) -> None:
    with CdcPipeline(source, (tmp_path / "raw").as_uri(), tables=["sales.items"]) as p:
        assert p.full_load().tables == {"sales.items": 3}
        run(source, "INSERT INTO sales.notes VALUES ('not captured')", "DELETE FROM sales.items WHERE id = 3")
        assert p.capture_once().changes == 1
        p.drop(publication=True)
        assert not p.status().exists
    assert raw.changes("sales_db", "notes") == []
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
