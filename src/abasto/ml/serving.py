"""The pattern model as an MLflow pyfunc, so any MLflow/SageMaker server can answer ``/invocations``.

Saved as *models from code* (:data:`ENTRY_POINT` is copied into the model; no pickled objects).

Request rows: ``store_id``, ``sku``, ``start``, ``end`` (ISO-8601 instants with offset, or tz-aware
timestamps) and optionally ``units`` (stock on hand). Response rows: ``expected_units``,
``variance`` and, when ``units`` is given, ``prob_demand_at_least`` (the chance of running out).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema

from abasto.errors import InvalidInputError
from abasto.ml.pattern import PatternModel

#: name of the artifact (in the pyfunc's ``artifacts``) that holds the pattern table
PATTERN_ARTIFACT = "pattern"
REQUEST_COLUMNS = ("store_id", "sku", "start", "end")
#: the script MLflow runs to build the pyfunc when loading the model
ENTRY_POINT = Path(__file__).with_name("_pyfunc_model.py")


def signature() -> ModelSignature:
    """The MLflow model signature of the request and response frames."""
    inputs = Schema(
        [
            *(ColSpec("string", c) for c in REQUEST_COLUMNS),
            ColSpec("double", "units", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("double", "expected_units"),
            ColSpec("double", "variance"),
            ColSpec("double", "prob_demand_at_least", required=False),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _instant(value: Any, column: str) -> datetime:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise InvalidInputError(f"{column} must carry a UTC offset, got {value!r}")
    out: datetime = ts.to_pydatetime()
    return out


def score(model: PatternModel, request: pd.DataFrame) -> pd.DataFrame:
    """Answer a request frame (see the module docstring) with one row per request row."""
    missing = [c for c in REQUEST_COLUMNS if c not in request.columns]
    if missing:
        raise InvalidInputError(f"request lacks column(s) {', '.join(missing)}")
    with_units = "units" in request.columns
    rows: list[dict[str, float]] = []
    for rec in request.to_dict("records"):
        store, sku = str(rec["store_id"]), str(rec["sku"])
        start, end = _instant(rec["start"], "start"), _instant(rec["end"], "end")
        out = {
            "expected_units": model.expected_units(store, sku, start, end),
            "variance": model.variance(store, sku, start, end),
        }
        if with_units:
            units = float(rec["units"])
            out["prob_demand_at_least"] = model.prob_demand_at_least(store, sku, start, end, units)
        rows.append(out)
    columns = ["expected_units", "variance", *(["prob_demand_at_least"] if with_units else [])]
    return pd.DataFrame(rows, columns=columns)


class PatternPyfunc(PythonModel):
    """MLflow wrapper: loads the pattern table artifact and scores request frames."""

    def __init__(self) -> None:
        self.model: PatternModel | None = None

    def load_context(self, context: Any) -> None:
        self.model = PatternModel.from_table(pq.read_table(context.artifacts[PATTERN_ARTIFACT]))

    # ``pd.DataFrame`` is a hint MLflow accepts without inferring a schema from it
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.model is None:
            self.load_context(context)
        assert self.model is not None
        return score(self.model, pd.DataFrame(model_input))
