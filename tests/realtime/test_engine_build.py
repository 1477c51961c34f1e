"""The build that runs is the one expected: ``make test-compiled`` runs the engine's tests on the
compiled modules (``ABASTO_EXPECT_COMPILED=1``), ``make test`` on the Python source."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from abasto.realtime.build import COMPILED_MODULES, engine_build, module_build

EXPECT_COMPILED = os.environ.get("ABASTO_EXPECT_COMPILED") == "1"


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_each_engine_module_is_of_the_expected_build(name: str) -> None:
    assert module_build(name) == ("mypyc" if EXPECT_COMPILED else "python")


def test_the_engine_reports_its_build() -> None:
    assert engine_build() == ("mypyc" if EXPECT_COMPILED else "python")


def test_the_rest_of_the_package_stays_interpreted() -> None:
    # msgspec Structs cannot be built by compiled code: the contracts must never be in the list
    assert module_build("abasto.contracts.events") == "python"
    assert not [m for m in COMPILED_MODULES if m.startswith("abasto.contracts")]


def test_setup_compiles_exactly_the_listed_modules() -> None:
    root = Path(__file__).resolve().parents[2]
    compiled_paths = runpy.run_path(str(root / "setup.py"), run_name="setup")["compiled_paths"]
    paths = compiled_paths(root)
    assert paths == ["src/" + m.replace(".", "/") + ".py" for m in COMPILED_MODULES]
    assert all((root / p).is_file() for p in paths)
