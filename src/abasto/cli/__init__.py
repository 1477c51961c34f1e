"""``abasto`` command line. Thin entrypoint: each command calls into its layer's package."""

from __future__ import annotations

import sys

from rich.console import Console

# command modules register their commands on ``app`` when imported
from abasto.cli import api as _api  # noqa: F401
from abasto.cli import bench as _bench  # noqa: F401
from abasto.cli import catalog as _catalog  # noqa: F401
from abasto.cli import delivery as _delivery  # noqa: F401
from abasto.cli import demo as _demo  # noqa: F401
from abasto.cli import ingest as _ingest  # noqa: F401
from abasto.cli import lake as _lake  # noqa: F401
from abasto.cli import maintenance as _maintenance  # noqa: F401
from abasto.cli import ml as _ml  # noqa: F401
from abasto.cli import realtime as _realtime  # noqa: F401
from abasto.cli import services as _services  # noqa: F401
from abasto.cli import sources as _sources  # noqa: F401
from abasto.cli import warehouse as _warehouse  # noqa: F401
from abasto.cli import world as _world  # noqa: F401
from abasto.cli.app import app
from abasto.errors import AbastoError

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: abasto's own errors become a message and a hint, not a traceback."""
    try:
        app()
    except AbastoError as exc:
        err = Console(stderr=True)
        err.print(f"[bold red]error:[/] {exc}")
        if exc.hint:
            err.print(f"[yellow]next:[/] {exc.hint}")
        sys.exit(2 if exc.http_status < 500 else 1)
