"""PostgreSQL backend of the document store: table ``<schema>.documents`` with a jsonb column.

Keys use the "C" collation so ``sk`` sorts by bytes like DynamoDB's sort keys, and prefix queries
are index range scans on the primary key. The table has REPLICA IDENTITY FULL: a document larger than
PostgreSQL's TOAST threshold that an UPDATE leaves unchanged would otherwise reach change capture
without its value; with FULL the old row carries it (like DynamoDB Streams' NEW_AND_OLD_IMAGES).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from abasto.errors import InvalidInputError, ServiceUnavailableError
from abasto.sources.behavior.port import Document, DocumentStore
from abasto.sources.behavior.validation import check_key, check_pk, decode_doc, encode_doc
from abasto.sources.pg import connect, describe

T = TypeVar("T")

DEFAULT_SCHEMA = "behavior"
TABLE = "documents"

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {table} (
    pk          text COLLATE "C" NOT NULL,
    sk          text COLLATE "C" NOT NULL,
    doc         jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pk, sk)
);
"""


class PostgresDocumentStore(DocumentStore):
    """Documents in PostgreSQL (the embedded default of the seed's DynamoDB).

    One connection per store, opened lazily, re-opened after a broken connection; calls from
    several threads are serialised.
    """

    def __init__(self, dsn: str, *, schema: str = DEFAULT_SCHEMA, create: bool = True) -> None:
        """Raises:
        ServiceUnavailableError: ``create`` is set and PostgreSQL cannot be reached.
        """
        self._dsn = dsn
        self._schema = schema
        self._table = sql.Identifier(schema, TABLE)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._closed = False
        if create:
            self.create_table()

    @property
    def schema(self) -> str:
        return self._schema

    def create_table(self) -> None:
        """Create the schema and table if missing (idempotent).

        Raises:
            ServiceUnavailableError: PostgreSQL cannot be reached.
        """

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"abasto-ddl:{self._schema}",))
                conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(self._schema), table=self._table))
                identity = conn.execute(
                    "SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s)",
                    (f'"{self._schema}".{TABLE}',),
                ).fetchone()
                if identity is not None and identity[0] != "f":
                    conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(self._table))

        self._run(run)

    def put(self, pk: str, sk: str, doc: Mapping[str, Any]) -> None:
        check_key(pk, sk)
        text = encode_doc(pk, sk, doc)
        query = sql.SQL(
            "INSERT INTO {} (pk, sk, doc) VALUES (%s, %s, %s::jsonb) "
            "ON CONFLICT (pk, sk) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()"
        ).format(self._table)
        self._run(lambda conn: conn.execute(query, (pk, sk, text)))

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        check_key(pk, sk)
        query = sql.SQL("SELECT doc FROM {} WHERE pk = %s AND sk = %s").format(self._table)
        row = self._run(lambda conn: conn.execute(query, (pk, sk)).fetchone())
        return None if row is None else decode_doc(row[0])

    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, descending: bool = False
    ) -> list[Document]:
        check_pk(pk)
        if limit is not None and limit <= 0:
            raise InvalidInputError(f"limit must be positive, got {limit}")
        if sk_prefix is not None and not isinstance(sk_prefix, str):
            raise InvalidInputError(f"sk_prefix must be a string, got {type(sk_prefix).__name__}")
        conditions = [sql.SQL("pk = %s")]
        params: list[Any] = [pk]
        if sk_prefix:
            # the range lets the primary key index serve the prefix; starts_with makes it exact
            conditions.append(sql.SQL("sk >= %s AND starts_with(sk, %s)"))
            params += [sk_prefix, sk_prefix]
        query = sql.SQL("SELECT pk, sk, doc FROM {} WHERE {} ORDER BY sk {}{}").format(
            self._table,
            sql.SQL(" AND ").join(conditions),
            sql.SQL("DESC" if descending else "ASC"),
            sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL(""),
        )
        rows = self._run(lambda conn: conn.execute(query, params).fetchall())
        return [Document(pk=r[0], sk=r[1], doc=decode_doc(r[2])) for r in rows]

    def delete(self, pk: str, sk: str) -> bool:
        check_key(pk, sk)
        query = sql.SQL("DELETE FROM {} WHERE pk = %s AND sk = %s").format(self._table)
        return self._run(lambda conn: conn.execute(query, (pk, sk)).rowcount) > 0

    def put_many(self, items: Iterable[Document]) -> int:
        latest: dict[tuple[str, str], str] = {}
        for item in items:
            check_key(item.pk, item.sk)
            latest[(item.pk, item.sk)] = encode_doc(item.pk, item.sk, item.doc)
        if not latest:
            return 0
        staging = sql.Identifier(f"_abasto_docs_in_{threading.get_ident()}")

        def run(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE TEMP TABLE {} (pk text, sk text, doc jsonb) ON COMMIT DROP").format(
                        staging
                    )
                )
                with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(staging)) as copy:
                    for (pk, sk), text in latest.items():
                        copy.write_row((pk, sk, text))
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (pk, sk, doc) SELECT pk, sk, doc FROM {} "
                        "ON CONFLICT (pk, sk) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()"
                    ).format(self._table, staging)
                )

        self._run(run)
        return len(latest)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- connection handling ------------------------------------------------------------------

    def _run(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``action`` on the connection; one retry on a fresh connection if the old one broke."""
        with self._lock:
            if self._closed:
                raise InvalidInputError("the document store is closed")
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return action(conn)
                except psycopg.OperationalError as exc:
                    conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise ServiceUnavailableError(
                            f"document store at {describe(self._dsn)} failed: {exc}"
                        ) from exc
            raise AssertionError("unreachable")

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self._dsn, autocommit=True)
        return self._conn
