"""Seeded random streams, one per component and entity.

Every random draw of the world comes from a generator keyed by ``(seed, component, *ids)``, so
the draws of one store (or one store×SKU pair) do not depend on how many other stores exist:
adding stores leaves the first ones' attributes and noise untouched.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: int | str) -> int:
    if isinstance(part, int):
        if part < 0:
            raise ValueError(f"random stream keys must be non-negative, got {part}")
        return part
    return zlib.crc32(part.encode())


def stream(seed: int, component: str, *ids: int | str) -> np.random.Generator:
    """A generator that depends only on ``seed``, the component name and the entity ids."""
    keys = (_key(component), *(_key(i) for i in ids))
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=keys))


def golden_sequence(n: int, seed: int, component: str) -> np.ndarray:
    """``n`` well-spread points in [0, 1): index ``i`` keeps its value whatever ``n`` is.

    Used for quota-like assignments (channel, region) so that small worlds still get every
    channel in about the right proportion.
    """
    offset = stream(seed, component, "offset").random()
    phi = (np.sqrt(5.0) - 1.0) / 2.0
    return np.asarray(np.mod(offset + phi * np.arange(1, n + 1), 1.0), dtype=np.float64)
