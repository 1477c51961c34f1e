"""Counting the publishes nats-server refused (a device publishing outside its own topic).

nats-server acknowledges a forbidden MQTT QoS 1 publish with PUBACK all the same and drops the
message, so the device cannot tell and nothing reaches any stream. The refusal is visible in one
place only: the server log, one ``[ERR]`` line per refused message (one line; folded here)::

    [17708] 2026/11/25 18:48:47.287190 [ERR] 127.0.0.1:52809 - mid:7 - "dev-S1-1" - \
        Publish Violation - Subject "pos.S2.D1"

(``mid:``/``cid:`` is the server's connection id; the quoted name after it is the MQTT client id or
the NATS client name, not the user). The ``$SYS`` advisories of nats-server 2.15 cover connects,
disconnects and authentication errors but not permission violations, so abasto tails the log of the
nats-server it runs (``<run_dir>/nats.log``) and resolves each connection id to its authenticated
user through the monitoring endpoint (``/connz?cid=<id>&state=all&auth=true``; closed connections
stay there, in a ring of 10,000 by default). A line that already names the user
(``User "x"``, as NATS-protocol violations do) needs no look-up. A connection that can no longer be
resolved is counted under ``"?"``.

An external nats-server (``nats.url`` set) has no log abasto can read: use its own monitoring.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from abasto.settings import Settings

UNKNOWN_USER = "?"

_VIOLATION = re.compile(
    r"\[ERR\] (?P<addr>\S+) - (?P<kind>[a-z]+):(?P<cid>\d+) - (?:\"(?P<name>[^\"]*)\" - )?"
    r"(?:User \"(?P<user>[^\"]*)\" - )?Publish Violation - (?:User \"(?P<user2>[^\"]*)\", )?"
    r"Subject \"(?P<subject>[^\"]*)\""
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused publish: who (``user``; ``client`` = MQTT client id) tried which subject."""

    user: str
    client: str
    subject: str
    cid: int


def parse_violation(line: str) -> tuple[int, str | None, str, str] | None:
    """``(cid, user or None, client name, subject)`` of a "Publish Violation" log line, else None."""
    m = _VIOLATION.search(line)
    if m is None:
        return None
    return int(m["cid"]), m["user"] or m["user2"], m["name"] or "", m["subject"]


class RefusalCounter:
    """Tails nats-server's log and counts refused publishes by user.

    Each :meth:`poll` reads the lines appended since the previous one (from the start of the log
    the first time; a log that shrank is read again from its start). Thread-safe.
    """

    def __init__(self, settings: Settings, *, log_file: Path | None = None) -> None:
        self.log_file = log_file or settings.run_dir / "nats.log"
        self._monitor = f"http://{settings.nats.host}:{settings.nats.monitor_port}"
        self._offset = 0
        self._partial = b""
        self._users: dict[int, str] = {}
        self._counts: Counter[str] = Counter()
        self._recent: list[Refusal] = []
        self._lock = threading.Lock()

    def poll(self) -> list[Refusal]:
        """Read the new log lines; returns the refusals found in them."""
        with self._lock:
            found = [self._refusal(v) for v in self._new_violations()]
            for refusal in found:
                self._counts[refusal.user] += 1
            self._recent = (self._recent + found)[-1000:]
            return found

    def refused_publishes(self) -> dict[str, int]:
        """Refused publishes by user since the log began (after reading the new lines)."""
        self.poll()
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        return sum(self.refused_publishes().values())

    def recent(self) -> list[Refusal]:
        """The last (up to 1,000) refusals seen, oldest first."""
        with self._lock:
            return list(self._recent)

    # --- internals ----------------------------------------------------------------------------
    def _new_violations(self) -> list[tuple[int, str | None, str, str]]:
        try:
            size = self.log_file.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._offset:  # truncated or replaced: start over
            self._offset, self._partial = 0, b""
        with self.log_file.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        found = []
        for raw in lines:
            if b"Publish Violation" in raw:
                parsed = parse_violation(raw.decode("utf-8", "replace"))
                if parsed is not None:
                    found.append(parsed)
        return found

    def _refusal(self, violation: tuple[int, str | None, str, str]) -> Refusal:
        cid, user, client, subject = violation
        if user is None:
            user = self._user_of(cid)
        return Refusal(user=user, client=client, subject=subject, cid=cid)

    def _user_of(self, cid: int) -> str:
        if cid in self._users:
            return self._users[cid]
        user = UNKNOWN_USER
        try:
            response = httpx.get(
                f"{self._monitor}/connz", params={"cid": cid, "state": "all", "auth": "true"}, timeout=2.0
            )
            response.raise_for_status()
            connections = response.json().get("connections") or []
            if connections:
                user = str(connections[0].get("authorized_user") or UNKNOWN_USER)
        except (httpx.HTTPError, ValueError):
            return UNKNOWN_USER  # not cached: the server may answer next time
        self._users[cid] = user
        return user


def refused_publishes(settings: Settings) -> dict[str, int]:
    """Refused publishes by user in the whole log of the nats-server abasto runs for ``settings``."""
    return RefusalCounter(settings).refused_publishes()
