"""MLflow registry: register → load, four-eyes approval, champion alias, pyfunc serving, CLI."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from ml_synthetic import TZ, make_world, to_arrow
from mlflow.artifacts import download_artifacts
from typer.testing import CliRunner

from abasto.cli import app
from abasto.errors import AccessDeniedError, NotFoundError
from abasto.ml import registry
from abasto.ml.pattern import PatternModel, fit_pattern
from abasto.settings import Settings, load_settings

LOCAL = ZoneInfo(TZ)
LINEAGE = {"table": "curated.sellout_hourly", "snapshot_id": 4242}


def _settings(home: Path, model_name: str) -> Settings:
    return load_settings(home=home, ml={"tracking_uri": "", "model_name": model_name})


@pytest.fixture(scope="module")
def model() -> PatternModel:
    return fit_pattern(make_world(stores=3, skus=2, weeks=3).history, timezone=TZ)


def _same_predictions(a: PatternModel, b: PatternModel) -> None:
    start = datetime(2026, 7, 1, 9, 30, tzinfo=LOCAL)
    assert sorted(a.series_keys()) == sorted(b.series_keys())
    for key in a.series_keys():
        assert b.hour_of_week_rates(*key) == pytest.approx(a.hour_of_week_rates(*key))
        for hours in (0.5, 7.0, 50.0):
            end = start + timedelta(hours=hours)
            assert b.expected_units(*key, start, end) == pytest.approx(a.expected_units(*key, start, end))
            assert b.prob_demand_at_least(*key, start, end, 5) == pytest.approx(
                a.prob_demand_at_least(*key, start, end, 5)
            )


def test_register_then_load_by_version(mlflow_home: Path, model: PatternModel) -> None:
    settings = _settings(mlflow_home, "round-trip")
    metrics, params = {"wape_pattern": 0.5}, {"timezone": TZ}
    info = registry.register(model, metrics, params, LINEAGE, "ana", settings=settings)
    assert (info.version, info.trained_by, info.approved_by, info.aliases) == ("1", "ana", None, ())
    assert info.lineage == {"table": "curated.sellout_hourly", "snapshot_id": "4242"}
    assert info.metrics == {"wape_pattern": 0.5}
    loaded = registry.load("1", settings=settings)
    assert loaded.version == "1"
    _same_predictions(model, loaded)
    # artifacts live under settings.mlflow_artifacts_dir
    assert list(settings.mlflow_artifacts_dir.rglob("pattern.parquet"))
    with pytest.raises(NotFoundError, match="no version '7'"):
        registry.load("7", settings=settings)


def test_four_eyes_approval_and_champion(mlflow_home: Path, model: PatternModel) -> None:
    settings = _settings(mlflow_home, "approval")
    assert registry.list_versions(settings=settings) == []
    with pytest.raises(NotFoundError, match="no approved") as no_champion:
        registry.load(settings=settings)
    assert no_champion.value.hint and "approve" in no_champion.value.hint

    v1 = registry.register(model, {}, {}, LINEAGE, "ana", settings=settings)
    with pytest.raises(NotFoundError, match="no approved"):
        registry.load(settings=settings)
    for same_person in ("ana", " ANA "):
        with pytest.raises(AccessDeniedError, match="four-eyes") as denied:
            registry.approve(v1.version, same_person, settings=settings)
        assert "trained" in str(denied.value)
    approved = registry.approve(v1.version, "beto", settings=settings)
    assert approved.is_champion and approved.approved_by == "beto"
    assert registry.load(settings=settings).version == "1"

    other = fit_pattern(make_world(stores=2, skus=2, weeks=2, seed=3).history, timezone=TZ)
    v2 = registry.register(other, {}, {}, LINEAGE, "carla", settings=settings)
    assert registry.load(settings=settings).version == "1"  # a new version is not the champion yet
    registry.approve(v2.version, "ana", settings=settings)
    champion = registry.load(settings=settings)
    assert champion.version == "2"
    _same_predictions(other, champion)
    listed = registry.list_versions(settings=settings)
    assert [(v.version, v.trained_by, v.approved_by, v.is_champion) for v in listed] == [
        ("1", "ana", "beto", False),
        ("2", "carla", "ana", True),
    ]
    with pytest.raises(NotFoundError):
        registry.approve("9", "beto", settings=settings)


def test_registered_pyfunc_serves_invocations(mlflow_home: Path, model: PatternModel) -> None:
    settings = _settings(mlflow_home, "serving")
    info = registry.register(model, {}, {}, LINEAGE, "ana", settings=settings)
    source = f"{settings.mlflow_artifacts_dir.as_uri()}/{info.run_id}/artifacts/model"
    local = download_artifacts(artifact_uri=source, dst_path=str(mlflow_home / "dl"))
    served = mlflow.pyfunc.load_model(local)
    start = datetime(2026, 7, 1, 12, tzinfo=LOCAL)
    end = start + timedelta(hours=6, minutes=30)
    store, sku = model.series_keys()[0]
    request = pd.DataFrame(
        {
            "store_id": [store, "nowhere"],
            "sku": [sku, sku],
            "start": [start.isoformat()] * 2,
            "end": [end.isoformat()] * 2,
            "units": [4.0, 1.0],
        }
    )
    answer = served.predict(request)
    expected = model.expected_units(store, sku, start, end)
    assert answer["expected_units"].tolist() == pytest.approx([expected, 0.0])
    assert answer["prob_demand_at_least"].tolist() == pytest.approx(
        [model.prob_demand_at_least(store, sku, start, end, 4), 0.0]
    )


def test_cli_train_list_approve(mlflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = make_world(stores=3, skus=2, weeks=4).history
    path = tmp_path / "history.parquet"
    pq.write_table(to_arrow(history), path)
    monkeypatch.setenv("ABASTO_HOME", str(mlflow_home))
    monkeypatch.setenv("ABASTO_ML__MODEL_NAME", "cli")
    monkeypatch.delenv("ABASTO_ML__TRACKING_URI", raising=False)
    runner = CliRunner()

    out = runner.invoke(app, ["model", "list"])
    assert out.exit_code == 0 and "no model version" in out.output
    out = runner.invoke(
        app,
        [
            "model",
            "train",
            "--from-parquet",
            str(path),
            "--timezone",
            TZ,
            "--as",
            "ana",
            "--holdout-days",
            "7",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "registered version 1" in out.output and "hour_of_week_mean" in out.output
    out = runner.invoke(app, ["model", "approve", "1", "--as", "ana"])
    assert isinstance(out.exception, AccessDeniedError)
    out = runner.invoke(app, ["model", "approve", "1", "--as", "beto"])
    assert out.exit_code == 0 and "champion" in out.output
    out = runner.invoke(app, ["model", "list"])
    assert out.exit_code == 0 and "beto" in out.output and "★" in out.output
    info = registry.list_versions(settings=_settings(mlflow_home, "cli"))[0]
    assert info.metrics["wape_pattern"] > 0 and info.lineage["source"] == str(path.resolve())
    assert np.isfinite(info.metrics["mase_pattern"])
