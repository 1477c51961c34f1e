"""Demand model (SageMaker's role): hour-of-week pattern, backtests, MLflow registry.

Submodules: :mod:`abasto.ml.pattern` (fit and model), :mod:`abasto.ml.backtest`,
:mod:`abasto.ml.registry` and :mod:`abasto.ml.serving` (these two import MLflow; the pattern
model does not, so the stream processor does not pay for it).

Importing this package sets quiet defaults for MLflow (no telemetry, no progress bars) before
MLflow is imported; variables already set in the environment win.
"""

import os

for _key, _value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
    os.environ.setdefault(_key, _value)
