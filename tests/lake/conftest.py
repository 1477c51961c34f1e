from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.lake import CurateResult, TableSpec, curate_table
from abasto.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def catalog(settings: Settings) -> SqlCatalog:
    return open_catalog(settings)


@pytest.fixture
def curate(settings: Settings, catalog: SqlCatalog) -> Callable[..., CurateResult]:
    def run(spec: TableSpec, **kw: object) -> CurateResult:
        return curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri, **kw)  # type: ignore[arg-type]

    return run
