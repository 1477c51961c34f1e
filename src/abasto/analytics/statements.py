"""Which SQL the endpoint accepts: one read-only statement, no file-reading table functions.

Accepted: ``SELECT``/``WITH``/``FROM``…, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` and ``EXPLAIN`` of
those. Refused with a reason: anything that writes, attaches, sets, copies or installs, several
statements at once, and table functions other than generators (``read_parquet``, ``glob``,
``iceberg_scan``… would bypass the governed ``<zone>.<table>`` views).

The check works on DuckDB's own parse tree (``json_serialize_sql``), which also names every table
the statement reads, so authorization sees exactly what will be read. Parsing runs on one shared
in-memory DuckDB connection (opening one costs ~10 ms), and accepted statements are cached by their
exact text (:func:`analyse` is a pure function of it), so a dashboard re-sending the same SQL pays
the check once; refused statements are not cached and are checked again each time.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import duckdb

from abasto.errors import AccessDeniedError, InvalidInputError

__all__ = ["ALLOWED_TABLE_FUNCTIONS", "ReadOnlyQuery", "analyse"]

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
_EXPLAIN = re.compile(r"^\s*explain\s+(?:analyze\s+|\([^)]*\)\s*)?", re.IGNORECASE)
_READ_ONLY_HELP = "the SQL endpoint is read-only: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"
#: accepted statements remembered by exact text (a dashboard's handful of queries, with room to spare)
ANALYSE_CACHE_SIZE = 1024


@dataclass(frozen=True)
class ReadOnlyQuery:
    """An accepted statement and the tables it reads (``schema.table``, or a bare name/path)."""

    sql: str
    tables: tuple[str, ...]


def analyse(sql: str) -> ReadOnlyQuery:
    """Accept ``sql`` and name the tables it reads, or say why it is refused.

    Results of accepted statements are cached by exact text (see :data:`ANALYSE_CACHE_SIZE`).

    Raises:
        InvalidInputError: empty, unparsable, or more than one statement.
        AccessDeniedError: the statement is not read-only or reads files directly.
    """
    return _analyse_cached(sql)


@lru_cache(maxsize=ANALYSE_CACHE_SIZE)
def _analyse_cached(sql: str) -> ReadOnlyQuery:
    # lru_cache stores only returned values: a refused statement raises and is checked again next time
    statement = _single_statement(sql)
    if statement.type == duckdb.StatementType.EXPLAIN:
        statement = _single_statement(_EXPLAIN.sub("", statement.query, count=1))
    if statement.type != duckdb.StatementType.SELECT:
        raise AccessDeniedError(f"{statement.type.name} statements are not allowed; {_READ_ONLY_HELP}")
    tree = _parse_tree(statement.query)
    walk = _Walk()
    walk.visit(tree)
    refused = sorted(walk.functions - ALLOWED_TABLE_FUNCTIONS)
    if refused:
        raise AccessDeniedError(
            f"table functions {', '.join(refused)} are not allowed: query the catalog's views "
            "(curated.<table>) so access is governed"
        )
    tables = {t for t in walk.tables if "." in t or t not in walk.ctes}
    return ReadOnlyQuery(sql, tuple(sorted(tables)))


def _single_statement(sql: str) -> duckdb.Statement:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInputError(f"cannot parse SQL: {exc}") from exc
    if len(statements) != 1:
        raise InvalidInputError(f"send exactly one statement (got {len(statements)})")
    return statements[0]


class _Parser:
    """One in-memory DuckDB kept for ``json_serialize_sql`` (pure: it reads and writes nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def serialize(self, query: str) -> str | None:
        with self._lock:
            if self._con is None:
                self._con = duckdb.connect(
                    config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
                )
            row = self._con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
        return str(row[0]) if row else None


_PARSER = _Parser()


def _parse_tree(query: str) -> dict[str, Any]:
    serialized = _PARSER.serialize(query)
    tree: dict[str, Any] = json.loads(serialized) if serialized is not None else {"error": True}
    if tree.get("error"):
        raise AccessDeniedError(
            f"statement cannot be checked ({tree.get('error_message', 'unsupported')}); {_READ_ONLY_HELP}"
        )
    return tree


class _Walk:
    """Collects table functions, base tables and CTE names of a parse tree."""

    def __init__(self) -> None:
        self.functions: set[str] = set()
        self.tables: set[str] = set()
        self.ctes: set[str] = set()

    def visit(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            self.functions.add(str(node.get("function", {}).get("function_name", "")).lower())
        elif kind == "BASE_TABLE":
            parts = [node.get("schema_name") or "", node.get("table_name") or ""]
            if node.get("catalog_name") not in ("", None, "memory"):
                parts.insert(0, node["catalog_name"])
            self.tables.add(".".join(p for p in parts if p))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            self.ctes.update(str(entry.get("key")) for entry in cte_map.get("map", []))
        for value in node.values():
            self.visit(value)
