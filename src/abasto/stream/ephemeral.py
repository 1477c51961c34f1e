"""A throwaway nats-server with JetStream on free ports, for tests and benchmarks of the stream port.

Not the embedded service (``abasto.services`` runs that, with users and MQTT): this one has no
auth, lives in a temporary directory and can be killed and restarted on the same port and store
to test reconnects and durability.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from abasto.errors import ServiceError
from abasto.services.isolated import free_ports
from abasto.services.nats import nats_server_binary


def free_port() -> int:
    return free_ports(1)[0]


class EphemeralNatsServer:
    """``with EphemeralNatsServer(tmp_path) as srv: srv.url``."""

    def __init__(self, workdir: Path, *, start_timeout_s: float = 15.0, max_file_store: str = "64GB") -> None:
        self.workdir = workdir
        self._max_file_store = max_file_store
        self.port = free_port()
        self.monitor_port = free_port()
        self._timeout = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(
            f"""server_name: abasto-ephemeral
listen: 127.0.0.1:{self.port}
http: 127.0.0.1:{self.monitor_port}
jetstream {{
  store_dir: "{self.workdir / "js"}"
  max_file_store: {self._max_file_store}
  max_memory_store: 256MB
}}
"""
        )
        return conf

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        conf = self._write_config()
        log = (self.workdir / "nats.log").open("ab")
        self._proc = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._timeout
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServiceError(f"nats-server exited with {self._proc.returncode}; see {self.workdir}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"nats-server not healthy after {self._timeout}s; see {self.workdir}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown (what a crash looks like)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
