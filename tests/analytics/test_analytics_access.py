from __future__ import annotations

import pytest

from abasto.analytics import authorize
from abasto.analytics.statements import analyse
from abasto.errors import AccessDeniedError


@pytest.mark.parametrize(
    ("principal", "action", "resource", "allowed"),
    [
        ("analyst", "read", "curated.sellout_hourly", True),
        ("analyst", "read", "raw.sales_db", False),
        ("data_engineer", "read", "raw.sales_db", True),
        ("planner", "read", "marts.fact_sales", True),
        ("planner", "read", "curated.customers", False),
        ("planner", "query", "sql", True),
        ("nobody", "query", "sql", False),
        ("", "read", "curated.customers", False),
        ("analyst", "write", "curated.customers", False),
        ("analyst", "read", "stores", False),
    ],
)
def test_authorize_denies_by_default(principal: str, action: str, resource: str, allowed: bool) -> None:
    decision = authorize(principal, action, resource)
    assert decision.allowed is allowed
    assert decision.reason


def test_custom_profiles_replace_the_default() -> None:
    assert authorize("auditor", "read", "curated.x", profiles={"auditor": frozenset({"curated"})}).allowed
    assert not authorize("analyst", "read", "curated.x", profiles={}).allowed


def test_analyse_names_tables_not_ctes() -> None:
    q = analyse(
        "WITH a AS (SELECT * FROM curated.orders) SELECT * FROM a JOIN curated.order_lines USING (order_id) "
        "WHERE EXISTS (SELECT 1 FROM marts.dim_store)"
    )
    assert q.tables == ("curated.order_lines", "curated.orders", "marts.dim_store")
    assert analyse("EXPLAIN SELECT * FROM memory.curated.products").tables == ("curated.products",)
    assert analyse("SHOW TABLES").tables == ()


def test_analyse_refuses_unanalysable_statements() -> None:
    with pytest.raises(AccessDeniedError, match="pragma_version"):
        analyse("PRAGMA version")
    with pytest.raises(AccessDeniedError, match="glob"):
        analyse("SELECT * FROM curated.products WHERE sku IN (SELECT file FROM glob('/*'))")
