"""Value tests for one leaf of an event pattern, and the validation of their operands.

Each test is called with one *present* scalar of the event (a string, number, boolean or
null; arrays were already flattened by the caller) and says whether it matches. Absence and
``exists`` are handled by the leaf matcher in :mod:`abasto.rules.pattern`.

Semantics follow Amazon EventBridge (and ``aws/event-ruler``, its open-source engine):

- ``prefix``/``suffix``/``equals-ignore-case``/``wildcard``/``cidr`` only match strings;
- ``numeric`` only matches JSON numbers (booleans are not numbers);
- ``anything-but`` matches every present value that is not excluded, whatever its type
  (``{"anything-but": "x"}`` matches ``5`` and ``null``), but never an absent field.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol

#: EventBridge's documented range for numeric matching, and its precision
NUMERIC_LIMIT: Final = 5_000_000_000
NUMERIC_MAX_DECIMALS: Final = 6

_IPV4_LIKE: Final = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6_LIKE: Final = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ValueTest(Protocol):
    def __call__(self, value: object) -> bool: ...


class OperandError(ValueError):
    """An operator's operand is invalid; the pattern compiler adds the path."""


def scalar_key(value: object) -> Hashable | None:
    """A hashable key under which equal JSON scalars collide and different types never do.

    ``1`` and ``1.0`` share a key (EventBridge compares numbers by value); ``True`` and ``1``,
    or ``"1"`` and ``1``, do not. Non-scalars have no key.
    """
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_ip_literal(text: str) -> IPAddress | None:
    """The address if ``text`` is an IPv4/IPv6 literal (as EventBridge recognises them)."""
    if not (_IPV4_LIKE.fullmatch(text) or _IPV6_LIKE.fullmatch(text)):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 address a.b.c.d
    return address


# --- operand validation ------------------------------------------------------------------------


def check_numeric_operand(value: object) -> int | float:
    """A number usable by ``numeric``/``anything-but``: finite, within ±5e9, ≤ 6 decimals."""
    if not is_number(value):
        raise OperandError(f"expected a number, got {describe(value)}")
    assert isinstance(value, int | float)
    if isinstance(value, float) and not math.isfinite(value):
        raise OperandError(f"{value} is not a finite number")
    if not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
        raise OperandError(f"{value} is outside the supported range -5e9..5e9")
    if isinstance(value, float):
        exponent = Decimal(repr(value)).normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -NUMERIC_MAX_DECIMALS:
            raise OperandError(f"{value} has more than {NUMERIC_MAX_DECIMALS} decimal places")
    return value


def check_wildcard(text: str) -> re.Pattern[str]:
    """Compile a wildcard (``*`` = any run of characters, ``\\*`` and ``\\\\`` escape) to a regex."""
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "*":
            if i + 1 < len(text) and text[i + 1] == "*":
                raise OperandError(f"consecutive wildcard characters at position {i}")
            parts.append(re.escape("".join(literal)))
            parts.append(".*")
            literal = []
        elif ch == "\\":
            if i + 1 < len(text) and text[i + 1] in "*\\":
                literal.append(text[i + 1])
                i += 1
            else:
                raise OperandError(
                    f"invalid escape at position {i}: only \\* and \\\\ are allowed in a wildcard"
                )
        else:
            literal.append(ch)
        i += 1
    parts.append(re.escape("".join(literal)))
    return re.compile("".join(parts), re.DOTALL)


def check_cidr(text: str) -> IPNetwork:
    address, sep, mask = text.partition("/")
    if not sep or "/" in mask:
        raise OperandError(f"malformed CIDR {text!r}: exactly one '/' is required")
    if not mask.isascii() or not mask.isdigit():
        raise OperandError(f"malformed CIDR {text!r}: mask bits must be a non-negative integer")
    if parse_ip_literal(address) is None:
        raise OperandError(f"malformed CIDR {text!r}: {address!r} is not an IP address")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise OperandError(f"invalid CIDR {text!r}: {exc}") from exc


def describe(value: object) -> str:
    """How a JSON value's type is named in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- value tests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prefix:
    prefix: str

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class PrefixIgnoreCase:
    prefix: str  # lower-cased

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.lower().startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class Suffix:
    suffix: str

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.endswith(self.suffix)


@dataclass(frozen=True, slots=True)
class SuffixIgnoreCase:
    suffix: str  # lower-cased

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.lower().endswith(self.suffix)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase:
    text: str  # lower-cased

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.lower() == self.text


@dataclass(frozen=True, slots=True)
class Wildcard:
    regex: re.Pattern[str]

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Numeric:
    low: int | float | None
    low_open: bool
    high: int | float | None
    high_open: bool

    def __call__(self, value: object) -> bool:
        if not is_number(value):
            return False
        assert isinstance(value, int | float)
        if not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:  # also rejects NaN
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


@dataclass(frozen=True, slots=True)
class Cidr:
    network: IPNetwork

    def __call__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        address = parse_ip_literal(value)
        return address is not None and address in self.network


@dataclass(frozen=True, slots=True)
class AnythingBut:
    excluded: frozenset[Hashable]  # scalar keys

    def __call__(self, value: object) -> bool:
        return scalar_key(value) not in self.excluded


@dataclass(frozen=True, slots=True)
class AnythingButIgnoreCase:
    excluded: frozenset[str]  # lower-cased

    def __call__(self, value: object) -> bool:
        return not (isinstance(value, str) and value.lower() in self.excluded)


@dataclass(frozen=True, slots=True)
class AnythingButPrefix:
    prefixes: tuple[str, ...]

    def __call__(self, value: object) -> bool:
        return not (isinstance(value, str) and value.startswith(self.prefixes))


@dataclass(frozen=True, slots=True)
class AnythingButSuffix:
    suffixes: tuple[str, ...]

    def __call__(self, value: object) -> bool:
        return not (isinstance(value, str) and value.endswith(self.suffixes))


@dataclass(frozen=True, slots=True)
class AnythingButWildcard:
    regexes: tuple[re.Pattern[str], ...]

    def __call__(self, value: object) -> bool:
        if not isinstance(value, str):
            return True
        return not any(rx.fullmatch(value) is not None for rx in self.regexes)
