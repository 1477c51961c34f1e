"""Convergence under failure (issue 4): a random insert/update/delete workload runs on a PostgreSQL of
the test's own while the capture worker (``python -m abasto.cli cdc run``, a subprocess) is SIGKILLed
and PostgreSQL is restarted (fast and immediate shutdowns) at random moments. Once the workload
stops and the worker has caught up, every curated table must equal its source table row by row.

The random choices come from one seed, printed in every failure message; re-run one with
``ABASTO_CHAOS_SEED=<seed> pytest tests/cdc/test_cdc_kill_restart.py``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from abasto.catalog import open_catalog
from abasto.cdc import CdcPipeline
from abasto.cdc.lsn import parse_lsn
from abasto.lake import TableSpec, curate_table
from abasto.services import up
from abasto.services.postgres import PostgresService
from abasto.services.process import wait_gone
from abasto.settings import Settings

pytestmark = pytest.mark.services

SettingsFactory = Callable[..., Settings]

DDL = """
CREATE SCHEMA sales;
CREATE TABLE sales.kr_orders (
    order_id bigint PRIMARY KEY, store_id text NOT NULL, status text NOT NULL,
    amount numeric(12, 2), ordered_at timestamptz NOT NULL
);
CREATE TABLE sales.kr_lines (
    order_id bigint NOT NULL, line_no integer NOT NULL, sku text NOT NULL, qty integer NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE sales.kr_notes (note_id integer PRIMARY KEY, body text, tags text[]);
ALTER TABLE sales.kr_notes REPLICA IDENTITY FULL;
"""
#: table → (key columns, every column in order)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kr_orders": (("order_id",), ("order_id", "store_id", "status", "amount", "ordered_at")),
    "kr_lines": (("order_id", "line_no"), ("order_id", "line_no", "sku", "qty")),
    "kr_notes": (("note_id",), ("note_id", "body", "tags")),
}
STATUSES = ("taken", "confirmed", "picked", "delivered", "cancelled")


# --- the source workload ------------------------------------------------------------------------


@dataclass
class Workload:
    """Random transactions on the source until stopped; reconnects through PostgreSQL restarts.

    Order ids are never reused, so a commit whose outcome was lost with the connection is harmless:
    the comparison is with what the source holds at the end, not with this writer's view.
    """

    dsn: str
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    next_order: int = 1
    live: list[int] = field(default_factory=list)
    commits: int = 0
    failures: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    with psycopg.connect(self.dsn, connect_timeout=3) as conn:
                        while not self.stop.is_set():
                            self.transaction(conn)
                            conn.commit()
                            self.commits += 1
                except psycopg.OperationalError:
                    self.failures += 1
                    self.stop.wait(0.2)
        except BaseException as exc:  # noqa: BLE001 (surfaced by the test)
            self.error = exc

    def transaction(self, conn: psycopg.Connection[Any]) -> None:
        rng = self.rng
        # mostly small transactions, now and then a big one (batches then end inside it)
        ops = rng.randint(300, 1500) if rng.random() < 0.03 else rng.randint(1, 12)
        with conn.cursor() as cur:
            for _ in range(ops):
                roll = rng.random()
                if roll < 0.35 or len(self.live) < 20:
                    self._insert_order(cur)
                elif roll < 0.6:
                    cur.execute(
                        "UPDATE sales.kr_orders SET status = %s, amount = amount + %s WHERE order_id = %s",
                        (rng.choice(STATUSES), Decimal(rng.randint(-500, 500)) / 100, rng.choice(self.live)),
                    )
                elif roll < 0.75:
                    cur.execute(
                        "UPDATE sales.kr_lines SET qty = qty + 1 WHERE order_id = %s",
                        (rng.choice(self.live),),
                    )
                elif roll < 0.85:
                    doomed = self.live.pop(rng.randrange(len(self.live)))
                    cur.execute("DELETE FROM sales.kr_lines WHERE order_id = %s", (doomed,))
                    cur.execute("DELETE FROM sales.kr_orders WHERE order_id = %s", (doomed,))
                else:
                    self._note(cur)

    def _insert_order(self, cur: psycopg.Cursor[Any]) -> None:
        rng = self.rng
        order = self.next_order
        self.next_order += 1
        cur.execute(
            "INSERT INTO sales.kr_orders VALUES (%s, %s, 'taken', %s, %s)",
            (
                order,
                f"S{rng.randint(1, 60):04d}",
                Decimal(rng.randint(100, 99_999)) / 100,
                datetime(2026, 10, 1, tzinfo=UTC).replace(microsecond=rng.randint(0, 999_999)),
            ),
        )
        lines = [
            (order, n, f"SKU-{rng.randint(1, 40):02d}", rng.randint(1, 24)) for n in range(rng.randint(1, 4))
        ]
        cur.executemany("INSERT INTO sales.kr_lines VALUES (%s, %s, %s, %s)", lines)
        self.live.append(order)

    def _note(self, cur: psycopg.Cursor[Any]) -> None:
        rng = self.rng
        note = rng.randint(1, 50)
        roll = rng.random()
        if roll < 0.15:
            cur.execute("DELETE FROM sales.kr_notes WHERE note_id = %s", (note,))
        elif roll < 0.5:  # leaves a large (TOASTed) body unchanged: the old row (identity FULL) has it
            cur.execute(
                "UPDATE sales.kr_notes SET tags = %s WHERE note_id = %s",
                ([f"t{rng.randint(0, 9)}", None], note),
            )
        else:
            # random hex does not compress: bodies above ~2 kB are stored out of line
            body = rng.randbytes(rng.choice((8, 4000))).hex()
            cur.execute(
                "INSERT INTO sales.kr_notes VALUES (%s, %s, %s) "
                "ON CONFLICT (note_id) DO UPDATE SET body = EXCLUDED.body",
                (note, body, ["a", "b"]),
            )


# --- the capture worker and the server ------------------------------------------------------------


class Worker:
    """``abasto cdc run`` in a subprocess of its own, against the test's settings."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ABASTO_")}
        env.update(ABASTO_HOME=str(settings.home_dir), ABASTO_POSTGRES__PORT=str(settings.postgres.port))
        self.env = env
        self.cwd = log_path.parent
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "abasto.cli",
                    "cdc",
                    "run",
                    "--poll-interval",
                    "0.1",
                    "--max-changes",
                    "3000",
                ],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def ensure_running(self) -> None:
        """Restart the worker if it exited on its own (recorded: a worker should survive restarts)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits.append(self.proc.returncode)
            self.start()

    def kill(self) -> None:
        self.ensure_running()
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.start()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def restart_postgres(settings: Settings, *, immediate: bool, down_s: float) -> None:
    """Stop PostgreSQL (fast shutdown, or immediate = SIGQUIT: crash recovery at the next start),
    stay down ``down_s`` seconds, start it again."""
    service = PostgresService(settings)
    if immediate:
        pid = service.running_pid()
        assert pid is not None, "PostgreSQL is not running"
        os.kill(pid, signal.SIGQUIT)
        assert wait_gone(pid, 30), "PostgreSQL did not stop on SIGQUIT"
    else:
        service.stop()
    time.sleep(down_s)
    up(settings, only=("postgres",), timeout_s=60)


# --- comparison -----------------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def row_digests(rows: list[tuple[Any, ...]], key_width: int) -> dict[tuple[Any, ...], str]:
    """Key → md5 of the row's normalized values (the row-wise checksum)."""
    out: dict[tuple[Any, ...], str] = {}
    for row in rows:
        normal = [_normal(v) for v in row]
        out[tuple(row[:key_width])] = hashlib.md5(repr(normal).encode()).hexdigest()
    return out


