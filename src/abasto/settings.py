"""Typed settings.

Precedence, lowest to highest:

1. defaults written here;
2. a TOML file: ``$ABASTO_CONFIG`` if set, else ``./abasto.toml`` if it exists;
3. environment variables ``ABASTO_<SECTION>__<KEY>`` (for example ``ABASTO_NATS__PORT=14223``,
   ``ABASTO_HOME=/srv/abasto``);
4. explicit keyword arguments to :func:`load_settings` (what CLI flags pass).

Nothing is read from the environment at import time: call :func:`load_settings`.
Secrets are :class:`pydantic.SecretStr` and never printed.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from abasto.errors import ConfigError

Locale = Literal["es", "en"]


class NatsSettings(BaseModel):
    """nats-server with JetStream and MQTT. ``url`` set = use that external server instead."""

    url: str | None = None
    host: str = "127.0.0.1"
    port: int = 14222
    mqtt_port: int = 11883
    monitor_port: int = 18222
    #: JetStream limits for the device stream (discard=old: a PUBACK does not prove storage)
    stream_max_bytes: int = 2 * 1024**3
    stream_max_age_s: int = 7 * 24 * 3600
    duplicate_window_s: int = 600

    def client_url(self) -> str:
        return self.url or f"nats://{self.host}:{self.port}"


class PostgresSettings(BaseModel):
    """Sales database (RDS) and behaviour document store. ``url`` set = external server."""

    url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 15432
    database: str = "abasto"
    user: str = "postgres"

    def dsn(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


class LakeSettings(BaseModel):
    """Raw and curated zones. Empty URIs mean: under ``home``."""

    raw_uri: str = ""
    warehouse_uri: str = ""
    catalog_uri: str = ""
    catalog_name: str = "abasto"


class MLSettings(BaseModel):
    tracking_uri: str = ""
    model_name: str = "demand-pattern"


class WorldSettings(BaseModel):
    """Size and seed of gaseosas SA's synthetic world."""

    seed: int = 42
    stores: int = Field(default=60, ge=1)
    skus: int = Field(default=20, ge=1)
    history_days: int = Field(default=42, ge=7)
    start_date: date = date(2026, 9, 1)


class RealtimeSettings(BaseModel):
    #: probability of running out before the next delivery that raises an alert
    risk_threshold: float = Field(default=0.6, gt=0, lt=1)
    allowed_lateness_s: int = 300


class NotifySettings(BaseModel):
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    locale: Locale = "es"


class Settings(BaseSettings):
    """All of abasto's settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="ABASTO_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Path(".abasto")
    nats: NatsSettings = NatsSettings()
    postgres: PostgresSettings = PostgresSettings()
    lake: LakeSettings = LakeSettings()
    ml: MLSettings = MLSettings()
    world: WorldSettings = WorldSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    notify: NotifySettings = NotifySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    # --- derived locations (one place decides where data lives) ------------------------------
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def run_dir(self) -> Path:
        """pid files, generated server configs, logs."""
        return self.home_dir / "run"

    @property
    def nats_store_dir(self) -> Path:
        return self.home_dir / "nats"

    @property
    def pg_data_dir(self) -> Path:
        return self.home_dir / "postgres"

    @property
    def world_dir(self) -> Path:
        return self.home_dir / "world"

    @property
    def raw_uri(self) -> str:
        return self.lake.raw_uri or (self.home_dir / "lake" / "raw").as_uri()

    @property
    def warehouse_uri(self) -> str:
        return self.lake.warehouse_uri or (self.home_dir / "lake" / "curated").as_uri()

    @property
    def catalog_uri(self) -> str:
        return self.lake.catalog_uri or f"sqlite:///{self.home_dir / 'lake' / 'catalog.db'}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.ml.tracking_uri or f"sqlite:///{self.home_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home_dir / "mlflow" / "artifacts"

    @property
    def alerts_dir(self) -> Path:
        return self.home_dir / "alerts"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"


def _config_file() -> Path | None:
    explicit = os.environ.get("ABASTO_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"ABASTO_CONFIG points to {path}, which is not a file")
        return path
    default = Path("abasto.toml")
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults < TOML < env < ``overrides``; invalid values raise ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(
            f"invalid settings: {problems}",
            hint="check abasto.toml, $ABASTO_CONFIG and ABASTO_* environment variables",
        ) from exc
