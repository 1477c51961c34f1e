"""Per-store MQTT credentials: a 0600 JSON file under ``settings.home_dir``.

Each store gets one MQTT user, ``store-<store_id>``, with a random password. The registry keeps
the plaintext (the device simulator needs it) and a bcrypt hash (what the nats-server config
holds). Changes take effect on a running nats-server after
:func:`abasto.services.reload_nats`.

The file is read and rewritten under an exclusive lock and replaced atomically, so the CLI and a
simulator registering stores at the same time do not lose each other's entries.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.settings import Settings

#: The passwords are 32 random bytes, so the hash only keeps them out of the server config; a high
#: work factor would add nothing but connection latency on the server (it checks every CONNECT).
BCRYPT_ROUNDS = 8
_STORE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FORMAT_VERSION = 1


def hash_password(password: str) -> str:
    """bcrypt hash in the ``$2b$`` form nats-server accepts."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


def new_password() -> str:
    return secrets.token_urlsafe(32)


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def validate_store_id(store_id: str) -> str:
    if not isinstance(store_id, str) or not _STORE_ID.match(store_id):
        raise InvalidInputError(
            f"store id {store_id!r} is not valid: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit",
            hint="store ids become NATS subject tokens and MQTT topic levels (pos/<store_id>/<device_id>), "
            "so '.', '/', '*', '>', '+', '#' and spaces are not allowed",
        )
    return store_id


@dataclass(frozen=True)
class Credentials:
    """One store's MQTT login. ``password`` is plaintext; never log it."""

    store_id: str
    username: str
    password: str = field(repr=False)
    password_bcrypt: str = field(repr=False)

    @property
    def publish_subjects(self) -> tuple[str, str]:
        """NATS subjects this user may publish on (MQTT ``pos/<store>`` and ``pos/<store>/...``)."""
        return (f"pos.{self.store_id}", f"pos.{self.store_id}.>")

    def topic(self, device_id: str) -> str:
        """The MQTT topic a device of this store publishes on."""
        return f"pos/{self.store_id}/{device_id}"


def username_for(store_id: str) -> str:
    return f"store-{store_id}"


class CredentialRegistry:
    """The store credentials of one abasto home."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.home_dir / "devices" / "credentials.json"
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    # --- public API ------------------------------------------------------------------------
    def register_stores(self, store_ids: Iterable[str]) -> dict[str, Credentials]:
        """Credentials for each id, creating the missing ones; existing ones are kept unchanged."""
        wanted = [validate_store_id(s) for s in store_ids]
        with self._locked():
            stores = self._read()
            added = False
            for store_id in wanted:
                if store_id not in stores:
                    password = new_password()
                    stores[store_id] = {
                        "username": username_for(store_id),
                        "password": password,
                        "password_bcrypt": hash_password(password),
                    }
                    added = True
            if added:
                self._write(stores)
        return {store_id: _credentials(store_id, stores[store_id]) for store_id in wanted}

    def get(self, store_id: str) -> Credentials:
        stores = self._read()
        if store_id not in stores:
            raise NotFoundError(
                f"store {store_id!r} has no MQTT credentials in {self.path}",
                hint=f"register it with `abasto devices add {store_id}`",
            )
        return _credentials(store_id, stores[store_id])

    def list(self) -> builtins.list[Credentials]:
        stores = self._read()
        return [_credentials(store_id, stores[store_id]) for store_id in sorted(stores)]

    def revoke(self, store_id: str) -> None:
        """Delete a store's credentials (NotFoundError if it has none)."""
        with self._locked():
            stores = self._read()
            if store_id not in stores:
                raise NotFoundError(
                    f"store {store_id!r} has no MQTT credentials to revoke",
                    hint="`abasto devices list` shows the registered stores",
                )
            del stores[store_id]
            self._write(stores)

    # --- storage ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            doc: Any = json.loads(raw)
            stores = doc["stores"]
            if doc.get("version") != _FORMAT_VERSION or not isinstance(stores, dict):
                raise ValueError("unexpected layout")
            for entry in stores.values():
                _ = entry["username"], entry["password"], entry["password_bcrypt"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the credentials registry {self.path} is unreadable: {exc}",
                hint="restore it from a backup, or delete it and register the stores again "
                "(devices will need the new passwords)",
            ) from exc
        return stores

    def _write(self, stores: dict[str, dict[str, str]]) -> None:
        doc = {"version": _FORMAT_VERSION, "stores": dict(sorted(stores.items()))}
        write_private_text(self.path, json.dumps(doc, indent=2) + "\n")


def _credentials(store_id: str, entry: dict[str, str]) -> Credentials:
    return Credentials(
        store_id=store_id,
        username=entry["username"],
        password=entry["password"],
        password_bcrypt=entry["password_bcrypt"],
    )
