from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.catalog.raw_registry import RawRegistry
from abasto.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def catalog(settings: Settings) -> SqlCatalog:
    return open_catalog(settings)


@pytest.fixture
def registry(settings: Settings) -> RawRegistry:
    return RawRegistry.for_settings(settings)
