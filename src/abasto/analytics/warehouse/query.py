"""Read-only SQL on the marts file (``abasto warehouse query``).

The statement passes the SQL endpoint's check (:func:`abasto.analytics.statements.analyse`: one
read-only statement, no file-reading table functions) and runs on a read-only connection with
external access off, so nothing can write to the marts or read other files.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from abasto.analytics.statements import analyse
from abasto.analytics.warehouse.build import marts_path
from abasto.analytics.warehouse.marts import SCHEMA
from abasto.errors import AccessDeniedError, InvalidInputError, NotFoundError
from abasto.settings import Settings, load_settings

__all__ = ["query_marts"]


def query_marts(sql: str, *, settings: Settings | None = None, path: Path | None = None) -> pa.Table:
    """Run one read-only statement on the marts (tables ``marts.<mart>``, or unqualified).

    Raises:
        NotFoundError: the marts were never built.
        AccessDeniedError: the statement writes, or reads files.
        InvalidInputError: the SQL is malformed or fails.
    """
    path = path or marts_path(settings or load_settings())
    if not path.is_file():
        raise NotFoundError(f"no marts at {path}", hint="run `abasto warehouse build`")
    analyse(sql)
    con = duckdb.connect(
        str(path),
        read_only=True,
        config={"enable_external_access": False, "autoinstall_known_extensions": False},
    )
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET search_path = '{SCHEMA}'")
        return con.execute(sql).to_arrow_table()
    except duckdb.PermissionException as exc:
        raise AccessDeniedError(f"query refused: {exc}") from exc
    except duckdb.Error as exc:
        raise InvalidInputError(f"query failed: {exc}") from exc
    finally:
        con.close()
