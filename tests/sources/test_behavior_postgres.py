"""What only the PostgreSQL backend of the document store promises."""

from __future__ import annotations

import psycopg
import pytest

from abasto.errors import ConfigError, ServiceUnavailableError
from abasto.sources.behavior import PostgresDocumentStore, open_document_store

pytestmark = pytest.mark.services


def test_table_layout_and_replica_identity(db_dsn: str) -> None:
    with PostgresDocumentStore(db_dsn, schema="behavior_layout") as store:
        store.put("P", "S", {"a": 1})
        store.put("P", "S", {"a": 2})
    with psycopg.connect(db_dsn) as conn:
        cols = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'behavior_layout' AND table_name = 'documents' ORDER BY ordinal_position"
        ).fetchall()
        assert cols == [
            ("pk", "text"),
            ("sk", "text"),
            ("doc", "jsonb"),
            ("updated_at", "timestamp with time zone"),
        ]
        assert conn.execute(
            "SELECT relreplident FROM pg_class WHERE oid = 'behavior_layout.documents'::regclass"
        ).fetchone() == ("f",)
        row = conn.execute("SELECT doc->>'a', updated_at <= now() FROM behavior_layout.documents").fetchone()
        assert row == ("2", True)


def test_open_document_store_by_uri(db_dsn: str) -> None:
    store = open_document_store(db_dsn)
    try:
        assert isinstance(store, PostgresDocumentStore) and store.schema == "behavior"
    finally:
        store.close()
    with pytest.raises(ConfigError):
        open_document_store("mongodb://documents")


def test_unreachable_server_is_transient() -> None:
    with pytest.raises(ServiceUnavailableError):
        PostgresDocumentStore("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
