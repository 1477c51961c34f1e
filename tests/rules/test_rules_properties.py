"""Invariants of pattern matching, checked on generated events and patterns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from abasto.rules import Rule, RuleEngine, Target, compile_pattern, matches

KEYS = st.sampled_from(["a", "b", "c", "detail", "state", "n", "x-y", "$or-not", "Zé"])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
NUMBER = st.one_of(
    st.integers(-(10**6), 10**6),
    st.decimals(-(10**6), 10**6, places=3, allow_nan=False, allow_infinity=False).map(float),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON_VALUE = st.recursive(
    SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(KEYS, children, max_size=3),
    ),
    max_leaves=12,
)
EVENT = st.dictionaries(KEYS, JSON_VALUE, min_size=1, max_size=4)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numeric_ok(v: float) -> bool:
    if isinstance(v, int):
        return abs(v) <= 5e9
    exponent = Decimal(repr(v)).normalize().as_tuple().exponent
    return abs(v) <= 5e9 and isinstance(exponent, int) and exponent >= -6


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


@st.composite
def _condition_for(draw: st.DrawFn, value: Any) -> Any:
    """A match value (exact or operator) that ``value`` satisfies."""
    options: list[Any] = [value, {"exists": True}]
    if isinstance(value, str):
        cut = draw(st.integers(0, len(value)))
        cut2 = draw(st.integers(cut, len(value)))
        options += [
            {"prefix": value[:cut]},
            {"suffix": value[cut:]},
            {"prefix": {"equals-ignore-case": value[:cut]}},
            {"wildcard": _escape(value)},
            {"wildcard": _escape(value[:cut]) + "*" + _escape(value[cut2:])},
            {"anything-but": value + "x"},
            {"anything-but": {"suffix": value + "x"}},
        ]
        if value.upper().lower() == value.lower():
            options.append({"equals-ignore-case": value.upper()})
    elif _is_number(value) and _numeric_ok(value):
        options += [
            {"numeric": ["=", value]},
            {"numeric": [">=", value]},
            {"numeric": ["<=", value]},
            {"anything-but": [round(value + 1, 3)]},
            {"anything-but": "text"},
        ]
    return draw(st.sampled_from(options))


@st.composite
def _pattern_from(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(event)), min_size=1, unique=True))
    pattern: dict[str, Any] = {}
    for key in keys:
        value = event[key]
        if isinstance(value, list):
            flat = _flatten(value)
            leaves = [v for v in flat if not isinstance(v, dict)]
            objects = [v for v in flat if isinstance(v, dict) and v]
            if leaves:
                pattern[key] = [draw(_condition_for(draw(st.sampled_from(leaves))))]
            elif objects:
                pattern[key] = draw(_pattern_from(draw(st.sampled_from(objects))))
            else:
                pattern[key] = [{"exists": False}]
        elif isinstance(value, dict):
            pattern[key] = draw(_pattern_from(value)) if value else [{"exists": False}]
        else:
            pattern[key] = [draw(_condition_for(value))]
    return pattern


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


@settings(deadline=None)
@given(st.data(), EVENT)
def test_pattern_built_from_an_events_own_values_matches_it(
    data: st.DataObject, event: dict[str, Any]
) -> None:
    pattern = data.draw(_pattern_from(event))
    assert matches(pattern, event), pattern


@settings(deadline=None)
@given(st.data(), EVENT, KEYS, JSON_VALUE)
def test_fields_the_pattern_does_not_name_do_not_matter(
    data: st.DataObject, event: dict[str, Any], extra_key: str, extra: Any
) -> None:
    pattern = data.draw(_pattern_from(event))
    assume(extra_key not in pattern and extra_key not in event)
    assert matches(pattern, {**event, extra_key: extra})


@settings(deadline=None)
@given(st.one_of(TEXT, NUMBER.filter(_numeric_ok)), st.booleans())
def test_anything_but_x_never_matches_x(x: Any, as_list: bool) -> None:
    operand = [x] if as_list else x
    assert not matches({"f": [{"anything-but": operand}]}, {"f": x})
    assert not matches({"f": [{"anything-but": operand}]}, {"f": [x, x]})
    assert not matches({"f": [{"anything-but": operand}]}, {})


@settings(deadline=None)
@given(TEXT.filter(bool), TEXT)
def test_anything_but_prefix_and_suffix_never_match_their_own_extensions(affix: str, rest: str) -> None:
    assert not matches({"f": [{"anything-but": {"prefix": affix}}]}, {"f": affix + rest})
    assert not matches({"f": [{"anything-but": {"suffix": affix}}]}, {"f": rest + affix})
    assert not matches({"f": [{"anything-but": {"wildcard": _escape(affix) + "*"}}]}, {"f": affix + rest})


@settings(deadline=None)
@given(
    st.lists(TEXT, min_size=1, max_size=4) | st.lists(NUMBER.filter(_numeric_ok), min_size=1, max_size=4),
    SCALAR,
)
def test_anything_but_list_is_the_negation_of_the_exact_list(excluded: list[Any], value: Any) -> None:
    """For one scalar, ``[{"anything-but": L}]`` matches exactly when ``L`` (as exact values) does not."""
    event = {"f": value}
    assert matches({"f": [{"anything-but": excluded}]}, event) is not matches({"f": excluded}, event)


@settings(deadline=None)
@given(
    NUMBER.filter(_numeric_ok),
    NUMBER.filter(_numeric_ok),
    NUMBER,
    st.sampled_from([">", ">="]),
    st.sampled_from(["<", "<="]),
)
def test_numeric_ranges_agree_with_comparisons(
    lo: float, hi: float, x: float, low_op: str, high_op: str
) -> None:
    assume(lo < hi)
    expected = (x > lo if low_op == ">" else x >= lo) and (x < hi if high_op == "<" else x <= hi)
    assert matches({"n": [{"numeric": [low_op, lo, high_op, hi]}]}, {"n": x}) is expected
    assert matches({"n": [{"numeric": ["=", lo]}]}, {"n": x}) is (x == lo)


@settings(deadline=None)
@given(EVENT, st.data())
def test_exists_true_and_false_partition_every_field(event: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(KEYS)
    present = matches({key: [{"exists": True}]}, event)
    absent = matches({key: [{"exists": False}]}, event)
    assert present is not absent


# --- the engine's index is only a shortcut: it must agree with matching every rule ----------------

SMALL = st.sampled_from(["p", "q", "r", 1, 2, True, None])
RULE_PATTERN = st.recursive(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.lists(SMALL, min_size=1, max_size=2), min_size=1),
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "d"]), inner, min_size=1, max_size=2),
        st.builds(lambda x, y, z: {**x, "$or": [y, z]}, inner, inner, inner),
        st.builds(lambda x: {**x, "e": [{"exists": False}]}, inner),
    ),
    max_leaves=6,
)
SMALL_EVENT = st.recursive(
    SMALL,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), children, max_size=3),
    ),
    max_leaves=10,
).filter(lambda e: isinstance(e, dict))


@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.lists(SMALL_EVENT, min_size=1, max_size=5),
    st.lists(RULE_PATTERN, max_size=4),
    st.lists(st.booleans(), min_size=9, max_size=9),
)
def test_engine_routes_like_brute_force(
    data: st.DataObject,
    events: list[dict[str, Any]],
    random_patterns: list[dict[str, Any]],
    enabled: list[bool],
) -> None:
    # patterns derived from the events (so that many rules match) plus unrelated ones
    derived = [data.draw(_pattern_from(e)) for e in events if e]
    patterns = derived + random_patterns
    rules = [
        Rule(
            name=f"r{i}",
            pattern=compile_pattern(p),
            targets=(Target(f"t{i}", f"topic-{i % 3}"),),
            enabled=enabled[i],
        )
        for i, p in enumerate(patterns)
    ]
    engine = RuleEngine(rules)
    for event in events:
        expected = [r for r in rules if r.enabled and r.pattern.matches(event)]
        assert engine.matching_rules(event) == expected
        assert engine.route(event) == list(dict.fromkeys(r.targets[0].topic for r in expected))
