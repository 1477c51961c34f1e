"""Amazon EventBridge event patterns: validation, compilation and matching.

:func:`compile_pattern` validates a pattern once and turns it into an :class:`EventPattern`
whose :meth:`~EventPattern.matches` walks only the fields the pattern names. An invalid
pattern raises :class:`~abasto.errors.InvalidInputError` naming the offending path and why.

Matching semantics (EventBridge's):

- the fields of an object are AND'ed; the values listed for a field are OR'ed; ``$or`` takes
  two or more objects at the same level and needs one of them to match;
- a pattern field must be present in the event at the same nesting level (except for
  ``{"exists": false}``); leaf operators only see leaves: a field whose value is an object
  counts as absent for them;
- when the event value is an array, the field matches if any element does (nested arrays
  are flattened); an empty array counts as absent;
- when a nested pattern object meets an array of objects, one element must match the whole
  nested object (fields under the same array element are matched together);
- ``null`` and ``""`` are distinct; numbers compare by value (``300`` matches ``3.0e2``);
  strings never equal numbers or booleans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, Final

from abasto.errors import InvalidInputError
from abasto.rules import operators as ops
from abasto.rules._json import PathT, format_path, loads_strict

OR_KEY: Final = "$or"

#: operator names EventBridge reserves: they cannot be field names inside ``$or``
RESERVED_IN_OR: Final = frozenset(
    {
        "exactly",
        "equals-ignore-case",
        "prefix",
        "suffix",
        "anything-but",
        "exists",
        "wildcard",
        "numeric",
        "cidr",
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "regex",
        "not-wildcard",
        "not-equals-ignore-case",
        "date-after",
        "date-on-or-after",
        "date-before",
        "date-on-or-before",
        "in-date-range",
        "ip-address-in-range",
        "ip-address-not-in-range",
    }
)
OPERATORS: Final = (
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
)
_ANYTHING_BUT_OPS: Final = ("equals-ignore-case", "prefix", "suffix", "wildcard")
_LOWER_OPS: Final = frozenset({">", ">="})
_UPPER_OPS: Final = frozenset({"<", "<="})


class _Missing:
    """The value of a field the event does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_EMPTY: Final[Mapping[str, Any]] = {}


