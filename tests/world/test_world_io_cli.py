"""Parquet round trip, the manifest, and the ``abasto generate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from abasto.cli import app
from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.world import TABLE_NAMES, World


def test_save_load_round_trip(tiny_world: World, tmp_path: Path) -> None:
    out = tiny_world.save(tmp_path / "w")
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(f"{n}.parquet" for n in TABLE_NAMES)
    assert not list(out.glob("*.tmp"))
    loaded = World.load(out)
    assert loaded.equals(tiny_world)
    assert loaded.live_start == tiny_world.live_start and loaded.horizon_end == tiny_world.horizon_end
    manifest = json.loads((out / "world.json").read_text())
    assert manifest["seed"] == 3 and manifest["stores"] == 8 and manifest["timezone"] == "America/Mexico_City"
    assert manifest["live_day"] == tiny_world.live_day.isoformat()
    assert manifest["rows"]["hourly"] == tiny_world.hourly.num_rows
    assert pq.read_schema(out / "hourly.parquet").field("stockout_at").type.tz == "UTC"


def test_load_errors(tiny_world: World, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no generated world") as missing:
        World.load(tmp_path / "nothing")
    assert missing.value.hint is not None and "abasto generate" in missing.value.hint
    out = tiny_world.save(tmp_path / "w")
    (out / "orders.parquet").unlink()
    with pytest.raises(NotFoundError, match="orders"):
        World.load(out)
    manifest = json.loads((out / "world.json").read_text())
    (out / "world.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(InvalidInputError, match="format_version"):
        World.load(out)


def test_summary_is_json_ready(tiny_world: World) -> None:
    summary = tiny_world.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["stores"] == 8 and sum(summary["stores_by_channel"].values()) == 8
    assert summary["live_sale_units"] > 0


def test_cli_generate_with_scale(tmp_path: Path) -> None:
    out = tmp_path / "world"
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--seed",
            "5",
            "--stores",
            "4",
            "--skus",
            "5",
            "--days",
            "7",
            "--scale",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stockout rate" in result.output and "live day" in result.output
    world = World.load(out)
    assert world.meta.stores == 8 and world.stores.num_rows == 8  # --scale 2 doubles the stores
    assert world.meta.seed == 5 and world.skus.num_rows == 5 and world.meta.history_days == 7


def test_cli_defaults_to_the_settings_world_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABASTO_CONFIG", raising=False)
    monkeypatch.setenv("ABASTO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ABASTO_WORLD__STORES", "3")
    result = CliRunner().invoke(app, ["generate", "--skus", "4", "--days", "7", "--horizon-days", "1"])
    assert result.exit_code == 0, result.output
    world = World.load(tmp_path / "home" / "world")
    assert world.stores.num_rows == 3 and world.meta.horizon_days == 1


def test_cli_rejects_bad_sizes(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--days", "3", "--out", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "history_days" in str(result.exception)
