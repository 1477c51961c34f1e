"""The realtime and lakehouse benchmark suites run (``--quick``) and report every figure with its limit."""

from __future__ import annotations

import math

import pytest

from abasto.benchmarks.runner import SUITES, as_json, run_suites

pytestmark = [pytest.mark.slow, pytest.mark.services]

EXPECTED = {
    "realtime": (
        "processor_events_per_s",
        "batched_end_to_end_events_per_s",
        "alert_latency_p50_ms",
        "alert_latency_p99_ms",
        "mqtt_ingest_events_per_s",
        "state_memory_mb_per_100k_keys",
    ),
    "lakehouse": (
        "cdc_changes_per_s",
        "cdc_lag_p95_s",
        "curate_rows_per_s",
        "sql_dashboard_query_ms",
        "sql_overhead_fraction",
    ),
}


@pytest.mark.parametrize("suite", sorted(EXPECTED))
def test_quick_suite_reports_each_figure_beside_its_limit(suite: str) -> None:
    assert suite in SUITES
    out = as_json(run_suites([suite], quick=True))
    assert out["engine_build"] in ("mypyc", "python")
    for key in EXPECTED[suite]:
        value = out[key]
        assert isinstance(value, int | float), key
        assert math.isfinite(value), key
        assert out[f"{key}__limit"] > 0, key
        assert math.isfinite(out[f"{key}__ratio"]), key
        if key != "sql_overhead_fraction":  # may be ≤ 0 when the governed path is as fast as plain
            assert value > 0, key
