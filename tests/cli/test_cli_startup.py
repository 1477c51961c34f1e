"""`abasto --help` stays fast: importing the CLI must not import the heavy backends.

The command modules import their layers inside the commands and build adapters through
:class:`abasto.bootstrap.Platform`; these tests run a fresh interpreter so nothing an earlier test
imported hides a regression.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

HEAVY = ("mlflow", "duckdb", "pyiceberg", "psycopg", "pyarrow", "pandas", "nats", "paho", "sqlalchemy")
COMMANDS = ("up", "down", "status", "generate", "demo", "sql", "cdc", "model", "import")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TERMINAL_WIDTH", "COLUMNS"}}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_importing_the_cli_imports_no_heavy_backend() -> None:
    code = (
        f"import abasto.cli, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    )
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert ast.literal_eval(proc.stdout.strip()) == []


def test_help_lists_the_commands() -> None:
    proc = _python("-m", "abasto.cli", "--help")
    assert proc.returncode == 0, proc.stderr
    listed = {line.strip(" │|").split(" ")[0] for line in proc.stdout.splitlines()}
    missing = [name for name in COMMANDS if name not in listed]
    assert not missing, f"missing from --help: {missing}\n{proc.stdout}"
