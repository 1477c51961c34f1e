"""The generated world: its tables (pyarrow) and the dates that split history, live day and horizon."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from abasto.errors import InvalidInputError, NotFoundError
from abasto.world.stats import summarize
from abasto.world.tables import SCHEMAS, TABLE_NAMES
from abasto.world.timegrid import local_midnight_utc

MANIFEST: Final = "world.json"
FORMAT_VERSION: Final = 1
DEFAULT_TIMEZONE: Final = "America/Mexico_City"


@dataclass(frozen=True, slots=True)
class WorldMeta:
    seed: int
    stores: int
    skus: int
    history_days: int
    horizon_days: int
    start_date: date
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True, eq=False)
class World:
    """gaseosas SA's synthetic world. Tables are ``pyarrow.Table`` with the schemas of
    :data:`abasto.world.tables.SCHEMAS`; timestamps are UTC, dates are local (``timezone``)."""

    meta: WorldMeta
    tables: Mapping[str, Any]

    # --- time ------------------------------------------------------------------------------
    @property
    def timezone(self) -> str:
        return self.meta.timezone

    @property
    def start_date(self) -> date:
        return self.meta.start_date

    @property
    def live_day(self) -> date:
        """The day the devices stream (the day after the history)."""
        return self.meta.start_date + timedelta(days=self.meta.history_days)

    @property
    def last_day(self) -> date:
        """The last horizon day (inclusive)."""
        return self.live_day + timedelta(days=self.meta.horizon_days)

    def _midnight(self, day: date) -> datetime:
        return local_midnight_utc(day, ZoneInfo(self.meta.timezone))

    @property
    def history_start(self) -> datetime:
        return self._midnight(self.meta.start_date)

    @property
    def history_end(self) -> datetime:
        """Exclusive end of history = local midnight starting the live day (UTC instant)."""
        return self._midnight(self.live_day)

    @property
    def live_start(self) -> datetime:
        return self._midnight(self.live_day)

    @property
    def live_end(self) -> datetime:
        return self._midnight(self.live_day + timedelta(days=1))

    @property
    def horizon_end(self) -> datetime:
        """Exclusive end of the ground truth (local midnight after the last horizon day)."""
        return self._midnight(self.last_day + timedelta(days=1))

    # --- tables ----------------------------------------------------------------------------
    def table(self, name: str) -> Any:
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(TABLE_NAMES)
            raise NotFoundError(f"the world has no table {name!r}; tables: {known}") from None

    @property
    def regions(self) -> Any:
        return self.table("regions")

    @property
    def reps(self) -> Any:
        return self.table("reps")

    @property
    def routes(self) -> Any:
        return self.table("routes")

    @property
    def stores(self) -> Any:
        return self.table("stores")

    @property
    def skus(self) -> Any:
        return self.table("skus")

    @property
    def assortment(self) -> Any:
        return self.table("assortment")

    @property
    def weather(self) -> Any:
        return self.table("weather")

    @property
    def calendar(self) -> Any:
        return self.table("calendar")

    @property
    def promotions(self) -> Any:
        return self.table("promotions")

    @property
    def hourly(self) -> Any:
        return self.table("hourly")

    @property
    def orders(self) -> Any:
        return self.table("orders")

    @property
    def order_lines(self) -> Any:
        return self.table("order_lines")

    @property
    def deliveries(self) -> Any:
        return self.table("deliveries")

    @property
    def visit_analyses(self) -> Any:
        return self.table("visit_analyses")

    @property
    def stockout_episodes(self) -> Any:
        return self.table("stockout_episodes")

    @property
    def cooler_faults(self) -> Any:
        return self.table("cooler_faults")

    def equals(self, other: World) -> bool:
        """Same metadata and identical tables (values and schemas)."""
        return self.meta == other.meta and set(self.tables) == set(other.tables) and all(
            self.tables[n].equals(other.tables[n]) for n in self.tables
        )

    # --- files -----------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        m = self.meta
        return {
            "format_version": FORMAT_VERSION,
            "seed": m.seed,
            "stores": m.stores,
            "skus": m.skus,
            "history_days": m.history_days,
            "horizon_days": m.horizon_days,
            "start_date": m.start_date.isoformat(),
            "timezone": m.timezone,
            "live_day": self.live_day.isoformat(),
            "history_end": self.history_end.isoformat(),
            "horizon_end": self.horizon_end.isoformat(),
            "rows": {name: self.tables[name].num_rows for name in TABLE_NAMES if name in self.tables},
        }

    def save(self, directory: Path) -> Path:
        """Write one Parquet file per table and ``world.json``; each file appears atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        for name in TABLE_NAMES:
            path = directory / f"{name}.parquet"
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(self.tables[name], tmp, compression="zstd")
            os.replace(tmp, path)
        tmp = directory / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(self.manifest(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, directory / MANIFEST)
        return directory

    @classmethod
    def load(cls, directory: Path) -> World:
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise NotFoundError(
                f"no generated world in {directory} (missing {MANIFEST})", hint="run `abasto generate` first"
            )
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        if raw.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(
                f"{manifest_path}: format_version {raw.get('format_version')!r}, expected {FORMAT_VERSION}",
                hint="regenerate the world with `abasto generate`",
            )
        meta = WorldMeta(
            seed=int(raw["seed"]),
            stores=int(raw["stores"]),
            skus=int(raw["skus"]),
            history_days=int(raw["history_days"]),
            horizon_days=int(raw["horizon_days"]),
            start_date=date.fromisoformat(raw["start_date"]),
            timezone=str(raw["timezone"]),
        )
        tables: dict[str, Any] = {}
        for name in TABLE_NAMES:
            path = directory / f"{name}.parquet"
            if not path.is_file():
                raise NotFoundError(
                    f"world table {name} is missing in {directory}", hint="regenerate the world"
                )
            table = pq.read_table(path)
            if not table.schema.equals(SCHEMAS[name]):
                table = table.cast(SCHEMAS[name])
            tables[name] = table
        return cls(meta=meta, tables=tables)

    def summary(self) -> dict[str, Any]:
        """Sizes, dates and measured statistics (stockout rate, live-day episodes...), JSON-ready."""
        return summarize(self)

