"""Open the Iceberg catalog described by the settings.

Embedded default: pyiceberg's :class:`SqlCatalog` on a SQLite file (``settings.catalog_uri``) with
the warehouse at ``settings.warehouse_uri``. Any SQLAlchemy URL works for the SQL catalog; the Glue
catalog for AWS comes with the deployment work and will be chosen here from the URI scheme.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError

from abasto.errors import ConfigError
from abasto.settings import Settings, load_settings

__all__ = ["CURATED", "MARTS", "ZONES", "ensure_namespace", "open_catalog"]

#: namespace of tables merged from the raw zone (one per source table)
CURATED = "curated"
#: namespace of the star-schema marts
MARTS = "marts"
ZONES: tuple[str, ...] = (CURATED, MARTS)


def open_catalog(settings: Settings | None = None) -> SqlCatalog:
    """The catalog of ``settings`` (loaded if omitted), with its local directories created.

    Raises:
        ConfigError: the catalog URI is not a SQLAlchemy URL pyiceberg can use.
    """
    settings = settings or load_settings()
    uri, warehouse = settings.catalog_uri, settings.warehouse_uri
    scheme = urlparse(uri).scheme
    if not scheme or scheme.startswith(("glue", "rest", "http")):
        raise ConfigError(
            f"unsupported catalog URI {uri!r}",
            hint="use a SQLAlchemy URL such as sqlite:////path/catalog.db (Glue/REST come later)",
        )
    if scheme.startswith("sqlite"):
        db_path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    wh = urlparse(warehouse)
    if wh.scheme in ("", "file"):
        Path(unquote(wh.path) if wh.scheme else warehouse).mkdir(parents=True, exist_ok=True)
    return SqlCatalog(settings.lake.catalog_name, uri=uri, warehouse=warehouse)


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create ``namespace`` if it does not exist (safe under concurrent callers)."""
    with contextlib.suppress(NamespaceAlreadyExistsError):  # lost a race with another creator
        catalog.create_namespace_if_not_exists(namespace)
