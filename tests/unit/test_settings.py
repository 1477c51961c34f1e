from pathlib import Path

import pytest

from abasto.errors import ConfigError
from abasto.settings import load_settings


def test_precedence_defaults_toml_env_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().nats.port == 14222  # default
    (tmp_path / "abasto.toml").write_text("[nats]\nport = 20001\nmqtt_port = 20002\n")
    s = load_settings()
    assert (s.nats.port, s.nats.mqtt_port) == (20001, 20002)  # TOML over default
    monkeypatch.setenv("ABASTO_NATS__PORT", "20003")
    s = load_settings()
    assert (s.nats.port, s.nats.mqtt_port) == (20003, 20002)  # env over TOML, TOML kept elsewhere
    assert load_settings(nats={"port": 20004}).nats.port == 20004  # explicit over env


def test_explicit_config_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABASTO_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings()


def test_invalid_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABASTO_WORLD__STORES", "zero")
    with pytest.raises(ConfigError, match=r"world\.stores"):
        load_settings()


def test_derived_locations_live_under_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    assert s.pg_data_dir == (tmp_path / "h" / "postgres").resolve()
    assert s.warehouse_uri.startswith("file://") and s.warehouse_uri.endswith("/h/lake/curated")
    assert s.catalog_uri == f"sqlite:///{(tmp_path / 'h' / 'lake' / 'catalog.db').resolve()}"


def test_external_urls_override_embedded() -> None:
    s = load_settings(postgres={"url": "postgresql://u:secret@db.example:5432/sales"})
    assert s.postgres.dsn() == "postgresql://u:secret@db.example:5432/sales"
    assert "secret" not in repr(s.postgres)
    assert load_settings(nats={"url": "nats://n1:4222"}).nats.client_url() == "nats://n1:4222"
