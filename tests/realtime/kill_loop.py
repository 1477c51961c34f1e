"""SIGKILL a worker subprocess at random points of its progress, restart it, and let it finish.

Shared by the reliability tests: the realtime worker (progress = its checkpointed stream seq) and
the raw-zone delivery (progress = how many batch manifests it has written).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class KillRecord:
    """What happened to each killed run, and how the last (undisturbed) run ended."""

    #: progress seen right after each SIGKILL
    reached: list[int] = field(default_factory=list)
    #: wall seconds of every run, killed ones first
    seconds: list[float] = field(default_factory=list)
    final_stdout: str = ""


async def kill_and_restart(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    progress: Callable[[], int],
    targets: Sequence[int],
    rng: random.Random,
    wait_s: float = 300.0,
    final_timeout_s: float = 900.0,
    jitter_s: float = 0.3,
) -> KillRecord:
    """Run ``command`` once per target: SIGKILL it once ``progress()`` reaches the target (plus a
    random delay of up to ``jitter_s``, so the kill lands anywhere: mid-batch, mid-publish,
    mid-write); then run it a last time to completion (it must exit 0).

    A run is killed only once it has made progress of its own (beyond what the killed run before
    it left), even where its target was already passed: every kill lands at a distinct point.

    Raises AssertionError if a run exits on its own before it is killed, or the last one fails.
    """
    record = KillRecord()
    for wanted in sorted(targets):
        started = time.monotonic()
        target = max(wanted, progress() + 1)
        # stderr to a file, not a pipe: a chatty worker must never block on a full pipe
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(list(command), env=dict(env), stdout=subprocess.DEVNULL, stderr=err)
            try:
                deadline = started + wait_s
                while proc.poll() is None and progress() < target and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.0, jitter_s))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                code = await asyncio.to_thread(proc.wait, 60)
            finally:
                if proc.poll() is None:  # the test failed while waiting: leave no orphan behind
                    proc.kill()
                    proc.wait(10)
            err.seek(0)
            stderr = err.read().decode(errors="replace")[-4_000:]
        assert code == -signal.SIGKILL, (
            f"{command[2:5]} ended with {code} before it could be killed: {stderr}"
        )
        record.reached.append(progress())
        record.seconds.append(time.monotonic() - started)
    started = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run,
        list(command),
        check=False,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=final_timeout_s,
    )
    record.seconds.append(time.monotonic() - started)
    assert done.returncode == 0, done.stderr
    record.final_stdout = done.stdout
    return record
