"""The per-store MQTT credentials registry: a private JSON file under the abasto home."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest

from abasto.devices import CredentialRegistry
from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


def test_round_trip_and_private_file(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    created = registry.register_stores(["S0001", "S0002"])
    assert set(created) == {"S0001", "S0002"}
    s1 = created["S0001"]
    assert s1.username == "store-S0001"
    assert len(s1.password) >= 32 and s1.password != created["S0002"].password
    assert bcrypt.checkpw(s1.password.encode(), s1.password_bcrypt.encode())
    assert s1.topic("D7") == "pos/S0001/D7"
    assert s1.publish_subjects == ("pos.S0001", "pos.S0001.>")
    assert s1.password not in repr(s1)

    assert registry.path.is_relative_to(settings.home_dir)
    assert stat.S_IMODE(registry.path.stat().st_mode) == 0o600
    # a fresh instance (another process) reads the same credentials
    again = CredentialRegistry(settings)
    assert again.get("S0001") == s1
    assert [c.store_id for c in again.list()] == ["S0001", "S0002"]


def test_register_is_idempotent_and_keeps_existing_passwords(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    first = registry.register_stores(["S0001"])["S0001"]
    mtime = registry.path.stat().st_mtime_ns
    assert registry.register_stores(["S0001"])["S0001"] == first
    assert registry.path.stat().st_mtime_ns == mtime  # nothing new: file not rewritten
    both = registry.register_stores(["S0002", "S0001"])
    assert both["S0001"] == first


def test_revoke_and_unknown_store(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    registry.register_stores(["S0001", "S0002"])
    registry.revoke("S0001")
    assert [c.store_id for c in registry.list()] == ["S0002"]
    with pytest.raises(NotFoundError, match="S0001") as err:
        registry.get("S0001")
    assert err.value.hint and "abasto devices add S0001" in err.value.hint
    with pytest.raises(NotFoundError, match="S0001"):
        registry.revoke("S0001")
    assert CredentialRegistry(settings).list() == registry.list()


@pytest.mark.parametrize("bad", ["", "S.1", "S/1", "S*", "a b", "S#", "S+", ">", "-S1", "x" * 65])
def test_store_ids_must_be_subject_and_topic_safe(settings: Settings, bad: str) -> None:
    registry = CredentialRegistry(settings)
    with pytest.raises(InvalidInputError, match="store id"):
        registry.register_stores(["S0001", bad])
    assert registry.list() == []  # all or nothing


def test_corrupt_registry_is_a_config_error_naming_the_file(settings: Settings) -> None:
    registry = CredentialRegistry(settings)
    registry.register_stores(["S0001"])
    registry.path.write_text("{not json")
    with pytest.raises(ConfigError, match=str(registry.path)) as err:
        registry.list()
    assert err.value.hint
    registry.path.write_text(json.dumps({"version": 1, "stores": {"S1": {"username": "store-S1"}}}))
    with pytest.raises(ConfigError):
        registry.get("S1")


def test_concurrent_registrations_are_all_kept(settings: Settings) -> None:
    ids = [f"S{i:04d}" for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: CredentialRegistry(settings).register_stores([i]), ids))
    assert [c.store_id for c in CredentialRegistry(settings).list()] == ids
