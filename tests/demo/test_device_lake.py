"""The demo's lakehouse figures: units the devices sent, CDC quality summed across tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from abasto.contracts.events import DeviceEvent, SaleScan, StockReading
from abasto.demo.device_lake import DeviceTableFigures, LakehouseSummary, _ts, cdc_quality, units_sent
from abasto.errors import InvalidInputError
from abasto.lake import CurateResult
from abasto.lake.quality import QualityReport

START = datetime(2026, 10, 1, 6, tzinfo=UTC)
END = START + timedelta(days=1)


def _sale(device: str, seq: int, qty: int, at: datetime = START) -> DeviceEvent:
    return DeviceEvent(device, "S0001", seq, at, SaleScan("COLA-600-NR", qty, 16.0))


def test_units_sent_sums_distinct_sales_of_the_day() -> None:
    events = [
        _sale("D1", 1, 2),
        _sale("D1", 1, 2),  # re-sent copy: counted once
        _sale("D2", 1, 3, START + timedelta(hours=5)),
        DeviceEvent("D1", "S0001", 2, START, StockReading("COLA-600-NR", 40)),  # not a sale
        _sale("D1", 3, 7, START - timedelta(microseconds=1)),  # before the day
        _sale("D1", 4, 11, END),  # end is exclusive
    ]
    assert units_sent(events, START, END) == 5
    assert units_sent([], START, END) == 0


def _result(
    table: str, checked: int, passed: int, failures: dict[str, int], unreadable: int = 0
) -> CurateResult:
    report = QualityReport(
        table, checked, passed, failures, {}, {f"cdc/x/{i}.parquet": "not Parquet" for i in range(unreadable)}
    )
    return CurateResult(table, 1, checked, passed, 0, None, 0.1, report)


def test_cdc_quality_sums_reports_across_tables() -> None:
    results = [
        _result("curated.orders", 10, 8, {"known:store_id": 2}),
        _result(
            "curated.order_lines", 20, 19, {"known:store_id": 0, "non_negative:qty_ordered": 1}, unreadable=1
        ),
        _result("curated.products", 5, 5, {}),
        CurateResult("curated.routes", 0, 0, 0, 0, None, 0.0, None),  # nothing pending: no report
    ]
    q = cdc_quality(results)
    assert q["tables"] == 4
    assert q["rows_checked"] == 35
    assert q["rows_quarantined"] == 3
    assert q["failures"] == {"known:store_id": 2, "non_negative:qty_ordered": 1}
    assert q["unreadable_files"] == 1
    assert q["by_table"] == {"curated.order_lines": 2, "curated.orders": 2}


def test_summary_flags_a_units_mismatch() -> None:
    def summary(units_sold: int) -> LakehouseSummary:
        return LakehouseSummary({}, DeviceTableFigures(3, 4, units_sold, 0), 10, cdc_quality([]))

    assert summary(10).as_dict()["units_match"] is True
    out = summary(9).as_dict()
    assert out["units_match"] is False
    assert (out["units_sold_sales_by_hour"], out["units_sent_by_devices"]) == (9, 10)


def test_sql_bound_needs_an_aware_timestamp() -> None:
    assert _ts(START) == "TIMESTAMPTZ '2026-10-01T06:00:00+00:00'"
    with pytest.raises(InvalidInputError, match="naive"):
        _ts(datetime(2026, 10, 1, 6))
