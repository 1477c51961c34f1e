"""File sink: one JSON line per delivery, appended and fsynced before the delivery counts."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from abasto.notify.ports import DeliveryFailedError, DeliveryRejectedError, Notification, SinkAck

#: errors a retry cannot fix (the others — disk full, I/O error — may pass)
_TERMINAL_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EROFS,
        errno.EEXIST,
        errno.ENAMETOOLONG,
    }
)


class FileSink:
    """Appends ``{"delivered_at": ..., <notification>}`` lines to ``path`` (JSON Lines).

    Each line is written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced; the
    directory is fsynced when the file is created, so an acknowledged delivery survives a crash.
    """

    def __init__(self, path: str | Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._path = Path(path)
        self._now = now
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"file:{self._path}"

    @property
    def path(self) -> Path:
        return self._path

    def deliver(self, notification: Notification) -> SinkAck:
        record = {"delivered_at": self._now(), **notification.to_builtins()}
        line = msgspec.json.encode(record) + b"\n"
        try:
            with self._lock:
                self._append(line)
        except OSError as exc:
            message = f"{self.name}: {exc.strerror or exc}"
            if exc.errno in _TERMINAL_ERRNOS:
                raise DeliveryRejectedError(message) from exc
            raise DeliveryFailedError(message) from exc
        return SinkAck(attempts=1, detail=f"{len(line)} bytes")

    def _append(self, line: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        created = not self._path.exists()
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """The records of a file written by this sink (for reports and tests)."""
        text = Path(path).read_bytes()
        return [msgspec.json.decode(line) for line in text.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"FileSink({self._path})"
