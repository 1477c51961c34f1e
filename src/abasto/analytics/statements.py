"""Which SQL the endpoint accepts: one read-only statement, no file-reading table functions.

Accepted: ``SELECT``/``WITH``/``FROM``…, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` and ``EXPLAIN`` of
those. Refused with a reason: anything that writes, attaches, sets, copies or installs, several
statements at once, and table functions other than generators (``read_parquet``, ``glob``,
``iceberg_scan``… would bypass the governed ``<zone>.<table>`` views).

The check works on DuckDB's own parse tree (``json_serialize_sql``), which also names every table
the statement reads, so authorization sees exactly what will be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import duckdb

from abasto.errors import AccessDeniedError, InvalidInputError

__all__ = ["ALLOWED_TABLE_FUNCTIONS", "ReadOnlyQuery", "analyse"]

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
_EXPLAIN = re.compile(r"^\s*explain\s+(?:analyze\s+|\([^)]*\)\s*)?", re.IGNORECASE)
_READ_ONLY_HELP = "the SQL endpoint is read-only: SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN"


@dataclass(frozen=True)
class ReadOnlyQuery:
    """An accepted statement and the tables it reads (``schema.table``, or a bare name/path)."""

    sql: str
    tables: tuple[str, ...]


def analyse(sql: str) -> ReadOnlyQuery:
    """Accept ``sql`` and name the tables it reads, or say why it is refused.

    Raises:
        InvalidInputError: empty, unparsable, or more than one statement.
        AccessDeniedError: the statement is not read-only or reads files directly.
    """
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


def _parse_tree(query: str) -> dict[str, Any]:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    finally:
        con.close()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
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
