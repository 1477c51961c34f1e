"""Strict JSON reading and the path notation used in validation messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from abasto.errors import InvalidInputError

#: a location inside a pattern: field names and list indexes
PathT = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """``("detail", "state", 0)`` → ``detail.state[0]``; the empty path is ``(root)``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out or "(root)"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_strict(text: str | bytes, *, what: str) -> Any:
    """Parse JSON rejecting NaN/Infinity and duplicate keys; errors name ``what`` was being read."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from exc
