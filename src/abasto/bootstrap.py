"""The composition root: the one place that turns settings into adapters.

Entry points (CLI, demo, tests, the HTTP API later) ask :class:`Platform` for what they need and
never construct backends themselves, so choosing a backend (embedded default or at-scale service)
is a settings decision made here. Adapters are imported lazily: ``abasto --help`` must not pay for
MLflow or DuckDB.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from abasto.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog

    from abasto.analytics import SqlEngine
    from abasto.cdc import CdcPipeline
    from abasto.devices.registry import CredentialRegistry
    from abasto.ml.pattern import PatternModel
    from abasto.notify.messages import AlertDirectory
    from abasto.notify.router import AlertRouter
    from abasto.sources.behavior import DocumentStore
    from abasto.stream import EventStream


class Platform:
    """Adapters built from one :class:`Settings`; cheap to create, builds each adapter on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

    # --- sources ---------------------------------------------------------------------------------
    @property
    def sales_dsn(self) -> str:
        """The sales database (embedded PostgreSQL, or ``postgres.url``)."""
        return self.settings.postgres.dsn()

    def document_store(self) -> DocumentStore:
        """The behaviour document store (today: documents in the sales PostgreSQL). Caller closes it."""
        from abasto.sources.behavior import open_document_store  # noqa: PLC0415

        return open_document_store(self.sales_dsn)

    def cdc(self) -> CdcPipeline:
        """Change capture from the sales database into the raw zone. Caller closes it."""
        from abasto.cdc import CdcPipeline  # noqa: PLC0415

        return CdcPipeline(self.sales_dsn, self.settings.raw_uri)

    # --- lake and analytics ------------------------------------------------------------------------
    @cached_property
    def catalog(self) -> SqlCatalog:
        from abasto.catalog import open_catalog  # noqa: PLC0415

        return open_catalog(self.settings)

    def sql(self) -> SqlEngine:
        """A governed DuckDB engine over the curated catalog. Caller closes it (context manager)."""
        from abasto.analytics import SqlEngine  # noqa: PLC0415

        return SqlEngine(self.settings, catalog=self.catalog)

    # --- streams and devices -----------------------------------------------------------------------
    def event_stream(self) -> EventStream:
        """The device/alert event stream, not yet connected (``async with``)."""
        from abasto.stream import open_stream  # noqa: PLC0415

        return open_stream(self.settings)

    @cached_property
    def credentials(self) -> CredentialRegistry:
        from abasto.devices.registry import CredentialRegistry  # noqa: PLC0415

        return CredentialRegistry(self.settings)

    # --- models and alerts -------------------------------------------------------------------------
    def approved_model(self) -> PatternModel:
        """The model version with the ``champion`` alias."""
        from abasto.ml import registry  # noqa: PLC0415

        return registry.load(None, settings=self.settings)

    def alert_router(
        self, *, tz: str, directory: AlertDirectory | None = None, webhook_topics: list[str] | None = None
    ) -> AlertRouter:
        """Rules → topics → subscribers (file, webhooks). Close with ``router.notifier.close()``."""
        from abasto.notify.wiring import build_router  # noqa: PLC0415

        return build_router(self.settings, tz=tz, directory=directory, webhook_topics=webhook_topics)
