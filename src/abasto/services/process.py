"""A supervised daemon: pid file, detached start, identity check, graceful stop.

The daemon is started through ``/bin/sh`` in a new session and left in the background by it, so
it is re-parented to init: it survives the CLI exiting, never becomes a zombie of a long-lived
caller (a test session), and gets no terminal signals. A pid in the pid file counts only while the
process with that pid really is ours (``identity`` looks at its command line): pids are reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from abasto.errors import ServiceError

Identity = Callable[[psutil.Process], bool]

# "$@" runs in the background with its output appended to the log; the shell prints its pid and exits.
# (A non-interactive shell starts background jobs with SIGINT and SIGQUIT ignored: stop with SIGTERM.)
_LAUNCH = '"$@" </dev/null >>"$ABASTO_DAEMON_LOG" 2>&1 & echo "$!"'


def command_identity(binary: Path, *required_args: str) -> Identity:
    """Identity check: argv[0] is ``binary`` and every one of ``required_args`` is on the command line."""
    wanted = os.path.realpath(binary)

    def check(proc: psutil.Process) -> bool:
        cmdline = proc.cmdline()
        if not cmdline or os.path.realpath(cmdline[0]) != wanted:
            return False
        return all(arg in cmdline for arg in required_args)

    return check


def pid_is(pid: int, identity: Identity) -> bool:
    """True if ``pid`` is a live (non-zombie) process that ``identity`` recognises."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return identity(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as exited); True if it did in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def terminate(pid: int, *, first: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Send ``first`` and wait; SIGKILL if it is still there after ``timeout_s``."""
    try:
        os.kill(pid, first)
    except ProcessLookupError:
        return
    if wait_gone(pid, timeout_s):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_gone(pid, 10.0):
        raise ServiceError(
            f"process {pid} did not exit after SIGKILL",
            hint="check it with `ps`; a process stuck in the kernel (disk, NFS) cannot be killed",
        )


@dataclass(frozen=True)
class Daemon:
    """A background process tracked by a pid file."""

    name: str
    pid_file: Path
    log_file: Path
    identity: Identity

    def read_pid(self) -> int | None:
        try:
            first = self.pid_file.read_text().split()
        except FileNotFoundError:
            return None
        if not first or not first[0].isdigit():
            return None
        return int(first[0]) or None

    def write_pid(self, pid: int) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.pid_file)

    def running_pid(self) -> int | None:
        """Pid of our live process: the pid file's if it is ours, else one found by its command line
        (a lost or overwritten pid file is then rewritten), else None."""
        pid = self.read_pid()
        if pid is not None and pid_is(pid, self.identity):
            return pid
        found = self.find()
        if found is not None:
            self.write_pid(found)
        return found

    def find(self) -> int | None:
        """Search the process table for our process."""
        for proc in psutil.process_iter():
            if pid_is(proc.pid, self.identity):
                return int(proc.pid)
        return None

    def clear_stale(self) -> int | None:
        """Remove a pid file whose process is gone or is someone else's; return that stale pid."""
        stale = self.read_pid()
        if not self.pid_file.exists() or self.running_pid() is not None:
            return None
        self.pid_file.unlink(missing_ok=True)
        return stale

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` detached (new session, output appended to the log); write and return its pid."""
        try:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("a"):
                pass
        except OSError as exc:
            raise ServiceError(
                f"cannot write the {self.name} log file {self.log_file}: {exc.strerror or exc}",
                hint="check that abasto's home directory (ABASTO_HOME) is writable",
            ) from exc
        full_env = dict(os.environ if env is None else env)
        full_env["ABASTO_DAEMON_LOG"] = str(self.log_file)
        launched = subprocess.run(
            ["/bin/sh", "-c", _LAUNCH, f"abasto-{self.name}", *argv],
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,
            timeout=30,
            check=False,
        )
        out = launched.stdout.strip()
        if launched.returncode != 0 or not out.isdigit():
            raise ServiceError(
                f"could not launch {self.name}: {launched.stderr.strip() or out or 'no pid reported'}",
                hint=f"see {self.log_file}",
            )
        pid = int(out)
        self.write_pid(pid)
        return pid

    def stop(self, *, first: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> int | None:
        """Stop it if it runs (``first``, then SIGKILL), remove the pid file; return the pid stopped."""
        pid = self.running_pid()
        if pid is not None:
            terminate(pid, first=first, timeout_s=timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
