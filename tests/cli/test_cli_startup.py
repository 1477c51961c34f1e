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


def test_every_command_renders_its_help() -> None:
    """Walk the whole command tree in one interpreter: rich markup in a docstring or option help
    (``[/NAME]``) breaks only that command's ``--help``, so each one is rendered."""
    code = """
import typer.main
from typer.testing import CliRunner
from abasto.cli.app import app
import abasto.cli  # registers the commands
root = typer.main.get_command(app)
runner = CliRunner()
bad = []
def walk(cmd, path):
    result = runner.invoke(app, [*path, "--help"], catch_exceptions=True)
    if result.exit_code != 0:
        bad.append((" ".join(path) or "abasto", repr(result.exception)))
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        walk(sub, [*path, name])
walk(root, [])
print(len(bad), bad)
"""
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("0 "), proc.stdout
