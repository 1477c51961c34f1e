"""Reps' analyses of big customers: the behaviour document store (the seed's DynamoDB).

:class:`DocumentStore` is the port; :class:`PostgresDocumentStore` the embedded default (schema
``behavior`` of the same PostgreSQL); :class:`DynamoDocumentStore` the AWS backend (tested under moto:
no AWS account is reachable here). :func:`open_document_store` picks the backend from a URI.
"""

from __future__ import annotations

from abasto.errors import ConfigError
from abasto.sources.behavior.dynamodb import DynamoDocumentStore, connection_from_uri
from abasto.sources.behavior.port import Document, DocumentStore
from abasto.sources.behavior.postgres import PostgresDocumentStore
from abasto.sources.behavior.world import load_visit_analyses

__all__ = [
    "Document",
    "DocumentStore",
    "DynamoDocumentStore",
    "PostgresDocumentStore",
    "load_visit_analyses",
    "open_document_store",
]


def open_document_store(uri: str) -> DocumentStore:
    """The store behind ``uri``: a PostgreSQL DSN (``postgresql://…``, ``postgres://…`` or libpq
    ``key=value`` form) → :class:`PostgresDocumentStore`; ``dynamodb://<table>?region=…&endpoint_url=…``
    → :class:`DynamoDocumentStore` (table created if absent; credentials from boto3's chain).

    Raises:
        ConfigError: the scheme has no backend (yet).
        ServiceUnavailableError: the backend cannot be reached.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "postgresql"
    if scheme in ("postgresql", "postgres"):
        return PostgresDocumentStore(uri)
    if scheme == "dynamodb":
        table, connection = connection_from_uri(uri)
        return DynamoDocumentStore(table, connection)
    raise ConfigError(
        f"no document store backend for scheme {scheme!r}",
        hint="use a postgresql:// DSN or dynamodb://<table>?region=<region>",
    )
