"""Data-quality rules on real curate runs: what each rule refuses, what passes, what is reported."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from lake_builders import ORDER_LINES_SCHEMA, SELLOUT_SCHEMA, T0, at
from pyiceberg.catalog.sql import SqlCatalog

import abasto.sources.sales_db as sales_db
from abasto.lake import ALL_TABLES, SALES_TABLES, CurateResult
from abasto.lake.quality import QUARANTINE_TABLE, QualityContext, check_rows, unique_keys
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.lake.table_rules import DOMAINS, TABLE_RULES, rules_for, unique_sorted_keys
from abasto.settings import Settings

Curate = Callable[..., CurateResult]
LINES = SALES_TABLES["order_lines"]
PRODUCTS = SALES_TABLES["products"]
SELLOUT = SALES_TABLES["sellout_hourly"]
NOW = T0 + timedelta(hours=1)


def lines(*rows: tuple[str, int, str | None, int, int | None, str]) -> pa.Table:
    data = [list(c) for c in zip(*rows, strict=True)]
    data[5] = [Decimal(p) for p in data[5]]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(data, ORDER_LINES_SCHEMA, strict=True)],
        schema=ORDER_LINES_SCHEMA,
    )


def products(*skus: str, price: str = "10.00") -> pa.Table:
    return pa.table(
        {"sku": list(skus), "price": pa.array([Decimal(price)] * len(skus), pa.decimal128(10, 2))}
    )


def sellout(*rows: tuple[str, str, int, int, int]) -> pa.Table:
    """(store, sku, hour offset, units sold, on hand at the end)."""
    return pa.Table.from_pylist(
        [
            {
                "store_id": s,
                "sku": k,
                "hour_start": T0 + timedelta(hours=h),
                "units_sold": u,
                "on_hand_end": o,
                "out_of_stock": o == 0,
            }
            for s, k, h, u, o in rows
        ],
        schema=SELLOUT_SCHEMA,
    )


def quarantine(catalog: SqlCatalog) -> list[dict[str, object]]:
    rows = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (str(r["table_name"]), str(r["rule"]), str(r["row_json"])))


def curated(catalog: SqlCatalog, identifier: str) -> dict[tuple[object, ...], dict[str, object]]:
    table = catalog.load_table(identifier)
    keys = table.properties["abasto.keys"].split(",")
    return {tuple(r[k] for k in keys): r for r in table.scan().to_arrow().to_pylist()}


def test_negative_quantities_are_quarantined_and_the_rest_merged(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    raw = write_full_load(
        settings.raw_uri,
        LINES.source,
        lines(
            ("O1", 1, "COLA-600", 10, 10, "12.50"),
            ("O1", 2, "COLA-600", -3, 0, "12.50"),
            ("O2", 1, "LIMA-2L", 4, 4, "-1.00"),
        ),
        lsn=10,
        commit_ts=T0,
    )
    result = curate(LINES, now=NOW, run_id="run-1")

    assert result.quality is not None
    rule = "non_negative:qty_ordered,qty_delivered,unit_price"
    assert result.quality.as_dict() == {
        "table": LINES.identifier,
        "rows_checked": 3,
        "rows_passed": 1,
        "rows_quarantined": 2,
        "failures": {rule: 2},
        "findings": {},
        "unreadable_files": {},
    }
    assert result.rows_upserted == 1 and list(curated(catalog, LINES.identifier)) == [("O1", 1)]
    refused = quarantine(catalog)
    assert [(r["table_name"], r["rule"], r["source_file"], r["run_id"]) for r in refused] == [
        (LINES.identifier, rule, raw.relpath, "run-1")
    ] * 2
    assert refused[0]["detail"] == "qty_ordered, qty_delivered, unit_price must be >= 0"
    images = [json.loads(str(r["row_json"])) for r in refused]
    assert {(i["order_id"], i["line_no"], i["qty_ordered"], i["unit_price"]) for i in images} == {
        ("O1", 2, -3, "12.50"),
        ("O2", 1, 4, "-1.00"),
    }
    assert all(i["_lsn"] == 10 and i["Op"] == "I" for i in images)  # the change record, for lineage


def test_a_refused_update_leaves_the_previous_image_and_the_ledger_moves_on(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(
        settings.raw_uri, LINES.source, lines(("O1", 1, "COLA-600", 10, 10, "12.50")), lsn=10, commit_ts=T0
    )
    curate(LINES, now=NOW)
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O1", 1, "COLA-600", -10, 10, "12.50")),
        ops=["U"],
        lsns=[20],
        commit_ts=at(5),
    )
    refused = curate(LINES, now=NOW)
    assert refused.files == 1 and refused.quality is not None and refused.quality.rows_quarantined == 1
    assert curated(catalog, LINES.identifier)[("O1", 1)]["qty_ordered"] == 10

    again = curate(LINES, now=NOW)  # recorded, not retried
    assert again.files == 0 and again.quality is not None and again.quality.rows_checked == 0
    assert len(quarantine(catalog)) == 1

    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O1", 1, "COLA-600", 8, 8, "12.50")),
        ops=["U"],
        lsns=[30],
        commit_ts=at(6),
    )
    fixed = curate(LINES, now=NOW)  # a fix at the source comes back as an ordinary change
    assert fixed.quality is not None and fixed.quality.rows_passed == 1
    assert curated(catalog, LINES.identifier)[("O1", 1)]["qty_ordered"] == 8


def test_unknown_skus_are_refused_against_curated_products_and_their_pending_changes(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(settings.raw_uri, PRODUCTS.source, products("COLA-600"), lsn=1, commit_ts=T0)
    curate(PRODUCTS, now=NOW)
    # a new product captured with its first order line, not curated yet
    write_cdc(settings.raw_uri, PRODUCTS.source, products("LIMA-2L"), ops=["I"], lsns=[5], commit_ts=at(1))
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(
            ("O1", 1, "COLA-600", 1, 1, "1.00"),
            ("O1", 2, "LIMA-2L", 1, 1, "1.00"),
            ("O1", 3, "GHOST-1L", 1, 1, "1.00"),
            ("O1", 4, None, 1, 1, "1.00"),  # no SKU at all: not_null is not declared for it
        ),
        ops=["I"] * 4,
        lsns=[6] * 4,
        commit_ts=at(1),
    )
    result = curate(LINES, now=NOW)

    assert result.quality is not None and result.quality.failures == {"known:sku": 1}
    assert sorted(curated(catalog, LINES.identifier)) == [("O1", 1), ("O1", 2), ("O1", 4)]
    (row,) = quarantine(catalog)
    assert row["rule"] == "known:sku" and row["detail"] == "sku must be a known skus value"
    assert json.loads(str(row["row_json"]))["sku"] == "GHOST-1L"


def test_references_pass_while_no_domain_is_known(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(
        settings.raw_uri, LINES.source, lines(("O1", 1, "ANY-SKU", 1, 1, "1.00")), lsn=1, commit_ts=T0
    )
    result = curate(LINES, now=NOW)
    assert result.quality is not None and result.quality.rows_passed == 1 and result.quality.failures == {}
    assert not catalog.table_exists(QUARANTINE_TABLE)  # nothing refused: not even created


def test_deletes_are_never_quarantined(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    # curated while no SKU was known (no products table or raw files yet): every reference passed
    rows = sellout(("S1", "OLD-SKU", 0, 3, 5), ("S1", "COLA-600", 0, 2, 7))
    write_full_load(settings.raw_uri, SELLOUT.source, rows, lsn=2, commit_ts=T0)
    curate(SELLOUT, now=NOW)
    assert len(curated(catalog, SELLOUT.identifier)) == 2
    # now the products are known, without OLD-SKU: the delete of its row must still apply
    write_full_load(settings.raw_uri, PRODUCTS.source, products("COLA-600"), lsn=1, commit_ts=T0)
    curate(PRODUCTS, now=NOW)
    gone = sellout(("S1", "OLD-SKU", 0, 0, 0)).set_column(3, "units_sold", pa.nulls(1, pa.int32()))
    write_cdc(settings.raw_uri, SELLOUT.source, gone, ops=["D"], lsns=[3], commit_ts=at(2))
    result = curate(SELLOUT, now=NOW)
    assert result.rows_deleted == 1 and result.quality is not None and result.quality.rows_checked == 0
    assert list(curated(catalog, SELLOUT.identifier)) == [("S1", "COLA-600", T0)]
    assert not catalog.table_exists(QUARANTINE_TABLE)


def test_freshness_is_a_finding_never_a_quarantine(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(settings.raw_uri, LINES.source, lines(("O1", 1, "A", 1, 1, "1.00")), lsn=1, commit_ts=T0)
    stale = curate(LINES, now=T0 + timedelta(days=30))
    assert stale.quality is not None and stale.rows_upserted == 1 and stale.quality.rows_quarantined == 0
    assert set(stale.quality.findings) == {"fresh:_commit_ts"}
    assert "old (limit 2 days" in stale.quality.findings["fresh:_commit_ts"]

    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O1", 2, "A", 1, 1, "1.00")),
        ops=["I"],
        lsns=[2],
        commit_ts=at(1),
    )
    fresh = curate(LINES, now=at(2))
    assert fresh.quality is not None and fresh.quality.findings == {}


def test_reports_add_up_over_several_commits(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    for i in range(3):
        write_cdc(
            settings.raw_uri,
            LINES.source,
            lines(("O1", 2 * i, "A", 1, 1, "1.00"), ("O1", 2 * i + 1, "A", -1, 1, "1.00")),
            ops=["I", "I"],
            lsns=[10 + i] * 2,
            commit_ts=at(i),
        )
    result = curate(LINES, now=NOW, max_files=1)
    assert result.files == 3 and result.quality is not None
    assert (result.quality.rows_checked, result.quality.rows_passed, result.quality.rows_quarantined) == (
        6,
        3,
        3,
    )
    assert sum(result.quality.failures.values()) == 3
    assert len(quarantine(catalog)) == 3


def test_unique_keys_refuses_every_copy_of_a_repeated_key() -> None:
    rows = pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3], "_source_file": ["f1", "f1", "f2"]})
    outcome = check_rows("curated.t", rows, [unique_keys(("k",))], ctx=QualityContext(now=NOW))
    assert outcome.passed.to_pylist() == [{"k": "b", "v": 2}]
    assert outcome.failed["source_file"].to_pylist() == ["f1", "f2"]
    assert outcome.report.failures == {"unique:k": 2}


def _sales_columns() -> dict[str, set[str]]:
    ddl = (Path(sales_db.__file__).parent / "schema.sql").read_text()
    tables: dict[str, set[str]] = {}
    for name, body in re.findall(
        r"CREATE TABLE (?:IF NOT EXISTS )?(?:sales\.)?(\w+)\s*\((.*?)\n\);", ddl, re.S
    ):
        tables[name] = {m for m in re.findall(r"^\s+(\w+)\s+\w", body, re.M)}
    return tables


@pytest.mark.parametrize("name", sorted(SALES_TABLES))
def test_declared_rules_name_real_columns(name: str) -> None:
    columns = _sales_columns()[name]
    spec = SALES_TABLES[name]
    declared = TABLE_RULES[name]
    assert set(declared.non_negative) <= columns
    assert {c for c, _ in declared.references} <= columns
    for _, domain in declared.references:
        assert DOMAINS[domain].column in _sales_columns()[DOMAINS[domain].table]
    names = [r.name for r in rules_for(spec)]
    assert names[:2] == [f"not_null:{','.join(spec.keys)}", f"unique:{','.join(spec.keys)}"]


def test_every_curated_table_has_rules() -> None:
    assert set(TABLE_RULES) == set(ALL_TABLES)


@pytest.mark.parametrize("seed", range(6))
def test_the_linear_unique_rule_agrees_with_the_general_one(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, 60)
    pairs = [(rng.choice("abc"), rng.randint(0, 4)) for _ in range(n)]
    if seed % 2 == 0:
        pairs.sort()  # the merge's layout: the linear pass applies
    rows = pa.table({"k1": [p[0] for p in pairs], "k2": [p[1] for p in pairs]})
    if seed == 4:
        rows = rows.set_column(1, "k2", pa.array([None, *rows["k2"].to_pylist()[1:]], pa.int64()))
    ctx = QualityContext(now=NOW)
    fast, general = unique_sorted_keys(("k1", "k2")), unique_keys(("k1", "k2"))
    assert fast.name == general.name
    expected = general.fails(rows, ctx)
    assert pc.any(expected).as_py()  # 60 draws from 15 values, or sorted with repeats: there are repeats
    assert fast.fails(rows, ctx).to_pylist() == expected.to_pylist()
    distinct = rows.group_by(["k1", "k2"]).aggregate([]).sort_by([("k1", "ascending"), ("k2", "ascending")])
    assert not pc.any(fast.fails(distinct, ctx)).as_py()


def test_the_sql_form_of_each_rule_gives_its_masks_verdicts() -> None:
    import duckdb  # noqa: PLC0415

    from abasto.lake.quality import (  # noqa: PLC0415
        ROW_ID,
        known_values,
        non_negative,
        not_null,
        register_domains,
        rules_case_sql,
    )

    rng = random.Random(3)
    n = 400
    rows = pa.table(
        {
            "store_id": [rng.choice(["S1", "S2", "S9", None]) for _ in range(n)],
            "sku": [rng.choice(["A", "B", "Z", None]) for _ in range(n)],
            "qty": pa.array([rng.choice([-1, 0, 3, None]) for _ in range(n)], pa.int32()),
            "price": [rng.choice([-0.5, 0.0, 2.5, None]) for _ in range(n)],
            "day": pa.array([rng.choice([1, 2, None]) for _ in range(n)], pa.int64()),
            ROW_ID: pa.array(range(n), pa.int64()),
        }
    )
    ctx = QualityContext(domains={"stores": frozenset({"S1", "S2"}), "skus": frozenset({"A", "B"})})
    rules = [
        not_null("sku", "qty"),
        not_null("missing"),  # a column the rows lack: every row fails
        non_negative("qty", "price", "missing"),
        known_values("store_id", "stores"),
        known_values("sku", "skus"),
        known_values("sku", "no_such_domain"),  # passes
        unique_keys(("store_id", "day")),  # nulls group together, as in the mask
    ]
    con = duckdb.connect()
    con.register("t", rows)
    register_domains(con, ctx)
    for rule in rules:
        assert rule.sql is not None
        mask = pc.fill_null(rule.fails(rows, ctx), False).to_pylist()
        got = con.execute(
            f"SELECT coalesce({rule.sql('t', rows.column_names, ctx)}, FALSE) FROM t ORDER BY {ROW_ID}"
        )
        assert [r[0] for r in got.fetchall()] == mask, rule.name
    mixed = [r for r in rules if r.name != "not_null:missing"]
    outcome = check_rows("curated.x", rows, mixed, ctx=ctx)
    case = rules_case_sql("t", rows.column_names, mixed, ctx)
    assigned = Counter(r[0] for r in con.execute(f"SELECT {case} FROM t").fetchall() if r[0] is not None)
    assert dict(assigned) == outcome.report.failures
    assert sum(assigned.values()) == n - outcome.passed.num_rows
    assert con.execute(f"SELECT {rules_case_sql('t', [], [], ctx)}").fetchone() == (None,)
