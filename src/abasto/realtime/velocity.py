"""Sales velocity as an exponentially weighted rate over event time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

#: half-life → tau (the same division, done once per half-life in use)
_TAUS: dict[float, float] = {}


@dataclass(slots=True)
class EwmaRate:
    """Units per hour, each unit weighted by exp(-age / tau); tau = half_life / ln 2.

    For sales arriving at a steady rate r, the estimate converges to r (after a few half-lives).
    Out-of-order units are weighted by their own age.
    """

    half_life_h: float
    _mass: float = 0.0
    _at: datetime | None = None

    @property
    def _tau_h(self) -> float:
        tau = _TAUS.get(self.half_life_h)
        if tau is None:
            tau = _TAUS[self.half_life_h] = self.half_life_h / math.log(2.0)
        return tau

    def add(self, at: datetime, units: float) -> None:
        if self._at is None:
            # a float whatever the caller passed: the snapshot's bytes must not depend on it
            self._mass, self._at = float(units), at
            return
        age_h = (self._at - at).total_seconds() / 3600.0
        if age_h >= 0:  # late unit: weigh it by its age
            self._mass += units * math.exp(-age_h / self._tau_h)
        else:
            self._mass = self._mass * math.exp(age_h / self._tau_h) + units
            self._at = at

    def rate(self, at: datetime) -> float:
        """Units per hour as of ``at``."""
        if self._at is None:
            return 0.0
        age_h = max(0.0, (at - self._at).total_seconds() / 3600.0)
        return self._mass * math.exp(-age_h / self._tau_h) / self._tau_h

    # --- checkpoint ------------------------------------------------------------------------------
    def export(self) -> tuple[float, datetime | None]:
        return self._mass, self._at

    def restore(self, mass: float, at: datetime | None) -> None:
        self._mass, self._at = mass, at
