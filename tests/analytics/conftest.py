from __future__ import annotations

from collections.abc import Iterator

import pytest
from analytics_world import Lake, build_lake

from abasto.analytics import AuditLog, SqlEngine


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Two curated tables; sellout_hourly has two commits (all units 1, then one row updated to 7)."""
    return build_lake(tmp_path_factory.mktemp("analytics") / "home")


@pytest.fixture(scope="module")
def engine(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlEngine]:
    """One engine for the module (opening one loads the extensions); audit log of its own."""
    audit = AuditLog(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    with SqlEngine(lake.settings, catalog=lake.catalog, audit=audit) as eng:
        yield eng
