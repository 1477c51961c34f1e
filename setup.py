"""Optional compiled build of the stream engine (mypyc), as mypy and black ship theirs.

``ABASTO_MYPYC=1 pip install .`` (or ``make compiled``) compiles the modules listed in
``abasto.realtime.build.COMPILED_MODULES`` to C extensions with mypyc (needs a C compiler, and mypy
and setuptools >= 70.1 at build time); without it abasto is the same package in pure Python. Both
builds give byte-identical outputs (``make test`` runs the engine's tests against each).
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from setuptools import setup


def compiled_paths(root: Path) -> list[str]:
    """``COMPILED_MODULES`` of ``abasto.realtime.build`` as source paths under ``root`` (read, not
    imported: abasto is not installed while it is being built)."""
    source = root / "src/abasto/realtime/build.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "COMPILED_MODULES":
            names = ast.literal_eval(node.value) if node.value is not None else ()
            return ["src/" + name.replace(".", "/") + ".py" for name in names]
    raise SystemExit(f"COMPILED_MODULES not found in {source}")


def main() -> None:
    ext_modules = []
    # pip asks for the metadata first (``dist_info``): no C code is needed for that
    metadata_only = any(command in sys.argv for command in ("dist_info", "egg_info"))
    if os.environ.get("ABASTO_MYPYC") == "1" and not metadata_only:
        from mypyc.build import mypycify  # noqa: PLC0415 (needed only for the compiled build)

        ext_modules = mypycify(compiled_paths(Path()), opt_level="3", group_name="abasto_engine")
    setup(ext_modules=ext_modules)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import compiled_paths
    main()
