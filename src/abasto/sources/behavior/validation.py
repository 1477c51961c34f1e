"""Key and document rules shared by every backend: DynamoDB's limits, JSON objects only.

DynamoDB caps a partition key at 2048 bytes, a sort key at 1024 bytes and an item at 400 KB; the
embedded backend enforces the same so nothing it accepts could be refused after moving to AWS.
PostgreSQL cannot store the NUL character in text or jsonb, so NUL is refused everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from abasto.errors import InvalidInputError

MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
MAX_ITEM_BYTES = 400 * 1024


def check_key(pk: object, sk: object) -> None:
    """Raises:
    InvalidInputError: a key is not a non-empty string within DynamoDB's size limits, or has NUL.
    """
    check_pk(pk)
    _check_part("sk", sk, MAX_SK_BYTES)


def check_pk(pk: object) -> None:
    """Raises:
    InvalidInputError: ``pk`` is not a non-empty string within 2048 bytes, or has NUL.
    """
    _check_part("pk", pk, MAX_PK_BYTES)


def encode_doc(pk: str, sk: str, doc: object) -> str:
    """The document as compact JSON text, after checking it is a storable JSON object.

    Raises:
        InvalidInputError: not a mapping with string keys, not JSON-serialisable (or NaN/Infinity),
            contains NUL, or key + document exceed 400 KB.
    """
    if not isinstance(doc, Mapping):
        raise InvalidInputError(
            f"document at ({pk!r}, {sk!r}) must be a JSON object, got {type(doc).__name__}"
        )
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"document at ({pk!r}, {sk!r}) is not valid JSON: {exc}") from exc
    problem = _find_problem(doc, "")
    if problem:
        raise InvalidInputError(f"document at ({pk!r}, {sk!r}): {problem}")
    size = len(text.encode()) + len(pk.encode()) + len(sk.encode())
    if size > MAX_ITEM_BYTES:
        raise InvalidInputError(
            f"document at ({pk!r}, {sk!r}) is {size} bytes; "
            f"the limit is {MAX_ITEM_BYTES} (DynamoDB's item size)"
        )
    return text


def decode_doc(value: Any) -> dict[str, Any]:
    """A stored document back as a dict (backends may hand JSON text or already-parsed objects)."""
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(parsed, dict):
        raise InvalidInputError(f"stored document is not a JSON object: {type(parsed).__name__}")
    return parsed


def _check_part(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidInputError(f"{name} must not be empty")
    if "\x00" in value:
        raise InvalidInputError(f"{name} must not contain NUL")
    if len(value.encode()) > limit:
        raise InvalidInputError(f"{name} is longer than {limit} bytes (DynamoDB's limit)")


def _find_problem(value: object, path: str) -> str | None:
    """First thing JSON would silently change or PostgreSQL would refuse: non-string keys, NUL."""
    if isinstance(value, str):
        return f"NUL character at {path or '/'}" if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"object key {key!r} at {path or '/'} is not a string"
            if "\x00" in key:
                return f"NUL character in a key at {path or '/'}"
            found = _find_problem(item, f"{path}/{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_problem(item, f"{path}/{index}")
            if found:
                return found
    return None
