"""Step timing and progress display for long runs (rich)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from abasto.demo.result import Step


class StepLog:
    """``with log.step("name") as note: ...; note("detail")`` — spinner while running, a line after."""

    def __init__(self, console: Console | None, total: int) -> None:
        self.console = console
        self.total = total
        self.steps: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[_Note]:
        note = _Note()
        started = time.perf_counter()
        n = len(self.steps) + 1
        if self.console is None:
            yield note
        else:
            with self.console.status(f"[{n}/{self.total}] {name}…") as status:
                note.status = status
                note.prefix = f"[{n}/{self.total}] {name}"
                yield note
        seconds = time.perf_counter() - started
        self.steps.append(Step(name, seconds, note.detail))
        if self.console is not None:
            self.console.print(
                f"[green]✓[/] [{n}/{self.total}] {name} [dim]({seconds:.1f}s)[/] {note.detail}",
                highlight=False,
            )


class _Note:
    def __init__(self) -> None:
        self.detail = ""
        self.status: object | None = None
        self.prefix = ""

    def __call__(self, detail: str) -> None:
        self.detail = detail

    def progress(self, message: str) -> None:
        """Update the spinner text while the step runs."""
        update = getattr(self.status, "update", None)
        if update is not None:
            update(f"{self.prefix}: {message}")
