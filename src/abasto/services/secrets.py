"""The NATS service user ``abasto`` (workers, CLI): password generated once, kept 0600 in run_dir."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from abasto.devices.registry import hash_password, new_password, write_private_text
from abasto.errors import ConfigError
from abasto.settings import Settings

SERVICE_USER = "abasto"


@dataclass(frozen=True)
class ServiceCredentials:
    user: str
    password: str = field(repr=False)
    password_bcrypt: str = field(repr=False)

    def connect_kwargs(self, servers: str) -> dict[str, object]:
        """Keyword arguments for ``nats.connect(**kwargs)``."""
        urls = [s.strip() for s in servers.split(",")]
        return {"servers": urls, "user": self.user, "password": self.password}


def secrets_path(settings: Settings) -> Path:
    return settings.run_dir / "secrets.json"


def service_credentials(settings: Settings) -> ServiceCredentials:
    """The service user's credentials, created on first use."""
    path = secrets_path(settings)
    try:
        doc = json.loads(path.read_text())
        return ServiceCredentials(doc["nats_user"], doc["nats_password"], doc["nats_password_bcrypt"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the secrets file {path} is unreadable: {exc}",
            hint="run `abasto down`, delete the file and run `abasto up` (a new password is generated)",
        ) from exc
    password = new_password()
    creds = ServiceCredentials(SERVICE_USER, password, hash_password(password))
    doc = {"nats_user": creds.user, "nats_password": password, "nats_password_bcrypt": creds.password_bcrypt}
    # written beside, then linked into place: if another process got there first, its file wins
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_private_text(tmp, json.dumps(doc, indent=2) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return service_credentials(settings)
    finally:
        tmp.unlink(missing_ok=True)
    return creds
