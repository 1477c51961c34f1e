"""The governance seam of the SQL endpoint: one decision function and an audit log.

Every query calls :func:`authorize` for the endpoint itself (``query`` on ``sql``) and for each
table it reads (``read`` on ``<zone>.<table>``); every decision lands in the audit log. Today's
policy is a small profile → readable-zones mapping, deny by default; the Cedar-based governance
module replaces :func:`authorize` behind the same signature.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_PROFILE_ZONES", "AuditLog", "Decision", "authorize"]

#: which zones each profile may read; a profile not listed may read nothing
DEFAULT_PROFILE_ZONES: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"raw", "curated", "marts"}),
    "data_engineer": frozenset({"raw", "curated", "marts"}),
    "analyst": frozenset({"curated", "marts"}),
    "data_scientist": frozenset({"curated", "marts"}),
    "planner": frozenset({"marts"}),
}

ACTIONS = ("query", "read")


@dataclass(frozen=True)
class Decision:
    """An authorization answer with the reason shown to the user and kept in the audit log."""

    principal: str
    action: str
    resource: str
    allowed: bool
    reason: str


def authorize(
    principal: str,
    action: str,
    resource: str,
    *,
    profiles: Mapping[str, frozenset[str]] = DEFAULT_PROFILE_ZONES,
) -> Decision:
    """May ``principal`` (a profile) do ``action`` on ``resource``? Deny unless a rule allows it."""

    def decide(allowed: bool, reason: str) -> Decision:
        return Decision(principal, action, resource, allowed, reason)

    zones = profiles.get(principal)
    if zones is None:
        return decide(False, f"profile {principal!r} is unknown (deny by default)")
    if action == "query" and resource == "sql":
        if zones:
            return decide(True, f"profile {principal!r} may query the SQL endpoint")
        return decide(False, f"profile {principal!r} may read no zone")
    if action == "read":
        zone = resource.split(".", 1)[0] if "." in resource else ""
        if zone in zones:
            return decide(True, f"profile {principal!r} may read the {zone} zone")
        where = f"the {zone} zone" if zone else f"{resource!r} (not a catalog table)"
        return decide(False, f"profile {principal!r} may not read {where}")
    return decide(False, f"action {action!r} on {resource!r} is not granted to anyone")


class AuditLog:
    """Append-only JSON Lines file, one record per request (thread-safe within a process).

    The file stays open between requests (reopened if it was moved away or deleted, e.g. by log
    rotation) and each record is one ``write(2)`` of a whole line on an ``O_APPEND`` descriptor, so
    concurrent writers, even in other processes, never interleave within a line. Durability choice:
    a record is in the operating system's page cache when :meth:`append` returns — it survives a crash
    of this process, but not a power loss or kernel crash in the next few seconds, as there is no
    ``fsync`` per request (it would cost more than the query it audits). Call :meth:`sync` where a
    checkpoint must be on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: FileIO | None = None

    def append(self, event: str, decisions: Sequence[Decision], **details: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            "principal": decisions[0].principal if decisions else None,
            "allowed": all(d.allowed for d in decisions),
            "decisions": [dict(vars(d)) for d in decisions],  # flat: cheaper than asdict
            **details,
        }
        data = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fh = self._open()
            while data:  # unbuffered: one write(2) for a regular file; the loop guards a short write
                data = data[fh.write(data) or 0 :]

    def sync(self) -> None:
        """Force the records appended so far to disk (``fsync``)."""
        with self._lock:
            if self._file is not None:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file; a later :meth:`append` reopens it."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __del__(self) -> None:  # an owner that never called close(): no ResourceWarning, no leak
        if (fh := getattr(self, "_file", None)) is not None:
            fh.close()

    def _open(self) -> FileIO:
        if self._file is not None:
            try:
                same = os.path.samestat(os.stat(self.path), os.fstat(self._file.fileno()))
            except FileNotFoundError:
                same = False
            if same:
                return self._file
            self._file.close()
            self._file = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab", buffering=0)
        return self._file
