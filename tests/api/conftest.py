from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_world import Api, Lake, bearer, build_lake, serve

from abasto.analytics import AuditLog, SqlEngine
from abasto.api import ApiLimits, ApiMetrics, TokenStore, create_app


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Two curated tables; sellout_hourly has two commits (all units 1, then one row updated to 7)."""
    return build_lake(tmp_path_factory.mktemp("api") / "home")


@pytest.fixture(scope="module")
def api(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api-state")
    tokens = TokenStore(tmp / "tokens.json", rounds=4)  # low bcrypt cost: tests, not production
    _, analyst = tokens.add("dashboard", "analyst")
    _, planner = tokens.add("planning", "planner")
    audit_path = tmp / "audit.jsonl"
    metrics = ApiMetrics()
    app = create_app(
        lake.settings,
        tokens=tokens,
        engine_factory=lambda: SqlEngine(lake.settings, catalog=lake.catalog, audit=AuditLog(audit_path)),
        limits=ApiLimits(default_rows=100, max_rows=1000, timeout_s=20.0, max_body_bytes=4096),
        metrics=metrics,
    )
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        yield Api(client, lake, tokens, metrics, audit_path, bearer(analyst), bearer(planner))