def source_digests(dsn: str, table: str) -> dict[tuple[Any, ...], str]:
    keys, columns = TABLES[table]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM sales.{table}").fetchall()
    return row_digests([tuple(r) for r in rows], len(keys))


def curated_digests(settings: Settings, table: str) -> dict[tuple[Any, ...], str]:
    keys, columns = TABLES[table]
    data = open_catalog(settings).load_table(f"curated.{table}").scan().to_arrow().select(list(columns))
    rows = [tuple(r[c] for c in columns) for r in data.to_pylist()]
    return row_digests(rows, len(keys))


def differences(source: dict[tuple[Any, ...], str], curated: dict[tuple[Any, ...], str]) -> str:
    missing = sorted(source.keys() - curated.keys())
    extra = sorted(curated.keys() - source.keys())
    changed = sorted(k for k in source.keys() & curated.keys() if source[k] != curated[k])
    if not (missing or extra or changed):
        return ""
    return (
        f"{len(source)} source rows, {len(curated)} curated: {len(missing)} missing {missing[:5]}, "
        f"{len(extra)} extra {extra[:5]}, {len(changed)} differ {changed[:5]}"
    )


def spec(table: str) -> TableSpec:
    return TableSpec(name=table, source=f"sales_db/{table}", keys=TABLES[table][0], description="chaos test")


def curate_all(settings: Settings) -> None:
    for table in TABLES:
        curate_table(spec(table), catalog=open_catalog(settings), raw_uri=settings.raw_uri)


