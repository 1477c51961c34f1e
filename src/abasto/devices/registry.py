"""Per-store and per-device MQTT credentials: a 0600 JSON file under ``settings.home_dir``.

Two kinds of login, both with a random password:

* **store** users, ``store-<store_id>``: one per store, may publish on the store's whole topic
  ``pos/<store_id>/#`` (the device simulator and the demo use them: one connection per store).
* **device** users, one per device, whose username *is* the device id (``dev-<store_id>-<n>`` by
  default): may publish only on ``pos/<store_id>/<device_id>`` (NATS ``pos.<store_id>.<device_id>``),
  the store's topic and the device's own leaf. Revoking a device removes only its user; revoking a
  store removes the store user and every device of that store.

The registry keeps the plaintext (the simulator and the HTTP ingest gateway need it) and a bcrypt
hash (what the nats-server config holds). Changes take effect on a running nats-server after
:func:`abasto.services.reload_nats`, which also drops the connections of removed users.

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


#: usernames a device id may not take (the service user, and the store users' prefix)
_RESERVED_USER = "abasto"
_STORE_USER_PREFIX = "store-"


def validate_device_id(device_id: str) -> str:
    if not isinstance(device_id, str) or not _STORE_ID.match(device_id):
        raise InvalidInputError(
            f"device id {device_id!r} is not valid: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit",
            hint="device ids become NATS subject tokens and MQTT topic levels (pos/<store_id>/<device_id>)",
        )
    if device_id == _RESERVED_USER or device_id.startswith(_STORE_USER_PREFIX):
        raise InvalidInputError(
            f"device id {device_id!r} is reserved: it would collide with a store or service user",
            hint="device ids are MQTT usernames; the default form is dev-<store_id>-<n>",
        )
    return device_id


@dataclass(frozen=True)
class DeviceCredentials:
    """One device's MQTT login (username = device id). ``password`` is plaintext; never log it."""

    device_id: str
    store_id: str
    username: str
    password: str = field(repr=False)
    password_bcrypt: str = field(repr=False)

    @property
    def subject(self) -> str:
        """The one NATS subject this device may publish on."""
        return f"pos.{self.store_id}.{self.device_id}"

    @property
    def publish_subjects(self) -> tuple[str]:
        return (self.subject,)

    @property
    def topic(self) -> str:
        """The one MQTT topic this device may publish on."""
        return f"pos/{self.store_id}/{self.device_id}"


