"""Fixtures of the ML tests: real FreshRetailNet-50K hours (see ml_frn.py: Dingdong-Inc, CC BY 4.0,
arXiv:2505.16319) and one shared MLflow home."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ml_frn import FRN_STORES, frn_dir, load_frn


@pytest.fixture(scope="session")
def frn_history() -> pd.DataFrame:
    folder = frn_dir()
    if not any(folder.glob("frn50k_dev_hourly_part*.parquet")):
        pytest.skip(f"FreshRetailNet-50K slice not found in {folder} (set ABASTO_FRN_DIR to its folder)")
    return load_frn(folder, FRN_STORES)


@pytest.fixture(scope="session")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ABASTO_HOME for every registry test: MLflow's first SQLite migration takes seconds.

    Tests isolate themselves by model name (``settings.ml.model_name``).
    """
    return tmp_path_factory.mktemp("mlflow-home")
