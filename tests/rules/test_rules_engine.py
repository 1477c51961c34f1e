"""Rules in EventBridge's shape, the shipped default rules, and routing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from abasto.contracts.alerts import Alert, alert_id
from abasto.errors import InvalidInputError, NotFoundError
from abasto.rules import Rule, RuleEngine, compile_pattern

RAISED = datetime(2026, 10, 13, 20, 5, tzinfo=UTC)


def _alert(**overrides: Any) -> Alert:
    base: dict[str, Any] = {
        "alert_id": alert_id("S0001", "COLA-600-NR", "2026-10-13"),
        "kind": "projected_stockout",
        "store_id": "S0001",
        "sku": "COLA-600-NR",
        "raised_at": RAISED,
        "episode": "2026-10-13",
        "risk": 0.7,
        "on_hand_estimate": 6.0,
        "expected_units_per_hour": 3.2,
        "observed_units_per_hour": 4.5,
        "projected_stockout_at": RAISED + timedelta(hours=2),
        "next_delivery_at": RAISED + timedelta(hours=19),
        "suggested_qty": 48,
        "model_version": "demand-pattern/3",
        "region_id": "R01",
        "route_id": "R01-2",
        "channel": "tienda",
    }
    base.update(overrides)
    return Alert(**base)


def _rule(name: str = "r1", pattern: Any = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": name,
        "EventPattern": pattern if pattern is not None else {"source": ["abasto.realtime"]},
        "Targets": [{"Id": "t1", "Arn": "stockout-alerts"}],
    }
    spec.update(extra)
    return spec


# --- the default rules ------------------------------------------------------------------------


def test_default_rules_load_and_name_their_topics() -> None:
    engine = RuleEngine.default()
    assert [r.name for r in engine.rules] == ["abasto-stockout-all", "abasto-key-accounts", "abasto-urgent"]
    assert engine.topics == ("stockout-alerts", "key-accounts", "urgent")
    assert all(r.enabled and r.description for r in engine.rules)


@pytest.mark.parametrize(
    ("overrides", "topics"),
    [
        ({}, ["stockout-alerts"]),
        ({"channel": "supermarket"}, ["stockout-alerts", "key-accounts"]),
        ({"channel": None}, ["stockout-alerts"]),
        ({"risk": 0.9}, ["stockout-alerts", "urgent"]),
        ({"risk": 0.8999}, ["stockout-alerts"]),
        ({"risk": 0.97, "channel": "supermarket"}, ["stockout-alerts", "key-accounts", "urgent"]),
        ({"kind": "sales_stopped", "risk": 1.0}, ["stockout-alerts", "urgent"]),
        ({"state": "acknowledged", "risk": 0.99}, []),
    ],
)
def test_default_rules_route_alerts(overrides: dict[str, Any], topics: list[str]) -> None:
    assert RuleEngine.default().route(_alert(**overrides).to_event()) == topics


def test_default_rules_route_big_customers_once_the_event_says_so() -> None:
    event = _alert().to_event()
    detail = dict(event["detail"])  # type: ignore[call-overload]
    detail["big_customer"] = True
    assert RuleEngine.default().route({**event, "detail": detail}) == ["stockout-alerts", "key-accounts"]


def test_default_rules_ignore_other_sources() -> None:
    event = {**_alert(risk=0.99).to_event(), "source": "abasto.devices"}
    assert RuleEngine.default().route(event) == []


def test_default_rules_are_deployable_eventbridge_input() -> None:
    for rule in RuleEngine.default().rules:
        spec = rule.to_eventbridge(lambda topic: f"arn:aws:sns:us-east-1:123456789012:{topic}")
        assert isinstance(spec["EventPattern"], str)
        assert compile_pattern(spec["EventPattern"]) == rule.pattern
        assert spec["State"] == "ENABLED"
        assert spec["Targets"] == [
            {"Id": t.id, "Arn": f"arn:aws:sns:us-east-1:123456789012:{t.topic}"} for t in rule.targets
        ]
        # and what we emit loads back to the same rule
        again = Rule.from_eventbridge(spec)
        assert (again.name, again.pattern, again.topics) == (rule.name, rule.pattern, rule.topics)


# --- loading --------------------------------------------------------------------------------------


def test_rules_load_from_a_file_with_text_patterns_and_arns(tmp_path: Path) -> None:
    doc = {
        "Rules": [
            _rule(
                "text-pattern",
                json.dumps({"detail": {"risk": [{"numeric": [">", 0.5]}]}}),
                Description="risky",
                State="ENABLED",
            ),
            _rule(
                "by-arn",
                {"detail": {"channel": ["tienda"]}},
                Targets=[
                    {"Id": "a", "Arn": "arn:aws:sns:us-east-1:123456789012:tiendas"},
                    {"Id": "b", "Arn": "arn:aws-us-gov:sns:us-gov-west-1:123456789012:gov.fifo"},
                ],
            ),
            _rule("off", State="DISABLED", Targets=[{"Id": "x", "Arn": "never"}]),
            _rule(
                "no-targets",
                Arn="arn:aws:events:us-east-1:123456789012:rule/no-targets",
                EventBusName="default",
            ),
        ]
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    engine = RuleEngine.from_file(path)
    assert engine.rules[0].description == "risky"
    assert engine.rules[1].topics == ("tiendas", "gov.fifo")
    assert not engine.rules[2].enabled
    assert "never" not in engine.topics
    assert engine.route(_alert().to_event()) == ["stockout-alerts", "tiendas", "gov.fifo"]
    assert [r.name for r in engine.matching_rules(_alert(risk=0.1).to_event())] == ["by-arn", "no-targets"]


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        RuleEngine.from_file(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rules": []}, 'expected an array of rules or {"Rules"'),
        ([_rule("bad name!")], "Name must be 1-64 characters"),
        ([_rule(), _rule()], "duplicate rule name 'r1'"),
        ([_rule(EventPatern={})], "unknown key(s) EventPatern"),
        ([{"Name": "r", "Targets": []}], "EventPattern is required"),
        ([_rule(ScheduleExpression="rate(5 minutes)")], "scheduled rules are not supported"),
        ([_rule(State="ON")], "State must be one of"),
        ([_rule(Description=5)], "Description must be a string"),
        ([_rule(Targets={"Id": "a"})], "Targets must be an array"),
        ([_rule(Targets=[{"Id": f"t{i}", "Arn": "x"} for i in range(6)])], "at most 5 targets"),
        ([_rule(Targets=[{"Id": "a", "Arn": "x"}, {"Id": "a", "Arn": "y"}])], "target ids must be unique"),
        (
            [_rule(Targets=[{"Id": "a", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}])],
            "only SNS topic targets",
        ),
        ([_rule(Targets=[{"Id": "a", "Arn": "bad topic"}])], "topic name must be"),
        ([_rule(Targets=[{"Id": "a", "Arn": "t", "Input": "{}"}])], "Input not supported"),
        ([_rule(Targets=[{"Id": "a", "Arn": "t", "Ark": "x"}])], "unknown key(s) Ark"),
        ([_rule(Targets=[{"Arn": "t"}])], "Id must be"),
        (
            [_rule(pattern={"detail": {"risk": [{"numeric": [">", 1, "<"]}]}})],
            "rules[0] (r1): invalid event pattern at detail.risk[0].numeric: takes one or two",
        ),
        ([_rule(pattern='{"source": ["a"],}')], "event pattern is not valid JSON"),
    ],
)
def test_invalid_rules_are_rejected_with_the_rule_named(doc: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RuleEngine.from_json(json.dumps(doc))
    assert message in str(info.value)


def test_rules_text_must_be_json() -> None:
    with pytest.raises(InvalidInputError, match="rules is not valid JSON"):
        RuleEngine.from_json("[{]")
