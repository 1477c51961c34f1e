from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from abasto.analytics.duckdb_env import EXTENSIONS, connect, extension_path, lock_down
from abasto.errors import ConfigError


def test_extensions_load_from_the_wheels_offline(tmp_path: Path) -> None:
    con = connect()
    try:
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('autoinstall_known_extensions', "
                "'autoload_known_extensions', 'allow_community_extensions', 'TimeZone')"
            ).fetchall()
        )
        assert settings == {
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "allow_community_extensions": "false",
            "TimeZone": "UTC",
        }
        loaded = dict(
            con.execute("SELECT extension_name, installed FROM duckdb_extensions() WHERE loaded").fetchall()
        )
        assert {"avro", "iceberg"} <= set(loaded)
        assert not loaded["iceberg"] and not loaded["avro"]  # loaded from the wheel file, never installed
        # with autoload off an extension that is not loaded stays unavailable instead of downloading
        with pytest.raises(duckdb.Error, match="sqlite"):
            con.execute("SELECT * FROM sqlite_scan('x.db', 't')")
        with pytest.raises(duckdb.Error, match=r"(?i)httpfs|http"):
            con.execute("SELECT * FROM read_parquet('https://example.invalid/x.parquet')")
    finally:
        con.close()
    for name in EXTENSIONS:
        path = extension_path(name)
        assert path.is_file() and path.parent.name == f"v{duckdb.__version__}"


def test_missing_extension_wheel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        extension_path("nope")


def test_lock_down_confines_files_and_freezes_settings(tmp_path: Path) -> None:
    inside, outside = tmp_path / "wh", tmp_path / "other"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.csv").write_text("a\n1\n")
    (outside / "secret.csv").write_text("a\n2\n")
    con = connect()
    try:
        lock_down(con, [str(inside)])
        assert con.execute(f"SELECT a FROM read_csv('{inside / 'ok.csv'}')").fetchall() == [(1,)]
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT a FROM read_csv('{outside / 'secret.csv'}')")
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
    finally:
        con.close()
