import pytest

from abasto.benchmarks.harness import Figure
from abasto.benchmarks.runner import as_json, run_suites
from abasto.errors import InvalidInputError
from abasto.realtime.build import engine_build


def test_unknown_suite_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="nope") as info:
        run_suites(["nope"])
    assert info.value.hint is not None and "events" in info.value.hint


def test_json_reports_each_figure_beside_its_limit() -> None:
    out = as_json([Figure("x_events_per_s", "events/s", 50.0, "raw events/s", 200.0)])
    assert out == {
        "engine_build": engine_build(),
        "x_events_per_s": 50.0,
        "x_events_per_s__limit": 200.0,
        "x_events_per_s__ratio": 0.25,
    }
    assert out["engine_build"] in ("mypyc", "python")


def test_python_m_bench_runs_the_suites_only_as_the_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    # helper processes started with "spawn" import the parent's main module again as __mp_main__
    import runpy  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from abasto.benchmarks import runner  # noqa: PLC0415

    script = str(Path(__file__).parents[2] / "bench" / "__main__.py")

    calls: list[list[str]] = []
    monkeypatch.setattr(runner, "main", lambda argv: calls.append(list(argv)))
    monkeypatch.setattr("sys.argv", ["bench", "events", "--quick"])
    runpy.run_path(script, run_name="__mp_main__")
    assert calls == []
    runpy.run_path(script, run_name="__main__")
    assert calls == [["events", "--quick"]]
