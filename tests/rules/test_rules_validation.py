"""Invalid patterns are rejected with the offending path and the reason; edge semantics."""

from __future__ import annotations

from typing import Any

import pytest

from abasto.errors import InvalidInputError
from abasto.rules import compile_pattern, matches

INVALID: list[tuple[Any, str, str]] = [
    # (pattern, path in the message, reason fragment)
    ([], "(root)", "must be a JSON object"),
    ({}, "(root)", "empty objects are not allowed"),
    ({"detail": {}}, "detail", "empty objects are not allowed"),
    ({"source": "aws.ec2"}, "source", 'wrap it in an array: ["aws.ec2"]'),
    ({"detail": {"n": 5}}, "detail.n", "must be an object or an array"),
    ({"source": []}, "source", "empty arrays are not allowed"),
    ({"source": [["a"]]}, "source[0]", "got an array"),
    ({"detail": {"state": [{"prefx": "a"}]}}, "detail.state[0]", "unknown operator 'prefx'"),
    ({"a": [{}]}, "a[0]", "exactly one operator, got none"),
    ({"a": [{"prefix": "a", "suffix": "b"}]}, "a[0]", "exactly one operator, got 'prefix', 'suffix'"),
    ({"a": [{"prefix": 1}]}, "a[0].prefix", "must be a string, got a number"),
    ({"a": [{"prefix": {"exists": True}}]}, "a[0].prefix", "takes only 'equals-ignore-case'"),
    ({"a": [{"suffix": {"equals-ignore-case": 3}}]}, "a[0].suffix", "must be a string"),
    ({"a": [{"equals-ignore-case": ["x"]}]}, "a[0].equals-ignore-case", "must be a string, got an array"),
    ({"a": [{"exists": "true"}]}, "a[0].exists", "must be true or false"),
    ({"a": [{"numeric": [">", 1, "<"]}]}, "a[0].numeric", "got 3 element(s)"),
    ({"a": [{"numeric": [">"]}]}, "a[0].numeric", "got 1 element(s)"),
    ({"a": [{"numeric": []}]}, "a[0].numeric", "got 0 element(s)"),
    ({"a": [{"numeric": "> 1"}]}, "a[0].numeric", "must be an array"),
    ({"a": [{"numeric": ["!=", 1]}]}, "a[0].numeric", "unknown comparison '!='"),
    ({"a": [{"numeric": [">", "1"]}]}, "a[0].numeric", "expected a number, got a string"),
    ({"a": [{"numeric": [">", True]}]}, "a[0].numeric", "expected a number, got a boolean"),
    ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "a[0].numeric", "lower bound then an upper bound"),
    ({"a": [{"numeric": ["=", 1, "<", 5]}]}, "a[0].numeric", "lower bound then an upper bound"),
    ({"a": [{"numeric": [">", 5, "<", 1]}]}, "a[0].numeric", "must be less than the upper bound"),
    ({"a": [{"numeric": [">=", 3, "<=", 3]}]}, "a[0].numeric", "must be less than the upper bound"),
    ({"a": [{"numeric": [">", 6e9]}]}, "a[0].numeric", "outside the supported range"),
    ({"a": [{"numeric": ["=", 0.1234567]}]}, "a[0].numeric", "more than 6 decimal places"),
    ({"a": [{"anything-but": []}]}, "a[0].anything-but", "must not be empty"),
    ({"a": [{"anything-but": ["a", 1]}]}, "a[0].anything-but", "only strings or only numbers"),
    ({"a": [{"anything-but": None}]}, "a[0].anything-but", "strings or numbers only, got null"),
    ({"a": [{"anything-but": [True]}]}, "a[0].anything-but", "got a boolean"),
    ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "a[0].anything-but", "exactly one of"),
    ({"a": [{"anything-but": {"prefix": ""}}]}, "a[0].anything-but", "an empty prefix is not allowed"),
    ({"a": [{"anything-but": {"suffix": 5}}]}, "a[0].anything-but", "takes a string or a list of strings"),
    ({"a": [{"anything-but": {"wildcard": "a**"}}]}, "a[0].anything-but", "consecutive wildcard"),
    ({"a": [{"anything-but": [1e10]}]}, "a[0].anything-but", "outside the supported range"),
    ({"a": [{"wildcard": "a**b"}]}, "a[0].wildcard", "consecutive wildcard characters at position 1"),
    ({"a": [{"wildcard": "a\\b"}]}, "a[0].wildcard", "invalid escape at position 1"),
    ({"a": [{"cidr": "10.0.0.0"}]}, "a[0].cidr", "exactly one '/'"),
    ({"a": [{"cidr": "10.0.0.0/x"}]}, "a[0].cidr", "mask bits"),
    ({"a": [{"cidr": "10.0.0.0/33"}]}, "a[0].cidr", "invalid CIDR"),
    ({"a": [{"cidr": "10.0.0.5/24"}]}, "a[0].cidr", "host bits set"),
    ({"a": [{"cidr": "host/24"}]}, "a[0].cidr", "is not an IP address"),
    ({"$or": [{"a": ["x"]}]}, "$or", "at least 2 objects, got 1"),
    ({"$or": {"a": ["x"]}}, "$or", "must be an array of objects"),
    ({"$or": [{"a": ["x"]}, ["b"]]}, "$or[1]", "only objects are allowed in $or"),
    ({"$or": [{"a": ["x"]}, {}]}, "$or[1]", "empty objects are not allowed"),
    ({"$or": [{"prefix": ["x"]}, {"b": ["y"]}]}, "$or[0].prefix", "reserved operator name"),
    (
        {"detail": {"$or": [{"a": [1]}, {"b": [{"bogus": 1}]}]}},
        "detail.$or[1].b[0]",
        "unknown operator 'bogus'",
    ),
]


