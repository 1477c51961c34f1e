"""DynamoDB Streams change capture into the raw zone, and the curated result it converges to.

No AWS account is reachable here: DynamoDB and DynamoDB Streams are moto's, in server mode on
127.0.0.1 (boto3 pointed at it with dummy credentials). moto keeps one shard per table.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from abasto.catalog import open_catalog
from abasto.cdc.dynamodb_streams import RAW_SCHEMA, DynamoStreamsCapture
from abasto.errors import NotFoundError
from abasto.lake import curate_table
from abasto.lake.tables import ALL_TABLES
from abasto.settings import load_settings
from abasto.sources.behavior import Document, DynamoDocumentStore
from abasto.sources.behavior.dynamodb import aws_client
from abasto.stream.kinesis_aws import AwsConnection

_tables = itertools.count(1)


@pytest.fixture(scope="module")
def moto_conn() -> Iterator[AwsConnection]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield AwsConnection(
        endpoint_url=f"http://{host}:{port}",
        access_key_id="testing",
        secret_access_key="testing",  # moto's dummy credentials
        timeout_s=5.0,
        max_attempts=2,
    )
    server.stop()


@pytest.fixture
def store(moto_conn: AwsConnection) -> Iterator[DynamoDocumentStore]:
    with DynamoDocumentStore(f"docs-{next(_tables)}", moto_conn) as s:
        yield s


@pytest.fixture
def capture(store: DynamoDocumentStore, moto_conn: AwsConnection, raw: Any) -> Iterator[DynamoStreamsCapture]:
    with DynamoStreamsCapture(store.table, str(raw.root), moto_conn) as c:
        yield c


def _load_rows(raw: Any) -> list[dict[str, Any]]:
    data = raw.table("behavior", "documents", "full_load")
    assert data is not None
    rows: list[dict[str, Any]] = data.to_pylist()
    return rows


def test_capture_before_full_load_is_refused(capture: DynamoStreamsCapture) -> None:
    with pytest.raises(NotFoundError):
        capture.capture_once()


def test_full_load_then_changes_in_order_with_ops(
    store: DynamoDocumentStore, capture: DynamoStreamsCapture, raw: Any
) -> None:
    store.put("STORE#S1", "VISIT#1", {"v": 1})
    store.put("STORE#S2", "VISIT#1", {"v": 2})
    load = capture.full_load()
    assert load.rows == 2 and len(load.files) == 1
    assert load.files[0].startswith("behavior/documents/full_load/LOAD-")
    rows = _load_rows(raw)
    assert {(r["Op"], r["_lsn"], r["pk"], json.loads(r["doc"])["v"]) for r in rows} == {
        ("I", load.lsn, "STORE#S1", 1),
        ("I", load.lsn, "STORE#S2", 2),
    }
    assert sorted(r["_seq"] for r in rows) == [0, 1]
    assert pq.read_schema(raw.files("behavior/documents/full_load/*.parquet")[0]).equals(RAW_SCHEMA)

    store.put("STORE#S3", "VISIT#1", {"v": 3})  # insert
    store.put("STORE#S1", "VISIT#1", {"v": 10})  # update
    store.delete("STORE#S2", "VISIT#1")  # delete
    store.put("STORE#S3", "VISIT#1", {"v": 30})  # update again
    first = capture.capture_once()
    assert first.records == 4 and first.caught_up and first.file is not None
    assert first.file.startswith("behavior/documents/cdc/")

    changes = raw.changes("behavior", "documents")
    assert [(c["Op"], c["pk"]) for c in changes] == [
        ("I", "STORE#S3"),
        ("U", "STORE#S1"),
        ("D", "STORE#S2"),
        ("U", "STORE#S3"),
    ]
    assert [json.loads(str(c["doc"]))["v"] if c["doc"] else None for c in changes] == [3, 10, None, 30]
    lsns = [int(str(c["_lsn"])) for c in changes]
    assert lsns == sorted(set(lsns)) and lsns[0] > load.lsn  # strictly increasing, after the load
    assert changes[2]["sk"] == "VISIT#1" and changes[2]["updated_at"] is None  # delete: keys only
    name = Path(first.file).name
    assert name == f"CDC-{lsns[0]:016X}-{lsns[-1]:016X}.parquet"

    assert capture.capture_once().file is None  # nothing new
    store.put("STORE#S4", "VISIT#1", {"v": 4})
    second = capture.capture_once()
    assert second.records == 1
    assert int(str(raw.changes("behavior", "documents")[-1]["_lsn"])) > lsns[-1]


def test_crash_between_file_and_checkpoint_writes_no_duplicate(
    store: DynamoDocumentStore, capture: DynamoStreamsCapture, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture.full_load()
    store.put("P", "A", {"n": 1})
    store.put("P", "B", {"n": 2})

    def crash(*_: object) -> None:
        raise RuntimeError("killed before the checkpoint")

    monkeypatch.setattr(capture, "_commit", crash)
    with pytest.raises(RuntimeError):
        capture.capture_once()
    monkeypatch.undo()
    (written,) = raw.files("behavior/documents/cdc/**/*.parquet")
    before = written.read_bytes()

    store.put("P", "C", {"n": 3})  # a change after the crash
    rerun = capture.capture_once()
    assert rerun.recovered is not None and Path(rerun.recovered).name == written.name
    files = raw.files("behavior/documents/cdc/**/*.parquet")
    assert len(files) == 2 and written.read_bytes() == before  # the crashed file kept, not rewritten
    assert [c["sk"] for c in raw.changes("behavior", "documents")] == ["A", "B", "C"]  # no duplicate
    assert capture.capture_once().file is None


def test_crash_before_the_file_reads_the_batch_again(
    store: DynamoDocumentStore, capture: DynamoStreamsCapture, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture.full_load()
    store.put("P", "A", {"n": 1})

    def crash(*_: object) -> bool:
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(capture, "_publish", crash)
    with pytest.raises(RuntimeError):
        capture.capture_once()
    monkeypatch.undo()
    assert raw.files("behavior/documents/cdc/**/*.parquet") == []
    again = capture.capture_once()
    assert again.recovered is None and again.records == 1
    assert [c["sk"] for c in raw.changes("behavior", "documents")] == ["A"]


def test_small_batches_split_files_in_lsn_order(
    store: DynamoDocumentStore, moto_conn: AwsConnection, raw: Any
) -> None:
    with DynamoStreamsCapture(store.table, str(raw.root), moto_conn, max_records=3) as capture:
        capture.full_load()
        for i in range(8):
            store.put("P", f"S{i}", {"i": i})
        results = capture.capture_until_idle()
    assert [r.records for r in results] == [3, 3, 2]
    assert [c["sk"] for c in raw.changes("behavior", "documents")] == [f"S{i}" for i in range(8)]


def test_expired_full_load_iterator_falls_back_to_trim_horizon(
    store: DynamoDocumentStore, capture: DynamoStreamsCapture, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("P", "old", {"n": 0})
    capture.full_load()
    store.put("P", "new", {"n": 1})
    state = json.loads((raw.root / capture.state_name).read_text())
    (stale,) = [s["iterator"] for s in state["shards"].values()]
    real = capture._streams.get_records

    def get_records(**kwargs: Any) -> Any:  # the full load's LATEST iterator is past its 15 minutes
        if kwargs["ShardIterator"] == stale:
            raise ClientError(
                {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords"
            )
        return real(**kwargs)

    monkeypatch.setattr(capture._streams, "get_records", get_records)
    assert capture.capture_once().records == 2
    # replayed from the start of the shard: the older change again, then the new one; curated
    # still converges because the last image per key is the current one
    assert [c["sk"] for c in raw.changes("behavior", "documents")] == ["old", "new"]


def _curated_rows(settings_home: Path, raw_root: Path) -> tuple[list[tuple[str, str, Any]], Any]:
    settings = load_settings(home=settings_home)
    catalog = open_catalog(settings)
    spec = ALL_TABLES["behavior_documents"]
    result = curate_table(spec, catalog=catalog, raw_uri=str(raw_root))
    data = catalog.load_table(spec.identifier).scan().to_arrow()
    rows = sorted((r["pk"], r["sk"], json.loads(r["doc"])) for r in data.to_pylist())
    return rows, result


def _scan(store: DynamoDocumentStore) -> list[tuple[str, str, Any]]:
    client = aws_client(store.connection, "dynamodb")
    try:
        items = client.scan(TableName=store.table, ConsistentRead=True)["Items"]
    finally:
        client.close()
    return sorted((i["pk"]["S"], i["sk"]["S"], json.loads(i["doc"]["S"])) for i in items)


def test_curated_table_equals_a_scan_after_a_random_workload(
    store: DynamoDocumentStore, capture: DynamoStreamsCapture, raw: Any, tmp_path: Path
) -> None:
    rng = random.Random(4)
    keys = [(f"STORE#S{p}", f"VISIT#{s}") for p in range(4) for s in range(6)]
    store.put_many(Document(pk, sk, {"gen": 0, "k": f"{pk}|{sk}"}) for pk, sk in keys[:12])
    capture.full_load()
    for step in range(3):
        for _ in range(25):
            pk, sk = rng.choice(keys)
            if rng.random() < 0.3:
                store.delete(pk, sk)
            else:
                store.put(pk, sk, {"gen": step + 1, "n": rng.randint(0, 99), "tags": ["a", None, 1.5]})
        capture.capture_once()
        rows, result = _curated_rows(tmp_path / "home", raw.root)
        assert result.files >= 1 or step > 0
        assert rows == _scan(store)

    again, replay = _curated_rows(tmp_path / "home", raw.root)  # re-running the job changes nothing
    assert replay.files == 0 and again == _scan(store)
