"""A throwaway three-node nats-server cluster with JetStream, on free loopback ports, for tests.

Each node has its own server name, client/route/monitor ports and file store under the work
directory; the routes form a full mesh in one named cluster. Nodes can be SIGKILLed (a crash) and
restarted on the same ports and store, so tests can prove that a replicated (R3) stream loses no
acknowledged message when a node, possibly the stream leader, dies::

    with EphemeralNatsCluster(tmp_path) as cluster:
        cluster.url            # "nats://127.0.0.1:p1,nats://127.0.0.1:p2,nats://127.0.0.1:p3"
        cluster.kill("n2")
        cluster.start_node("n2")
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from abasto.errors import ServiceError
from abasto.services.isolated import free_ports
from abasto.services.nats import nats_server_binary


@dataclass(frozen=True, slots=True)
class NodePorts:
    client: int
    cluster: int
    monitor: int


class ClusterNode:
    """One nats-server of the cluster; its ports and store survive kill/restart."""

    def __init__(self, name: str, workdir: Path, ports: NodePorts) -> None:
        self.name = name
        self.workdir = workdir
        self.ports = ports
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.client}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def write_config(self, cluster_name: str, peers: list[NodePorts], max_file_store: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f'"nats-route://127.0.0.1:{p.cluster}"' for p in peers if p != self.ports)
        conf = self.workdir / "nats.conf"
        conf.write_text(
            f"""server_name: {self.name}
listen: 127.0.0.1:{self.ports.client}
http: 127.0.0.1:{self.ports.monitor}
jetstream {{
  store_dir: "{self.workdir / "js"}"
  max_file_store: {max_file_store}
  max_memory_store: 64MB
}}
cluster {{
  name: {cluster_name}
  listen: 127.0.0.1:{self.ports.cluster}
  routes: [{routes}]
}}
"""
        )
        return conf

    def spawn(self, conf: Path) -> None:
        if self.running:
            return
        with (self.workdir / "nats.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [str(nats_server_binary()), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    def exited(self) -> int | None:
        """The exit code if the process was started and has exited, else None."""
        return None if self._proc is None else self._proc.poll()

    def monitor(self, path: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
        """GET a monitoring endpoint as JSON; None if the node does not answer 200."""
        url = f"http://127.0.0.1:{self.ports.monitor}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                if resp.status != 200:
                    return None
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def terminate(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no leadership transfer (what a crash looks like)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


class EphemeralNatsCluster:
    """``size`` nats-server nodes (``n1``…) in one cluster, with JetStream on each."""

    def __init__(
        self,
        workdir: Path,
        *,
        size: int = 3,
        cluster_name: str = "abasto-test",
        start_timeout_s: float = 30.0,
        max_file_store: str = "1GB",
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = workdir
        self.cluster_name = cluster_name
        self._timeout = start_timeout_s
        self._max_file_store = max_file_store
        ports = free_ports(3 * size)
        self._ports = [NodePorts(*ports[3 * i : 3 * i + 3]) for i in range(size)]
        self.nodes = {
            f"n{i + 1}": ClusterNode(f"n{i + 1}", workdir / f"n{i + 1}", p) for i, p in enumerate(self._ports)
        }

    # --- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (what JetStreamEventStream accepts)."""
        return ",".join(n.url for n in self.nodes.values())

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes.values()]

    def node(self, name: str) -> ClusterNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise ValueError(f"no node {name!r} in the cluster ({', '.join(self.nodes)})") from None

    def running(self) -> list[str]:
        return [name for name, n in self.nodes.items() if n.running]

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every node that is not running and wait until the cluster has a JetStream leader."""
        for node in self.nodes.values():
            if not node.running:
                node.spawn(node.write_config(self.cluster_name, self._ports, self._max_file_store))
        self.wait_ready(list(self.nodes))
        self._wait_meta_current()

    def start_node(self, name: str) -> None:
        """(Re)start one node on its old ports and store; waits until it is healthy and current."""
        node = self.node(name)
        node.spawn(node.write_config(self.cluster_name, self._ports, self._max_file_store))
        self.wait_ready([name])

    def kill(self, name: str) -> None:
        """SIGKILL one node."""
        self.node(name).kill()

    def stop_node(self, name: str) -> None:
        self.node(name).terminate()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.terminate()

    def wait_ready(self, names: list[str]) -> None:
        """Until each named node is healthy (JetStream current) and sees a meta leader.

        Raises:
            ServiceError: a node exited or did not get ready within the start timeout.
        """
        deadline = time.monotonic() + self._timeout
        pending = list(names)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                node = self.nodes[name]
                code = node.exited()
                if code is not None:
                    raise ServiceError(f"nats-server {name} exited with {code}; see {node.workdir}")
                if self._node_ready(node):
                    pending.remove(name)
            if pending:
                time.sleep(0.1)
        if pending:
            raise ServiceError(
                f"nats-server nodes {pending} not ready after {self._timeout}s; see {self.workdir}"
            )

    def _wait_meta_current(self) -> None:
        """Until the meta leader sees every other node as a current peer (R3 assets can be placed)."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            node = self.nodes.get(leader or "")
            meta = (node.monitor("/jsz") or {}).get("meta_cluster") if node is not None else None
            peers = (meta or {}).get("replicas") or []
            if len(peers) == len(self.nodes) - 1 and all(p.get("current") for p in peers):
                return
            time.sleep(0.1)
        raise ServiceError(f"JetStream meta group not current after {self._timeout}s; see {self.workdir}")

    def _node_ready(self, node: ClusterNode) -> bool:
        if node.monitor("/healthz") is None:
            return False
        jsz = node.monitor("/jsz")
        meta = (jsz or {}).get("meta_cluster") or {}
        return bool(meta.get("leader"))

    # --- inspection -------------------------------------------------------------------------------
    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, as seen by any running node."""
        for node in self.nodes.values():
            if node.running:
                meta = (node.monitor("/jsz") or {}).get("meta_cluster") or {}
                if meta.get("leader"):
                    return str(meta["leader"])
        return None

    def stream_messages(self, name: str, stream: str) -> int | None:
        """Messages of ``stream`` in node ``name``'s own replica (None: no replica / no answer)."""
        jsz = self.node(name).monitor("/jsz?accounts=true&streams=true")
        for account in (jsz or {}).get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return int((detail.get("state") or {}).get("messages", 0))
        return None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