@pytest.mark.parametrize(
    ("pattern", "path", "reason"), INVALID, ids=[f"{i:02d}" for i in range(len(INVALID))]
)
def test_invalid_pattern_names_path_and_reason(pattern: Any, path: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        compile_pattern(pattern)
    message = str(info.value)
    assert f"at {path}:" in message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not valid JSON"),
        ('{"a": [NaN]}', "NaN is not valid JSON"),
        ('{"a": ["x"], "a": ["y"]}', "duplicate key 'a'"),
        ('"source"', "must be a JSON object"),
    ],
)
def test_invalid_pattern_text(text: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match="event pattern") as info:
        compile_pattern(text)
    assert reason in str(info.value)


def test_valid_operator_forms_compile() -> None:
    compile_pattern(
        {
            "a": ["x", 1, 2.5, True, None, ""],
            "b": [{"numeric": ["=", -5e9]}, {"numeric": ["<=", 5e9]}, {"numeric": [">", 0.000001]}],
            "c": [{"anything-but": 3}, {"anything-but": [1, 2]}, {"anything-but": {"prefix": ["x", "y"]}}],
            "d": [
                {"anything-but": {"equals-ignore-case": ["A", "b"]}},
                {"anything-but": {"wildcard": ["*.x"]}},
            ],
            "e": [{"cidr": "2001:db8::/32"}, {"cidr": "0.0.0.0/0"}, {"wildcard": "*"}, {"prefix": ""}],
            "$or": [{"f": [{"exists": False}]}, {"g": {"h": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}],
        }
    )


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        # numbers compare by value, never with strings or booleans
        ({"n": [300]}, {"n": 3.0e2}, True),
        ({"n": [1]}, {"n": True}, False),
        ({"n": [True]}, {"n": 1}, False),
        ({"n": ["1"]}, {"n": 1}, False),
        ({"n": [{"numeric": [">", 0]}]}, {"n": True}, False),
        ({"n": [{"numeric": [">", 0]}]}, {"n": "5"}, False),
        ({"n": [{"numeric": ["<", 0]}]}, {"n": -6e9}, False),  # outside the numeric range
        # anything-but matches present values of any other type, never an absent field
        ({"s": [{"anything-but": "x"}]}, {"s": 5}, True),
        ({"s": [{"anything-but": "x"}]}, {"s": None}, True),
        ({"s": [{"anything-but": "x"}]}, {}, False),
        ({"s": [{"anything-but": [1, 2]}]}, {"s": 2.0}, False),
        ({"s": [{"anything-but": {"prefix": "x"}}]}, {"s": 7}, True),
        # string operators never match non-strings
        ({"s": [{"prefix": "1"}]}, {"s": 123}, False),
        ({"s": [{"wildcard": "*"}]}, {"s": 1}, False),
        ({"s": [{"wildcard": "*"}]}, {"s": ""}, True),
        ({"s": [{"wildcard": "a*b*c"}]}, {"s": "abc"}, True),
        ({"s": [{"wildcard": "a*b*c"}]}, {"s": "a\nXb\nc"}, True),
        ({"s": [{"wildcard": "a\\\\b"}]}, {"s": "a\\b"}, True),
        # exact IP literals match other spellings of the same address (as event-ruler does)
        ({"ip": ["2001:db8::1"]}, {"ip": "2001:0db8:0:0:0:0:0:1"}, True),
        ({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8:ffff::1"}, True),
        ({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "::ffff:a00:1"}, True),  # IPv4-mapped
        ({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "::ffff:10.0.0.1"}, False),  # not an IP literal to EB
        ({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "11.0.0.1"}, False),
        ({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "10.0.0"}, False),
        # exists only sees leaves; empty arrays count as absent
        ({"a": [{"exists": True}]}, {"a": []}, False),
        ({"a": [{"exists": False}]}, {"a": []}, True),
        ({"a": [{"exists": True}]}, {"a": [[1]]}, True),
        ({"a": {"b": [{"exists": False}]}}, {}, True),
        ({"a": {"b": [{"exists": False}]}}, {"a": "leaf"}, True),
        ({"a": {"b": [{"exists": True}]}}, {"a": "leaf"}, False),
        # arrays of objects: fields under one element are matched together
        ({"a": {"b": [1], "c": [2]}}, {"a": [{"b": 1, "c": 2}]}, True),
        ({"a": {"b": [1], "c": [2]}}, {"a": [{"b": 1}, {"c": 2}]}, False),
        ({"a": {"b": [1]}}, {"a": [[{"b": 0}], [{"b": 1}]]}, True),
        # nested $or
        ({"$or": [{"a": [1]}, {"$or": [{"b": [2]}, {"c": [3]}]}]}, {"c": 3}, True),
        ({"$or": [{"a": [1]}, {"$or": [{"b": [2]}, {"c": [3]}]}]}, {"d": 3}, False),
        ({"x": ["y"], "$or": [{"a": [1]}, {"b": [2]}]}, {"x": "z", "a": 1}, False),
        # case-insensitive operators
        ({"s": [{"equals-ignore-case": "ÁRBOL"}]}, {"s": "árbol"}, True),
        ({"s": [{"anything-but": {"equals-ignore-case": ["A", "B"]}}]}, {"s": "b"}, False),
    ],
)
def test_edge_semantics(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


def test_event_must_be_an_object() -> None:
    with pytest.raises(InvalidInputError, match="event must be a JSON object"):
        compile_pattern({"a": ["b"]}).matches(["not", "an", "object"])  # type: ignore[arg-type]


def test_source_round_trips_and_is_a_copy() -> None:
    original = {"detail": {"risk": [{"numeric": [">=", 0.9]}]}}
    pattern = compile_pattern(original)
    copy = pattern.source
    copy["detail"]["risk"] = ["mutated"]
    assert pattern.source == original
    assert compile_pattern(pattern.to_json()) == pattern
