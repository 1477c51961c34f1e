from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from abasto.errors import ConfigError
from abasto.lake import storage
from abasto.lake.storage import filesystem_for, join_uri, list_files, read_parquet, write_parquet_atomic


def test_filesystem_by_scheme(tmp_path: Path) -> None:
    fs, path = filesystem_for((tmp_path / "a b").as_uri())
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "a b")
    fs, path = filesystem_for(str(tmp_path))
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path)
    fs, path = filesystem_for("s3://bucket/lake/raw/")
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/lake/raw"
    with pytest.raises(ConfigError, match="gs"):
        filesystem_for("gs://bucket/x")
    with pytest.raises(ConfigError, match="bucket"):
        filesystem_for("s3:///nokey")


def test_join_uri() -> None:
    assert join_uri("file:///lake/raw/", "sales_db/orders", "/cdc/") == "file:///lake/raw/sales_db/orders/cdc"
    assert join_uri("s3://b/p") == "s3://b/p"


def test_atomic_write_then_list_sorted_skipping_hidden(tmp_path: Path) -> None:
    root = tmp_path.as_uri()
    table = pa.table({"x": [1, 2, 3]})
    for rel in ("b/2.parquet", "a/1.parquet", "b/10.parquet"):
        write_parquet_atomic(table, join_uri(root, rel))
    (tmp_path / "a" / ".1.parquet.tmp").write_bytes(b"partial")  # a writer's temporary file
    (tmp_path / "_markers").mkdir()
    (tmp_path / "_markers" / "x.parquet").write_bytes(b"")
    found = list_files(root, suffix=".parquet")
    assert [f.relpath for f in found] == ["a/1.parquet", "b/10.parquet", "b/2.parquet"]
    assert read_parquet(found[0].uri).equals(table)
    assert found[0].size == (tmp_path / "a" / "1.parquet").stat().st_size
    assert list_files(join_uri(root, "missing")) == []


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_write(table: pa.Table, where: str, **kw: object) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pa.table({"x": [1]}), (tmp_path / "t.parquet").as_uri())
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_whole_file(tmp_path: Path) -> None:
    uri = (tmp_path / "t.parquet").as_uri()
    write_parquet_atomic(pa.table({"x": [1]}), uri)
    write_parquet_atomic(pa.table({"x": [2, 3]}), uri)
    assert pq.read_table(tmp_path / "t.parquet").column("x").to_pylist() == [2, 3]
