"""CLI commands: demo."""

from __future__ import annotations

from abasto.cli.app import app

__all__ = ["app"]
