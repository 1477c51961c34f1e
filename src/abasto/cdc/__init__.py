"""Change data capture (the seed's AWS DMS): full load + ongoing replication from PostgreSQL.

Logical replication with pgoutput, written DMS-like into the raw zone (docs/CONTRACTS.md). Start
with :class:`CdcPipeline`: ``full_load()``, then ``capture_once()`` / ``run()``; ``status()``.
"""

from __future__ import annotations

from abasto.cdc.full_load import FullLoadResult
from abasto.cdc.pipeline import (
    DEFAULT_PUBLICATION,
    DEFAULT_SCHEMAS,
    DEFAULT_SLOT,
    CaptureResult,
    CdcPipeline,
)
from abasto.cdc.status import CdcStatus

__all__ = [
    "DEFAULT_PUBLICATION",
    "DEFAULT_SCHEMAS",
    "DEFAULT_SLOT",
    "CaptureResult",
    "CdcPipeline",
    "CdcStatus",
    "FullLoadResult",
]