def wal_insert_lsn(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return parse_lsn(row[0])


def slot_confirmed(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'abasto_slot'"
        ).fetchone()
    assert row is not None and row[0] is not None
    return parse_lsn(row[0])


# --- the scenario ---------------------------------------------------------------------------------


@dataclass
class ChaosReport:
    seed: int
    actions: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"seed={self.seed} (ABASTO_CHAOS_SEED={self.seed}); actions: {', '.join(self.actions)}"


@contextmanager
def _running(worker: Worker, workload: Workload) -> Iterator[None]:
    try:
        yield
    finally:
        workload.stop.set()
        worker.stop()


def run_chaos(
    settings: Settings, tmp_path: Path, *, seed: int, duration_s: float, catch_up_s: float
) -> ChaosReport:
    report = ChaosReport(seed)
    rng = random.Random(seed)
    up(settings, only=("postgres",), timeout_s=60)
    dsn = settings.postgres.dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DDL.encode())
    workload = Workload(dsn, random.Random(rng.random()))
    for _ in range(30):  # something for the full load to copy
        with psycopg.connect(dsn) as conn:
            workload.transaction(conn)
    with CdcPipeline(dsn, settings.raw_uri, schemas=("sales",)) as pipeline:
        pipeline.full_load()
    worker = Worker(settings, tmp_path / "worker.log")
    writer = threading.Thread(target=workload.run, daemon=True)
    with _running(worker, workload):
        worker.start()
        writer.start()
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.5))
            roll = rng.random()
            if roll < 0.45:
                report.actions.append("kill worker")
                worker.kill()
            elif roll < 0.65:
                report.actions.append("restart pg fast")
                restart_postgres(settings, immediate=False, down_s=rng.uniform(0, 0.5))
            elif roll < 0.85:
                report.actions.append("restart pg immediate")
                restart_postgres(settings, immediate=True, down_s=rng.uniform(0, 0.5))
            else:
                report.actions.append("curate")
                curate_all(settings)
            worker.ensure_running()
        workload.stop.set()
        writer.join(timeout=30)
        assert workload.error is None, f"{report}: the workload failed: {workload.error!r}"
        assert workload.commits > 0, f"{report}: the workload committed nothing"
        worker.ensure_running()
        target = wal_insert_lsn(dsn)
        caught_up_by = time.monotonic() + catch_up_s
        while True:
            with suppress(psycopg.OperationalError):
                if slot_confirmed(dsn) >= target:
                    break
            assert time.monotonic() < caught_up_by, (
                f"{report}: the worker did not catch up in {catch_up_s} s\n{worker.log_tail()}"
            )
            worker.ensure_running()
            time.sleep(0.2)
    assert not worker.unexpected_exits, (
        f"{report}: the worker exited on its own (codes {worker.unexpected_exits})\n{worker.log_tail()}"
    )
    curate_all(settings)
    for table in TABLES:
        source = source_digests(dsn, table)
        assert source or table == "kr_notes", f"{report}: source table {table} is empty"
        diff = differences(source, curated_digests(settings, table))
        assert not diff, f"{report}: curated.{table} differs from sales.{table}: {diff}\n{worker.log_tail()}"
    report.actions.append(f"{workload.commits} commits, {workload.failures} reconnects")
    return report


def test_curated_equals_source_after_kills_and_restarts(
    settings_factory: SettingsFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fast variant: a worker kill and fast and immediate restarts in ~6 s of workload."""
    seed = int(os.environ.get("ABASTO_CHAOS_SEED", "20261125"))
    report = run_chaos(settings_factory(), tmp_path, seed=seed, duration_s=6.0, catch_up_s=60.0)
    with capsys.disabled():
        print(f"\nchaos: {report}")
    assert any(a.startswith("kill") for a in report.actions) or any(
        a.startswith("restart") for a in report.actions
    )


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_curated_equals_source_after_long_chaos(
    settings_factory: SettingsFactory, tmp_path: Path, round_: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Slow variant: a minute of workload per round, a fresh random seed each round (printed)."""
    seed = int(os.environ.get("ABASTO_CHAOS_SEED", str(random.SystemRandom().randrange(2**31))))
    report = run_chaos(settings_factory(), tmp_path, seed=seed + round_, duration_s=60.0, catch_up_s=180.0)
    with capsys.disabled():
        print(f"\nchaos round {round_}: {report}")
    assert len(report.actions) > 10


def test_row_checksum_sees_every_kind_of_difference() -> None:
    at = datetime(2026, 10, 1, 12, tzinfo=UTC)
    source = row_digests([(1, "taken", Decimal("1.50"), at), (2, "picked", None, at)], 1)
    same = row_digests([(2, "picked", None, at), (1, "taken", Decimal("1.50"), at.astimezone())], 1)
    assert differences(source, same) == ""
    changed = row_digests([(1, "taken", Decimal("1.51"), at), (2, "picked", None, at)], 1)
    assert "1 differ [(1,)]" in differences(source, changed)
    assert "1 missing [(2,)]" in differences(source, row_digests([(1, "taken", Decimal("1.50"), at)], 1))
    extra = row_digests([(1, "taken", Decimal("1.50"), at), (2, "picked", None, at), (3, "x", None, at)], 1)
    assert "1 extra [(3,)]" in differences(source, extra)