#: whoever logged in: a store (any device of the store) or one device
Principal = Credentials | DeviceCredentials


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
        """Delete a store's credentials and those of its devices (NotFoundError if it has none)."""
        with self._locked():
            stores, devices = self._read_all()
            own = [d for d, entry in devices.items() if entry["store_id"] == store_id]
            if store_id not in stores and not own:
                raise NotFoundError(
                    f"store {store_id!r} has no MQTT credentials to revoke",
                    hint="`abasto devices list` shows the registered stores",
                )
            stores.pop(store_id, None)
            for device_id in own:
                del devices[device_id]
            self._write(stores, devices)

    # --- devices -------------------------------------------------------------------------------
    def add_device(self, store_id: str, device_id: str | None = None) -> DeviceCredentials:
        """Credentials for one device of ``store_id``; ``device_id`` defaults to the next free
        ``dev-<store_id>-<n>``. An existing device of the same store is returned unchanged; a device
        id registered for another store is refused (device ids are global: they key deduplication)."""
        validate_store_id(store_id)
        if device_id is not None:
            validate_device_id(device_id)
        with self._locked():
            stores, devices = self._read_all()
            if device_id is None:
                device_id = _next_device_id(store_id, devices)
            elif device_id in devices:
                entry = devices[device_id]
                if entry["store_id"] != store_id:
                    raise InvalidInputError(
                        f"device {device_id!r} belongs to store {entry['store_id']!r}, not {store_id!r}",
                        hint=f"revoke it first (`abasto devices revoke {device_id}`) to move it",
                    )
                return _device(device_id, entry)
            password = new_password()
            devices[device_id] = {
                "store_id": store_id,
                "username": device_id,
                "password": password,
                "password_bcrypt": hash_password(password),
            }
            self._write(stores, devices)
            return _device(device_id, devices[device_id])

    def get_device(self, device_id: str) -> DeviceCredentials:
        devices = self._read_all()[1]
        if device_id not in devices:
            raise NotFoundError(
                f"device {device_id!r} has no MQTT credentials in {self.path}",
                hint="register it with `abasto devices add <store_id> --device <device_id>`",
            )
        return _device(device_id, devices[device_id])

    def devices(self, store_id: str | None = None) -> builtins.list[DeviceCredentials]:
        """The registered devices (of one store), by device id."""
        devices = self._read_all()[1]
        return [
            _device(d, devices[d])
            for d in sorted(devices)
            if store_id is None or devices[d]["store_id"] == store_id
        ]

    def revoke_device(self, device_id: str) -> DeviceCredentials:
        """Delete one device's credentials; returns what was removed (NotFoundError if unknown)."""
        with self._locked():
            stores, devices = self._read_all()
            if device_id not in devices:
                raise NotFoundError(
                    f"device {device_id!r} has no MQTT credentials to revoke",
                    hint="`abasto devices list` shows the registered devices",
                )
            removed = _device(device_id, devices.pop(device_id))
            self._write(stores, devices)
        return removed

    def principals(self) -> dict[str, Principal]:
        """Every login (store and device users) by username, read once."""
        stores, devices = self._read_all()
        found: dict[str, Principal] = {}
        for store_id, entry in stores.items():
            found[entry["username"]] = _credentials(store_id, entry)
        for device_id, entry in devices.items():
            found[entry["username"]] = _device(device_id, entry)
        return found

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The store or device whose login this is; None for an unknown user or a wrong password."""
        return check_login(self.principals(), username, password)

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
        return self._read_all()[0]

    def _read_all(self) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """(stores, devices). ``devices`` is optional in the file (older files have none)."""
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return {}, {}
        try:
            doc: Any = json.loads(raw)
            stores = doc["stores"]
            devices = doc.get("devices", {})
            if (
                doc.get("version") != _FORMAT_VERSION
                or not isinstance(stores, dict)
                or not isinstance(devices, dict)
            ):
                raise ValueError("unexpected layout")
            for entry in stores.values():
                _ = entry["username"], entry["password"], entry["password_bcrypt"]
            for entry in devices.values():
                _ = entry["store_id"], entry["username"], entry["password"], entry["password_bcrypt"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the credentials registry {self.path} is unreadable: {exc}",
                hint="restore it from a backup, or delete it and register the stores again "
                "(devices will need the new passwords)",
            ) from exc
        return stores, devices

    def _write(
        self, stores: dict[str, dict[str, str]], devices: dict[str, dict[str, str]] | None = None
    ) -> None:
        if devices is None:
            devices = self._read_all()[1]
        doc = {
            "version": _FORMAT_VERSION,
            "stores": dict(sorted(stores.items())),
            "devices": dict(sorted(devices.items())),
        }
        write_private_text(self.path, json.dumps(doc, indent=2) + "\n")


def _credentials(store_id: str, entry: dict[str, str]) -> Credentials:
    return Credentials(
        store_id=store_id,
        username=entry["username"],
        password=entry["password"],
        password_bcrypt=entry["password_bcrypt"],
    )


def _device(device_id: str, entry: dict[str, str]) -> DeviceCredentials:
    return DeviceCredentials(
        device_id=device_id,
        store_id=entry["store_id"],
        username=entry["username"],
        password=entry["password"],
        password_bcrypt=entry["password_bcrypt"],
    )


def _next_device_id(store_id: str, devices: dict[str, dict[str, str]]) -> str:
    prefix = f"dev-{store_id}-"
    taken = [int(d[len(prefix) :]) for d in devices if d.startswith(prefix) and d[len(prefix) :].isdigit()]
    return f"{prefix}{max(taken, default=0) + 1}"


def check_login(principals: dict[str, Principal], username: str, password: str) -> Principal | None:
    """Constant-time check of a plaintext password against a :meth:`CredentialRegistry.principals` map."""
    found = principals.get(username)
    expected = found.password if found is not None else "\0" * 43
    ok = secrets.compare_digest(expected.encode(), password.encode())
    return found if ok and found is not None else None
