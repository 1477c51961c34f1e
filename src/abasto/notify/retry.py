"""Exponential backoff with jitter for sinks that retry transient failures."""

from __future__ import annotations

import random
from dataclasses import dataclass

from abasto.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` tries in all; the wait after the n-th failure is ``base·2^(n-1)`` capped at
    ``max_delay_s``, drawn uniformly from its upper half when ``jitter`` (so retrying senders spread
    out) and never below a server's ``Retry-After`` (itself capped at ``max_delay_s``)."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigError("retry delays must not be negative")

    def delay(
        self, failures: int, *, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after ``failures`` failed attempts (1 = after the first)."""
        delay = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(failures - 1, 0))
        if self.jitter:
            delay = (rng or random).uniform(delay / 2, delay)
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, self.max_delay_s))
        return delay
