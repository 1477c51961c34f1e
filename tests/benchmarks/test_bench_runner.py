import pytest

from abasto.benchmarks.harness import Figure
from abasto.benchmarks.runner import as_json, run_suites
from abasto.errors import InvalidInputError


def test_unknown_suite_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="nope") as info:
        run_suites(["nope"])
    assert info.value.hint is not None and "events" in info.value.hint


def test_json_reports_each_figure_beside_its_limit() -> None:
    out = as_json([Figure("x_events_per_s", "events/s", 50.0, "raw events/s", 200.0)])
    assert out == {"x_events_per_s": 50.0, "x_events_per_s__limit": 200.0, "x_events_per_s__ratio": 0.25}
