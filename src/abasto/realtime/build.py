"""Which build of the stream engine runs: compiled (mypyc) or the Python source.

``ABASTO_MYPYC=1 pip install .`` (``make compiled`` in a checkout) compiles ``COMPILED_MODULES`` to
C extensions (``setup.py`` reads the list from here); otherwise they are the same modules in pure
Python. Both give byte-identical outputs; the compiled engine is ~1.4× (single events) to ~1.7×
(batched records) faster.
"""

from __future__ import annotations

import importlib
from typing import Final, Literal

#: the engine's hot path and the pattern model it calls for every event. Modules holding msgspec
#: Structs (``abasto.contracts``) stay interpreted: compiled code does not build msgspec Structs.
COMPILED_MODULES: Final = (
    "abasto.realtime.engine",
    "abasto.realtime.detector",
    "abasto.realtime.demand",
    "abasto.realtime.state",
    "abasto.realtime.velocity",
    "abasto.realtime.watermark",
    "abasto.realtime.dedup",
    "abasto.realtime.risk",
    "abasto.ml.pattern",
    "abasto.ml.negbin",
    "abasto.ml._hours",
)

Build = Literal["mypyc", "python"]


def module_build(name: str) -> Build:
    """How the module ``name`` was loaded: from a compiled extension or from Python source."""
    path = getattr(importlib.import_module(name), "__file__", None) or ""
    return "python" if path.endswith((".py", ".pyc")) else "mypyc"


def engine_build() -> Build:
    """``mypyc`` when the engine runs compiled, else ``python``."""
    return module_build(COMPILED_MODULES[0])
