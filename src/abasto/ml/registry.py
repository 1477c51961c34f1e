"""MLflow model registry for the pattern model: register, approve (four-eyes), load, list.

Tracking and registry live in ``settings.mlflow_tracking_uri`` (SQLite by default); artifacts under
``settings.mlflow_artifacts_dir``. Each registered version is an MLflow *pyfunc* (see
:mod:`abasto.ml.serving`) whose artifacts hold the pattern table, so it can be served by
``mlflow models serve`` / SageMaker. Versions carry the tags ``abasto.trained_by``,
``abasto.lineage.<key>`` and, once approved, ``abasto.approved_by`` / ``abasto.approved_at``;
the approved version holds the alias :data:`CHAMPION`.

MLflow's telemetry and progress bars are off (see :mod:`abasto.ml`) and its INFO chatter
(database migrations) is lowered to WARNING; warnings and errors still surface.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from abasto import __version__
from abasto.errors import AccessDeniedError, InvalidInputError, NotFoundError
from abasto.ml.pattern import PatternModel
from abasto.ml.serving import ENTRY_POINT, PATTERN_ARTIFACT, signature
from abasto.settings import Settings, load_settings

__all__ = ["CHAMPION", "ModelVersionInfo", "approve", "list_versions", "load", "register"]

CHAMPION = "champion"
EXPERIMENT = "abasto-demand-pattern"
TAG_TRAINED_BY = "abasto.trained_by"
TAG_APPROVED_BY = "abasto.approved_by"
TAG_APPROVED_AT = "abasto.approved_at"
TAG_LINEAGE = "abasto.lineage."
MODEL_DIR = "model"
_PATTERN_FILE = "pattern.parquet"

_CHATTY_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.model_registry", "mlflow.models.model")


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    run_id: str | None
    trained_by: str | None
    approved_by: str | None
    aliases: tuple[str, ...]
    created_at: datetime
    lineage: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases


def _client(settings: Settings) -> MlflowClient:
    for logger in _CHATTY_LOGGERS:
        logging.getLogger(logger).setLevel(logging.WARNING)
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _registered_model(client: MlflowClient, name: str) -> RegisteredModel | None:
    """The registered model ``name``, or None if it was never registered."""
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise


def _experiment_id(client: MlflowClient, settings: Settings) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return str(exp.experiment_id)
    settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(EXPERIMENT, artifact_location=settings.mlflow_artifacts_dir.as_uri()))


def _info(
    client: MlflowClient, mv: ModelVersion, aliases: Mapping[str, str] | None = None
) -> ModelVersionInfo:
    """``aliases`` (alias → version) of the registered model; else those ``mv`` carries."""
    tags: dict[str, str] = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    if mv.run_id:
        try:
            metrics = dict(client.get_run(mv.run_id).data.metrics)
        except MlflowException as exc:  # the run may have been deleted
            if not _is_missing(exc):
                raise
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        trained_by=tags.get(TAG_TRAINED_BY),
        approved_by=tags.get(TAG_APPROVED_BY),
        aliases=(
            tuple(getattr(mv, "aliases", ()) or ())
            if aliases is None
            else tuple(a for a, v in aliases.items() if str(v) == str(mv.version))
        ),
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
        lineage={k.removeprefix(TAG_LINEAGE): v for k, v in tags.items() if k.startswith(TAG_LINEAGE)},
        metrics=metrics,
    )


def _save_pyfunc(model: PatternModel, workdir: Path) -> Path:
    table_path = workdir / _PATTERN_FILE
    pq.write_table(model.to_table(), table_path)
    model_path = workdir / MODEL_DIR
    with warnings.catch_warnings():
        # the signature is given explicitly; an input example would only make MLflow run the model
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        mlflow.pyfunc.save_model(
            path=str(model_path),
            python_model=str(ENTRY_POINT),
            artifacts={PATTERN_ARTIFACT: str(table_path)},
            pip_requirements=_requirements(),
            signature=signature(),
        )
    return model_path


def _requirements() -> list[str]:
    reqs = [f"abasto=={__version__}"]
    for dist in ("mlflow", "numpy", "pandas", "pyarrow"):
        try:
            reqs.append(f"{dist}=={dist_version(dist)}")
        except PackageNotFoundError:  # pragma: no cover - all are dependencies of abasto
            reqs.append(dist)
    return reqs


def register(
    model: PatternModel,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    lineage: Mapping[str, Any],
    trained_by: str,
    *,
    settings: Settings | None = None,
    description: str | None = None,
) -> ModelVersionInfo:
    """Log a run (params, metrics, the pyfunc model) and register it as a new model version.

    ``lineage`` (e.g. ``{"table": "curated.hourly_sales", "snapshot_id": 123}``) and ``trained_by``
    become tags of the run and of the version.
    """
    if not trained_by.strip():
        raise InvalidInputError("trained_by must name the user who trained the model")
    settings = settings or load_settings()
    client = _client(settings)
    name = settings.ml.model_name
    tags = {TAG_TRAINED_BY: trained_by, **{f"{TAG_LINEAGE}{k}": str(v) for k, v in lineage.items()}}
    run = client.create_run(
        _experiment_id(client, settings), tags={**tags, "mlflow.user": trained_by}, run_name=f"fit-{name}"
    )
    run_id = run.info.run_id
    try:
        now = int(datetime.now(UTC).timestamp() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag("abasto.series", str(len(model)))],
        )
        with tempfile.TemporaryDirectory(prefix="abasto-model-") as tmp:
            client.log_artifacts(run_id, str(_save_pyfunc(model, Path(tmp))), MODEL_DIR)
        client.set_terminated(run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    if _registered_model(client, name) is None:
        client.create_registered_model(name, description="abasto demand pattern per store×SKU×hour of week")
    mv = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{MODEL_DIR}", run_id=run_id, tags=tags, description=description
    )
    return _info(client, mv)


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _is_missing(exc):
            raise NotFoundError(
                f"model {name!r} has no version {version!r}", hint="list them with: abasto model list"
            ) from exc
        raise


def approve(version: str, approver: str, *, settings: Settings | None = None) -> ModelVersionInfo:
    """Make ``version`` the champion. The user who trained it may not approve it (four-eyes rule).

    Whether ``approver`` holds a profile allowed to approve is the governance layer's check.
    """
    if not approver.strip():
        raise InvalidInputError("approver must name a user")
    settings = settings or load_settings()
    client = _client(settings)
    name = settings.ml.model_name
    mv = _get_version(client, name, version)
    trained_by = (mv.tags or {}).get(TAG_TRAINED_BY)
    if not trained_by:
        raise AccessDeniedError(
            f"model {name!r} version {version} records no trainer, so the four-eyes rule cannot be checked",
            hint="register versions through abasto (abasto.ml.registry.register)",
        )
    if trained_by.strip().casefold() == approver.strip().casefold():
        raise AccessDeniedError(
            f"{approver!r} trained model {name!r} version {version} and cannot also approve it "
            "(four-eyes rule: the approver must be a different user)",
            hint=f"ask another user to run: abasto model approve {version} --as USER",
        )
    client.set_model_version_tag(name, str(version), TAG_APPROVED_BY, approver)
    client.set_model_version_tag(name, str(version), TAG_APPROVED_AT, datetime.now(UTC).isoformat())
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return _info(client, client.get_model_version(name, str(version)))


def load(version: str | None = None, *, settings: Settings | None = None) -> PatternModel:
    """The pattern model of ``version``; ``None`` = the approved :data:`CHAMPION`."""
    settings = settings or load_settings()
    client = _client(settings)
    name = settings.ml.model_name
    if version is None:
        registered = _registered_model(client, name)
        champion = (getattr(registered, "aliases", None) or {}).get(CHAMPION)
        if champion is None:
            raise NotFoundError(
                f"model {name!r} has no approved ({CHAMPION}) version",
                hint="register one, then approve it as another user: abasto model approve VERSION --as USER",
            )
        mv = _get_version(client, name, str(champion))
    else:
        mv = _get_version(client, name, version)
    with tempfile.TemporaryDirectory(prefix="abasto-model-") as tmp:
        local = Path(download_artifacts(artifact_uri=str(mv.source), dst_path=tmp))
        tables = list(local.rglob(_PATTERN_FILE))
        if not tables:
            raise NotFoundError(f"model {name!r} version {mv.version} has no {_PATTERN_FILE} artifact")
        table = pq.read_table(tables[0])
    return PatternModel.from_table(table).with_version(str(mv.version))


def list_versions(*, settings: Settings | None = None) -> list[ModelVersionInfo]:
    """All versions of the model, oldest first (empty if none was registered)."""
    settings = settings or load_settings()
    client = _client(settings)
    name = settings.ml.model_name
    registered = _registered_model(client, name)
    if registered is None:
        return []
    aliases = dict(getattr(registered, "aliases", None) or {})
    versions = client.search_model_versions(f"name = '{name}'")
    return sorted((_info(client, mv, aliases) for mv in versions), key=lambda i: int(i.version))
