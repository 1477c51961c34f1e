"""Fixtures of the change capture tests: a fresh database per test (slots dropped with it)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abasto.sources.pg import create_database, drop_database


@pytest.fixture
def cdc_dsn(request: pytest.FixtureRequest, pg_dsn: str) -> Iterator[str]:
    """A database of its own for each test; dropped afterwards together with its replication slots."""
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    name = f"t_cdc_{re.sub(r'[^a-z0-9]+', '_', request.node.name.lower())[:40]}_{digest}"
    dsn = create_database(pg_dsn, name)
    yield dsn
    drop_database(pg_dsn, name)


class RawReader:
    """Reads what the capture wrote under one raw directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, pattern: str = "**/*.parquet") -> list[Path]:
        return sorted(self.root.glob(pattern))

    def table(self, source: str, table: str, kind: str) -> pa.Table | None:
        files = self.files(f"{source}/{table}/{kind}/**/*.parquet")
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    def changes(self, source: str, table: str) -> list[dict[str, object]]:
        """Every CDC record of a table, ordered by (_lsn, _seq)."""
        data = self.table(source, table, "cdc")
        if data is None:
            return []
        return sorted(data.to_pylist(), key=lambda r: (r["_lsn"], r["_seq"]))


@pytest.fixture
def raw(tmp_path: Path) -> RawReader:
    return RawReader(tmp_path / "raw")
