"""The behaviour document store port: pk/sk JSON documents, shaped like a DynamoDB table.

Reps' analyses of big customers live here, keyed like DynamoDB items: a partition key ``pk``
(``STORE#S0001``) and a sort key ``sk`` (``VISIT#2026-10-01#REP03``). Every backend keeps the same
semantics, which the conformance suite (tests/sources/test_document_store_conformance.py) checks:

- ``put`` creates or replaces a whole document (no partial updates);
- ``query`` returns the documents of one partition in ascending byte order of ``sk`` (UTF-8, as
  DynamoDB sorts), optionally only those whose ``sk`` starts with a prefix;
- keys and documents obey DynamoDB's limits (:mod:`abasto.sources.behavior.validation`), so data
  written to the embedded backend can always move to DynamoDB.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class Document:
    """One stored document and its key."""

    pk: str
    sk: str
    doc: dict[str, Any] = field(compare=True)


class DocumentStore(ABC):
    """pk/sk JSON document store (the seed's DynamoDB). Use as a context manager or call ``close``."""

    @abstractmethod
    def put(self, pk: str, sk: str, doc: Mapping[str, Any]) -> None:
        """Create the document at (pk, sk), or replace it whole if it exists.

        Raises:
            InvalidInputError: a key is empty, too long or not a string; the document is not a JSON
                object (non-string keys, NaN, unserialisable values, NUL characters) or is too large.
            ServiceUnavailableError: the backend cannot be reached (retry later).
        """

    @abstractmethod
    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The document at (pk, sk), or None if there is none.

        Raises:
            InvalidInputError: a key is empty, too long or not a string.
            ServiceUnavailableError: the backend cannot be reached (retry later).
        """

    @abstractmethod
    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, descending: bool = False
    ) -> list[Document]:
        """Documents of partition ``pk`` whose sort key starts with ``sk_prefix`` (all if None).

        Ordered by ``sk`` in UTF-8 byte order, ascending unless ``descending``; at most ``limit``.
        An unknown partition gives an empty list.

        Raises:
            InvalidInputError: ``pk`` is invalid, or ``limit`` is not positive.
            ServiceUnavailableError: the backend cannot be reached (retry later).
        """

    @abstractmethod
    def delete(self, pk: str, sk: str) -> bool:
        """Delete the document at (pk, sk); True if it existed (deleting nothing is not an error).

        Raises:
            InvalidInputError: a key is empty, too long or not a string.
            ServiceUnavailableError: the backend cannot be reached (retry later).
        """

    @abstractmethod
    def put_many(self, items: Iterable[Document]) -> int:
        """Create or replace many documents; returns how many distinct keys were written.

        Every item is validated before anything is written, so invalid input writes nothing. When
        the same key appears more than once, the last item wins. Backends may write in chunks, so a
        failure of the backend half-way can leave some items written (re-running is safe).

        Raises:
            InvalidInputError: an item's key or document is invalid (the message names the key).
            ServiceUnavailableError: the backend cannot be reached (retry later).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, backends without resources keep it
        """Release connections. The store cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
