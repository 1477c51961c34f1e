"""Bearer tokens of the HTTP API: who is calling, and as which governance profile.

A token is ``abt_<id>_<secret>``: ``id`` (8 hex digits) finds its record without trying every
hash, ``secret`` (43 URL-safe characters, 256 bits) is checked against a bcrypt hash. Only the
hashes are stored, in ``<home>/api/tokens.json`` (mode 0600, rewritten atomically); the token itself
is shown once, by ``abasto api token add``. Each record maps a token *name* (who: a person, a
dashboard) to a *profile* of :data:`abasto.analytics.access.DEFAULT_PROFILE_ZONES`, which is the
principal the governance seam authorizes.

The file is re-read when it changes, so ``abasto api token revoke`` applies to a running server at
its next request. A verified token is remembered (by its SHA-256) until the file changes, so bcrypt's
deliberate slowness is paid once per token and server, not on every request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import bcrypt

from abasto.analytics.access import DEFAULT_PROFILE_ZONES
from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.settings import Settings

__all__ = ["TOKEN_PREFIX", "ApiToken", "TokenStore", "token_file"]

TOKEN_PREFIX = "abt"  # noqa: S105 (the public prefix of every token, not a secret)
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}_(?P<id>[0-9a-f]{{8}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
#: bcrypt cost of new tokens (2^12 rounds, ~0.2 s on a laptop core); tests pass a lower one
DEFAULT_ROUNDS = 12


def token_file(settings: Settings) -> Path:
    """Where the API's token hashes live."""
    return settings.home_dir / "api" / "tokens.json"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One token's record (never the token itself)."""

    name: str
    profile: str
    token_id: str
    created_at: str
    hash: str

    def public(self) -> dict[str, str]:
        """The record without its hash, as ``token list`` shows it."""
        return {
            "name": self.name,
            "profile": self.profile,
            "token_id": self.token_id,
            "created_at": self.created_at,
        }


class TokenStore:
    """The token file: add, list, revoke, and authenticate a presented token. Thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        profiles: Mapping[str, frozenset[str]] = DEFAULT_PROFILE_ZONES,
        rounds: int = DEFAULT_ROUNDS,
    ) -> None:
        self.path = path
        self.profiles = profiles
        self.rounds = rounds
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: dict[str, ApiToken] = {}  # by token_id
        self._verified: dict[bytes, ApiToken] = {}  # sha256(token) → record, until the file changes

    @classmethod
    def for_settings(cls, settings: Settings, *, rounds: int = DEFAULT_ROUNDS) -> TokenStore:
        """The store of ``settings.home``."""
        return cls(token_file(settings), rounds=rounds)

    # --- management (the CLI) ------------------------------------------------------------------
    def add(self, name: str, profile: str) -> tuple[ApiToken, str]:
        """Create a token for ``name`` acting as ``profile``; returns its record and the token.

        Raises:
            InvalidInputError: a bad name, an unknown profile, or a name already in use.
        """
        if not _NAME.match(name):
            raise InvalidInputError(
                f"token name {name!r} is not valid",
                hint="use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit",
            )
        if profile not in self.profiles:
            raise InvalidInputError(
                f"profile {profile!r} is unknown", hint=f"choose one of: {', '.join(sorted(self.profiles))}"
            )
        with self._lock:
            records = self._load()
            if any(r.name == name for r in records.values()):
                raise InvalidInputError(
                    f"a token named {name!r} exists already",
                    hint=f"revoke it first (`abasto api token revoke {name}`) or pick another name",
                )
            token_id = secrets.token_hex(4)
            while token_id in records:
                token_id = secrets.token_hex(4)
            secret = secrets.token_urlsafe(32)
            token = f"{TOKEN_PREFIX}_{token_id}_{secret}"
            digest = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(self.rounds)).decode()
            record = ApiToken(
                name=name,
                profile=profile,
                token_id=token_id,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                hash=digest,
            )
            records[token_id] = record
            self._save(records)
        return record, token

    def list(self) -> list[ApiToken]:
        """Every token record, by name."""
        with self._lock:
            return sorted(self._load().values(), key=lambda r: r.name)

    def revoke(self, name: str) -> ApiToken:
        """Delete the token named ``name`` (requests presenting it get 401 from then on)."""
        with self._lock:
            records = self._load()
            found = [r for r in records.values() if r.name == name]
            if not found:
                raise NotFoundError(f"no API token named {name!r}", hint="see `abasto api token list`")
            del records[found[0].token_id]
            self._save(records)
        return found[0]

    # --- authentication (the server) -----------------------------------------------------------
    def authenticate(self, token: str) -> ApiToken | None:
        """The record of a valid, unrevoked ``token``, else ``None``."""
        m = _TOKEN.match(token)
        if m is None:
            return None
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            records = self._load()
            if (hit := self._verified.get(key)) is not None:
                return hit
            record = records.get(m["id"])
        if record is None or not bcrypt.checkpw(m["secret"].encode(), record.hash.encode()):
            return None
        with self._lock:
            if self._load().get(record.token_id) == record:  # not revoked while bcrypt ran
                self._verified[key] = record
                return record
        return None

    # --- the file ------------------------------------------------------------------------------
    def _load(self) -> dict[str, ApiToken]:
        """The records, re-read when the file changed (caller holds the lock)."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and (stamp is not None or not self._records):
            return self._records
        self._verified.clear()
        self._stamp = stamp
        if stamp is None:
            self._records = {}
            return self._records
        try:
            doc = json.loads(self.path.read_text())
            records = [ApiToken(**entry) for entry in doc["tokens"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the API token file {self.path} is unreadable: {exc}",
                hint="fix or delete it, then add tokens again with `abasto api token add`",
            ) from exc
        self._records = {r.token_id: r for r in records}
        return self._records

    def _save(self, records: dict[str, ApiToken]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"tokens": [asdict(r) for r in sorted(records.values(), key=lambda r: r.name)]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._stamp = None  # re-read (and re-stamp) on next access
        self._load()
