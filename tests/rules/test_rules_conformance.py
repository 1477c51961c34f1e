"""Every EventBridge conformance case (AWS user guide + moto, cross-checked with event-ruler)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from abasto.rules import compile_pattern

CASES_FILE = Path("/work/shared/conformance/eventbridge/cases.jsonl")


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


CASES = _cases() if CASES_FILE.is_file() else []


def test_all_cases_are_present() -> None:
    if not CASES_FILE.is_file():
        pytest.skip(f"{CASES_FILE} not available on this machine")
    assert len(CASES) == 129
    assert len({c["id"] for c in CASES}) == 129


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    pattern = compile_pattern(case["pattern"])
    assert pattern.matches(case["event"]) is case["match"]
    # the same pattern given as JSON text (as in an EventBridge rule) behaves the same
    assert compile_pattern(json.dumps(case["pattern"])).matches(case["event"]) is case["match"]
