"""DuckDB connections for the SQL endpoint, fully offline.

The ``avro`` and ``iceberg`` extensions are loaded from the files shipped in the
``duckdb-extension-avro`` / ``duckdb-extension-iceberg`` wheels (avro first: iceberg needs it to
read manifests). Automatic install and autoload of extensions are off, so DuckDB never reaches the
network. :func:`lock_down` then confines file access to the warehouse and freezes the settings.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import duckdb

from abasto.errors import ConfigError

__all__ = ["EXTENSIONS", "connect", "extension_path", "lock_down"]

#: load order matters: iceberg reads its manifests with avro
EXTENSIONS = ("avro", "iceberg")


def extension_path(name: str) -> Path:
    """The extension file shipped in the ``duckdb-extension-<name>`` wheel for this DuckDB.

    Raises:
        ConfigError: the wheel is not installed, or not for this DuckDB version.
    """
    version = duckdb.__version__
    hint = f"pip install duckdb-extension-{name}=={version}"
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise ConfigError(f"DuckDB extension {name!r} is not installed", hint=hint) from exc
    base = Path(module.__file__ or "").parent
    path = base / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ConfigError(f"no {name} extension for DuckDB {version} under {base}", hint=hint)
    return path


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with avro + iceberg loaded from the wheels; time zone UTC."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )
    try:
        for name in EXTENSIONS:
            con.execute(f"LOAD '{_sql_string(str(extension_path(name)))}'")
        con.execute("SET TimeZone = 'UTC'")
    except BaseException:
        con.close()
        raise
    return con


def lock_down(con: duckdb.DuckDBPyConnection, allowed_directories: Sequence[str]) -> None:
    """Allow file access only under ``allowed_directories`` and freeze every setting."""
    dirs = ", ".join(f"'{_sql_string(d.rstrip('/') + '/')}'" for d in allowed_directories)
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
