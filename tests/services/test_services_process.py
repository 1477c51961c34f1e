"""The generic supervised daemon: detached start, pid file, identity (pid reuse), graceful stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from abasto.errors import ServiceError
from abasto.services.process import Daemon, command_identity, pid_is

SLEEP = Path(shutil.which("sleep") or "/bin/sleep")


def _daemon(tmp_path: Path, marker: str) -> Daemon:
    # the unusual duration marks *our* sleep among any others on the machine
    identity = command_identity(SLEEP, marker)
    return Daemon("sleeper", tmp_path / "sleeper.pid", tmp_path / "sleeper.log", identity)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_spawn_detaches_and_stop_removes_pid_file(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "301.5")
    pid = daemon.spawn([str(SLEEP), "301.5"])
    try:
        assert daemon.pid_file.read_text().strip() == str(pid)
        assert daemon.running_pid() == pid
        proc = psutil.Process(pid)
        # own session (no terminal signals from the CLI's shell), not our child (survives us, no zombie)
        assert os.getsid(pid) != os.getsid(0)
        assert proc.ppid() != os.getpid()
    finally:
        stopped = daemon.stop(timeout_s=5)
    assert stopped == pid
    assert _gone(pid)
    assert not daemon.pid_file.exists()
    assert daemon.running_pid() is None


def test_pid_of_another_program_is_not_ours(tmp_path: Path) -> None:
    """A reused pid: the pid file names a live process that is not our binary."""
    daemon = _daemon(tmp_path, "302.5")
    daemon.write_pid(os.getpid())
    assert not pid_is(os.getpid(), daemon.identity)
    assert daemon.running_pid() is None
    assert daemon.clear_stale() == os.getpid()
    assert not daemon.pid_file.exists()
    assert daemon.stop() is None  # and stopping kills nothing


def test_dead_pid_and_garbage_pid_files_are_stale(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "303.5")
    dead = subprocess.Popen([str(SLEEP), "0"])
    dead.wait()
    daemon.write_pid(dead.pid)
    assert daemon.running_pid() is None
    assert daemon.clear_stale() == dead.pid
    daemon.pid_file.write_text("not a pid\n")
    assert daemon.read_pid() is None
    assert daemon.running_pid() is None


def test_lost_pid_file_is_found_again_by_command_line(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "304.5")
    pid = daemon.spawn([str(SLEEP), "304.5"])
    try:
        daemon.pid_file.unlink()
        assert daemon.running_pid() == pid
        assert daemon.read_pid() == pid  # rewritten
    finally:
        daemon.stop(timeout_s=5)
    assert _gone(pid)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "305.5")
    pid = daemon.spawn(["/bin/sh", "-c", f"trap '' TERM; exec {SLEEP} 305.5"])
    deadline = time.monotonic() + 5
    while daemon.running_pid() != pid and time.monotonic() < deadline:  # until the exec happened
        time.sleep(0.02)
    assert daemon.running_pid() == pid
    started = time.monotonic()
    daemon.stop(timeout_s=0.5)
    assert time.monotonic() - started >= 0.5  # it waited for SIGTERM first
    assert _gone(pid)


def test_unwritable_log_is_a_service_error_and_nothing_starts(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    broken = Daemon("broken", tmp_path / "b.pid", blocked / "b.log", command_identity(SLEEP, "306.5"))
    with pytest.raises(ServiceError, match=r"broken log file .*not-a-dir/b\.log") as err:
        broken.spawn([str(SLEEP), "306.5"])
    assert err.value.hint and "ABASTO_HOME" in err.value.hint
    assert broken.find() is None
    assert not broken.pid_file.exists()
