"""Subjects on Kinesis: NATS-style subject patterns, the subject → stream table, partition keys.

Kinesis streams have no subjects; the Kinesis backend keeps each stream's subject patterns in its
registry and carries the subject inside every record. Patterns use NATS syntax: tokens separated
by ``.``, ``*`` matches one token, a final ``>`` matches one or more tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from abasto.errors import InvalidInputError

#: Kinesis partition keys are 1..256 Unicode characters
_MAX_PARTITION_KEY = 256


def subject_matches(pattern: str, subject: str) -> bool:
    pt, st = pattern.split("."), subject.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(st) > i
        if i >= len(st) or (p != "*" and p != st[i]):
            return False
    return len(pt) == len(st)


def patterns_overlap(a: str, b: str) -> bool:
    """True if some subject matches both patterns."""
    at, bt = a.split("."), b.split(".")
    for i in range(max(len(at), len(bt))):
        x = at[i] if i < len(at) else None
        y = bt[i] if i < len(bt) else None
        if x is None or y is None:
            return False  # one ended; the other still needs tokens ('>' needs at least one)
        if x == ">" or y == ">":
            return True
        if "*" not in (x, y) and x != y:
            return False
    return True


def route(routes: Mapping[str, Sequence[str]], subject: str) -> str | None:
    """The stream whose patterns capture ``subject`` (streams never overlap), or None."""
    for stream, patterns in routes.items():
        if any(subject_matches(p, subject) for p in patterns):
            return stream
    return None


def partition_key(subject: str) -> str:
    """The store id for ``pos.<store>.<device>`` and ``alerts.<store>``, else the subject itself.

    All events of a store land on one shard, in order.
    """
    parts = subject.split(".")
    key = parts[1] if parts[0] in ("pos", "alerts") and len(parts) >= 2 and parts[1] else subject
    if not key:
        raise InvalidInputError("empty subject")
    return key[:_MAX_PARTITION_KEY]