def _iter_leaves(values: list[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, list):
            yield from _iter_leaves(value)
        elif not isinstance(value, dict):
            yield value


def _iter_objects(values: list[Any]) -> Iterator[Mapping[str, Any]]:
    for value in values:
        if isinstance(value, list):
            yield from _iter_objects(value)
        elif isinstance(value, dict):
            yield value


class _Leaf:
    """The list of match values of one field (OR'ed)."""

    __slots__ = ("exact", "exists_false", "exists_true", "ips", "tests")

    def __init__(self) -> None:
        self.exact: set[Hashable] = set()
        self.ips: set[ops.IPAddress] = set()
        self.tests: list[ops.ValueTest] = []
        self.exists_true = False
        self.exists_false = False

    @property
    def exact_only(self) -> bool:
        return bool(self.exact) and not (self.ips or self.tests or self.exists_true or self.exists_false)

    def match(self, value: object) -> bool:
        if isinstance(value, list):
            found = False
            for leaf in _iter_leaves(value):
                found = True
                if self._match_scalar(leaf):
                    return True
            return not found and self.exists_false
        if value is _MISSING or isinstance(value, dict):
            return self.exists_false
        return self._match_scalar(value)

    def _match_scalar(self, value: object) -> bool:
        if self.exists_true:
            return True
        key = ops.scalar_key(value)
        if key is not None and key in self.exact:
            return True
        if self.ips and isinstance(value, str):
            address = ops.parse_ip_literal(value)
            if address is not None and address in self.ips:
                return True
        return any(test(value) for test in self.tests)


class _Object:
    """A pattern object: its fields are AND'ed, and so are its ``$or`` groups."""

    __slots__ = ("fields", "ors")

    def __init__(self, fields: list[tuple[str, _Leaf | _Object]], ors: list[tuple[_Object, ...]]) -> None:
        self.fields = tuple(fields)
        self.ors = tuple(ors)

    def match(self, value: object) -> bool:
        if isinstance(value, dict):
            return self.match_object(value)
        if isinstance(value, list):
            found = False
            for element in _iter_objects(value):
                found = True
                if self.match_object(element):
                    return True
            if found:
                return False
        return self.match_object(_EMPTY)

    def match_object(self, event: Mapping[str, Any]) -> bool:
        for key, node in self.fields:
            if not node.match(event.get(key, _MISSING)):
                return False
        return all(any(branch.match_object(event) for branch in group) for group in self.ors)


#: where to find a necessary condition of a pattern: a field path and the keys of its values
IndexHint = tuple[tuple[str, ...], frozenset[Hashable]]


class EventPattern:
    """A validated, compiled event pattern. Build with :func:`compile_pattern`."""

    __slots__ = ("_index_hint", "_json", "_root")

    def __init__(self, root: _Object, source: Mapping[str, Any], index_hint: IndexHint | None) -> None:
        self._root = root
        self._json = json.dumps(source, separators=(",", ":"), ensure_ascii=False)
        self._index_hint = index_hint

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True if ``event`` (a JSON object, as Python built-ins) matches this pattern."""
        if not isinstance(event, Mapping):
            raise InvalidInputError(f"an event must be a JSON object, got {ops.describe(event)}")
        return self._root.match_object(event)

    @property
    def source(self) -> dict[str, Any]:
        """A fresh copy of the pattern as JSON built-ins."""
        parsed: dict[str, Any] = json.loads(self._json)
        return parsed

    def to_json(self) -> str:
        """Compact JSON text, the form EventBridge's ``PutRule`` takes."""
        return self._json

    @property
    def index_hint(self) -> IndexHint | None:
        """A field (outside any ``$or``) with only exact values: if the pattern matches an event,
        one of the event's leaves at that path has one of these keys (see ``scalar_key``)."""
        return self._index_hint

    def __repr__(self) -> str:
        return f"EventPattern({self._json})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventPattern) and other._json == self._json

    def __hash__(self) -> int:
        return hash(self._json)


def compile_pattern(pattern: Mapping[str, Any] | str | bytes) -> EventPattern:
    """Validate ``pattern`` (JSON text or an object) and compile it.

    Raises :class:`InvalidInputError` whose message names the offending path and the reason.
    """
    if isinstance(pattern, str | bytes):
        pattern = loads_strict(pattern, what="event pattern")
    if not isinstance(pattern, Mapping):
        raise _error((), f"an event pattern must be a JSON object, got {ops.describe(pattern)}")
    compiler = _Compiler()
    root = compiler.compile_object(pattern, (), in_or=False, indexable=True)
    return EventPattern(root, pattern, compiler.best_hint())


def matches(pattern: Mapping[str, Any] | str | bytes | EventPattern, event: Mapping[str, Any]) -> bool:
    """One-off convenience: compile ``pattern`` (unless already compiled) and match ``event``."""
    compiled = pattern if isinstance(pattern, EventPattern) else compile_pattern(pattern)
    return compiled.matches(event)


def _error(path: PathT, why: str) -> InvalidInputError:
    return InvalidInputError(f"invalid event pattern at {format_path(path)}: {why}")


class _Compiler:
    def __init__(self) -> None:
        self.hints: list[tuple[tuple[str, ...], _Leaf]] = []

    def best_hint(self) -> IndexHint | None:
        """The exact-only leaf with the fewest values (deepest on ties)."""
        candidates = [(path, leaf) for path, leaf in self.hints if leaf.exact_only]
        if not candidates:
            return None
        path, leaf = min(candidates, key=lambda c: (len(c[1].exact), -len(c[0])))
        return path, frozenset(leaf.exact)

    # --- structure ---------------------------------------------------------------------------
    def compile_object(self, obj: Mapping[str, Any], path: PathT, *, in_or: bool, indexable: bool) -> _Object:
        if not obj:
            raise _error(path, "empty objects are not allowed")
        fields: list[tuple[str, _Leaf | _Object]] = []
        ors: list[tuple[_Object, ...]] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _error(path, f"field names must be strings, got {key!r}")
            here = (*path, key)
            if key == OR_KEY:
                ors.append(self.or_group(value, here))
                continue
            if in_or and key in RESERVED_IN_OR:
                raise _error(here, f"{key!r} is a reserved operator name and cannot be a field inside $or")
            if isinstance(value, Mapping):
                fields.append((key, self.compile_object(value, here, in_or=in_or, indexable=indexable)))
            elif isinstance(value, list):
                leaf = self.leaf(value, here)
                if indexable:
                    self.hints.append((tuple(str(p) for p in here), leaf))
                fields.append((key, leaf))
            else:
                hint = f"; wrap it in an array: [{json.dumps(value)}]" if _is_scalar(value) else ""
                raise _error(here, f"must be an object or an array, got {ops.describe(value)}{hint}")
        return _Object(fields, ors)

    def or_group(self, value: object, path: PathT) -> tuple[_Object, ...]:
        if not isinstance(value, list):
            raise _error(path, f"$or must be an array of objects, got {ops.describe(value)}")
        if len(value) < 2:
            raise _error(path, f"$or needs at least 2 objects, got {len(value)}")
        branches: list[_Object] = []
        for i, branch in enumerate(value):
            if not isinstance(branch, Mapping):
                raise _error((*path, i), f"only objects are allowed in $or, got {ops.describe(branch)}")
            branches.append(self.compile_object(branch, (*path, i), in_or=True, indexable=False))
        return tuple(branches)

    def leaf(self, values: list[Any], path: PathT) -> _Leaf:
        if not values:
            raise _error(path, "empty arrays are not allowed")
        leaf = _Leaf()
        for i, value in enumerate(values):
            here = (*path, i)
            if isinstance(value, Mapping):
                self.operator(value, here, leaf)
            elif isinstance(value, str):
                address = ops.parse_ip_literal(value)
                if address is not None:
                    leaf.ips.add(address)
                leaf.exact.add(("s", value))
            elif value is None or isinstance(value, bool):
                leaf.exact.add(ops.scalar_key(value))
            elif isinstance(value, int | float):
                if not math.isfinite(value):
                    raise _error(here, f"{value} is not a finite number")
                leaf.exact.add(ops.scalar_key(value))
            else:
                raise _error(
                    here,
                    f"match values must be strings, numbers, true, false, null or operator objects, "
                    f"got {ops.describe(value)}",
                )
        return leaf

    # --- operators ---------------------------------------------------------------------------
    def operator(self, expr: Mapping[str, Any], path: PathT, leaf: _Leaf) -> None:
        if len(expr) != 1:
            found = ", ".join(repr(k) for k in expr) or "none"
            raise _error(path, f"a match expression must have exactly one operator, got {found}")
        ((name, operand),) = expr.items()
        here = (*path, name)
        try:
            if name == "exists":
                if not isinstance(operand, bool):
                    raise ops.OperandError(f"must be true or false, got {ops.describe(operand)}")
                if operand:
                    leaf.exists_true = True
                else:
                    leaf.exists_false = True
            elif name in ("prefix", "suffix"):
                leaf.tests.append(_prefix_suffix(name, operand))
            elif name == "equals-ignore-case":
                leaf.tests.append(ops.EqualsIgnoreCase(_string(operand).lower()))
            elif name == "wildcard":
                leaf.tests.append(ops.Wildcard(ops.check_wildcard(_string(operand))))
            elif name == "numeric":
                leaf.tests.append(_numeric(operand))
            elif name == "cidr":
                leaf.tests.append(ops.Cidr(ops.check_cidr(_string(operand))))
            elif name == "anything-but":
                leaf.tests.append(_anything_but(operand))
            else:
                raise _error(path, f"unknown operator {name!r} (expected one of: {', '.join(OPERATORS)})")
        except ops.OperandError as exc:
            raise _error(here, str(exc)) from None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _string(operand: object) -> str:
    if not isinstance(operand, str):
        raise ops.OperandError(f"must be a string, got {ops.describe(operand)}")
    return operand


def _prefix_suffix(name: str, operand: object) -> ops.ValueTest:
    if isinstance(operand, Mapping):
        if list(operand) != ["equals-ignore-case"]:
            found = ", ".join(repr(k) for k in operand) or "none"
            raise ops.OperandError(f"as an object it takes only 'equals-ignore-case', got {found}")
        text = _string(operand["equals-ignore-case"]).lower()
        return ops.PrefixIgnoreCase(text) if name == "prefix" else ops.SuffixIgnoreCase(text)
    text = _string(operand)
    return ops.Prefix(text) if name == "prefix" else ops.Suffix(text)


def _numeric(operand: object) -> ops.Numeric:
    if not isinstance(operand, list):
        raise ops.OperandError(f"must be an array like ['>', 0, '<=', 5], got {ops.describe(operand)}")
    if len(operand) not in (2, 4):
        raise ops.OperandError(f"takes one or two (operator, number) pairs, got {len(operand)} element(s)")
    pairs = [(operand[i], operand[i + 1]) for i in range(0, len(operand), 2)]
    for op, _ in pairs:
        if op not in ("=", "<", "<=", ">", ">="):
            raise ops.OperandError(f"unknown comparison {op!r} (expected =, <, <=, > or >=)")
    numbers = [ops.check_numeric_operand(number) for _, number in pairs]
    (op1, _), n1 = pairs[0], numbers[0]
    if len(pairs) == 1:
        if op1 == "=":
            return ops.Numeric(n1, False, n1, False)
        if op1 in _LOWER_OPS:
            return ops.Numeric(n1, op1 == ">", None, False)
        return ops.Numeric(None, False, n1, op1 == "<")
    (op2, _), n2 = pairs[1], numbers[1]
    if op1 not in _LOWER_OPS or op2 not in _UPPER_OPS:
        raise ops.OperandError(
            f"a range is a lower bound then an upper bound (['>' or '>=', a, '<' or '<=', b]), "
            f"got {op1!r} then {op2!r}"
        )
    if not n1 < n2:
        raise ops.OperandError(f"the lower bound {n1} must be less than the upper bound {n2}")
    return ops.Numeric(n1, op1 == ">", n2, op2 == "<")


def _anything_but(operand: object) -> ops.ValueTest:
    if isinstance(operand, Mapping):
        if len(operand) != 1 or next(iter(operand)) not in _ANYTHING_BUT_OPS:
            found = ", ".join(repr(k) for k in operand) or "none"
            raise ops.OperandError(
                f"as an object it takes exactly one of {', '.join(_ANYTHING_BUT_OPS)}, got {found}"
            )
        ((name, value),) = operand.items()
        texts = _string_set(name, value)
        if name == "equals-ignore-case":
            return ops.AnythingButIgnoreCase(frozenset(t.lower() for t in texts))
        if name == "prefix":
            return ops.AnythingButPrefix(texts)
        if name == "suffix":
            return ops.AnythingButSuffix(texts)
        try:
            return ops.AnythingButWildcard(tuple(ops.check_wildcard(t) for t in texts))
        except ops.OperandError as exc:
            raise ops.OperandError(f"wildcard: {exc}") from None
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise ops.OperandError("the list of excluded values must not be empty")
    kinds = {"string" if isinstance(v, str) else "number" if ops.is_number(v) else "other" for v in values}
    if "other" in kinds:
        bad = next(v for v in values if not (isinstance(v, str) or ops.is_number(v)))
        raise ops.OperandError(f"takes strings or numbers only, got {ops.describe(bad)}")
    if len(kinds) > 1:
        raise ops.OperandError("a list must hold only strings or only numbers, not both")
    if kinds == {"number"}:
        values = [ops.check_numeric_operand(v) for v in values]
    return ops.AnythingBut(frozenset(ops.scalar_key(v) for v in values))


def _string_set(name: str, value: object) -> tuple[str, ...]:
    texts = value if isinstance(value, list) else [value]
    if not texts:
        raise ops.OperandError(f"{name}: the list must not be empty")
    out: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise ops.OperandError(f"{name}: takes a string or a list of strings, got {ops.describe(text)}")
        if name in ("prefix", "suffix") and not text:
            raise ops.OperandError(f"{name}: an empty {name} is not allowed")
        out.append(text)
    return tuple(out)
