"""Rules (EventBridge-shaped) and the engine that routes events to their targets' topics.

A rules file is a JSON array of rules (or ``{"Rules": [...]}``), each shaped like EventBridge's
``PutRule`` + ``PutTargets`` input, so the same file can be deployed to AWS::

    {"Name": "abasto-urgent", "Description": "...", "State": "ENABLED",
     "EventPattern": {"detail": {"risk": [{"numeric": [">=", 0.9]}]}},   # or the JSON text
     "Targets": [{"Id": "urgent", "Arn": "urgent"}]}

A target's ``Arn`` is an SNS topic ARN (``arn:aws:sns:<region>:<account>:<topic>``) or just the
topic name, which a deployer resolves to the ARN of that topic (see :meth:`Rule.to_eventbridge`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from abasto.errors import InvalidInputError, NotFoundError
from abasto.rules._json import loads_strict
from abasto.rules.operators import scalar_key
from abasto.rules.pattern import EventPattern, compile_pattern

DEFAULT_RULES_RESOURCE: Final = "default_rules.json"

_NAME_RE: Final = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}(\.fifo)?")
_SNS_ARN_RE: Final = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:(?P<topic>[^:]+)")
_MAX_TARGETS: Final = 5
_MAX_DESCRIPTION: Final = 512
_STATES: Final = {"ENABLED": True, "DISABLED": False, "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS": True}
#: keys AWS returns or accepts that do not change routing here
_IGNORED_RULE_KEYS: Final = frozenset({"Arn", "EventBusName", "ManagedBy", "RoleArn", "Tags", "CreatedBy"})
_IGNORED_TARGET_KEYS: Final = frozenset({"RoleArn", "RetryPolicy", "DeadLetterConfig"})
_UNSUPPORTED_TARGET_KEYS: Final = frozenset({"Input", "InputPath", "InputTransformer"})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a matching event goes: an SNS topic, named by ARN or by name."""

    id: str
    arn: str

    @property
    def topic(self) -> str:
        match = _SNS_ARN_RE.fullmatch(self.arn)
        return match["topic"] if match else self.arn


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pattern: EventPattern
    targets: tuple[Target, ...] = ()
    enabled: bool = True
    description: str = ""

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(t.topic for t in self.targets)

    @classmethod
    def from_eventbridge(cls, spec: Mapping[str, Any]) -> Rule:
        """Build from the EventBridge shape; raises :class:`InvalidInputError` naming the rule."""
        return _parse_rule(spec, where="rule")

    def to_eventbridge(self, topic_arn: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The ``PutRule`` input plus ``Targets`` (for ``PutTargets``).

        ``topic_arn`` maps a topic name to its ARN in the target account; without it target ARNs
        are written as loaded.
        """
        return {
            "Name": self.name,
            "Description": self.description,
            "State": "ENABLED" if self.enabled else "DISABLED",
            "EventPattern": self.pattern.to_json(),
            "Targets": [
                {"Id": t.id, "Arn": topic_arn(t.topic) if topic_arn else t.arn} for t in self.targets
            ],
        }


class RuleEngine:
    """Routes events to the topics of every enabled rule whose pattern matches.

    Patterns are compiled once. Rules whose pattern has a field with only exact values outside
    any ``$or`` are indexed on it, so an event is fully matched only against the rules that can
    match it plus the rules that could not be indexed.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules: tuple[Rule, ...] = tuple(rules)
        seen: set[str] = set()
        for rule in self._rules:
            if rule.name in seen:
                raise InvalidInputError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        # path -> value key -> positions of the rules indexed there
        self._index: dict[tuple[str, ...], dict[Hashable, list[int]]] = {}
        self._always: list[int] = []
        for pos, rule in enumerate(self._rules):
            if not rule.enabled:
                continue
            hint = rule.pattern.index_hint
            if hint is None:
                self._always.append(pos)
                continue
            path, keys = hint
            by_key = self._index.setdefault(path, {})
            for key in keys:
                by_key.setdefault(key, []).append(pos)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_json(
        cls, document: str | bytes | list[Any] | Mapping[str, Any], *, source: str = "rules"
    ) -> RuleEngine:
        """Rules from a JSON document: an array of rules or ``{"Rules": [...]}``."""
        if isinstance(document, str | bytes):
            document = loads_strict(document, what=source)
        if isinstance(document, Mapping):
            if set(document) != {"Rules"}:
                raise InvalidInputError(f'{source}: expected an array of rules or {{"Rules": [...]}}')
            document = document["Rules"]
        if not isinstance(document, list):
            raise InvalidInputError(f"{source}: expected an array of rules")
        return cls(_parse_rule(spec, where=f"{source}[{i}]") for i, spec in enumerate(document))

    @classmethod
    def from_file(cls, path: str | Path) -> RuleEngine:
        path = Path(path)
        try:
            text = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"rules file {path} does not exist") from exc
        return cls.from_json(text, source=str(path))

    @classmethod
    def default(cls) -> RuleEngine:
        """The rules shipped with abasto (``default_rules.json``)."""
        text = resources.files("abasto.rules").joinpath(DEFAULT_RULES_RESOURCE).read_bytes()
        return cls.from_json(text, source=DEFAULT_RULES_RESOURCE)

    # --- routing -------------------------------------------------------------------------------
    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic an enabled rule can route to, in rule order."""
        return tuple(dict.fromkeys(t for r in self._rules if r.enabled for t in r.topics))

    def matching_rules(self, event: Mapping[str, Any]) -> list[Rule]:
        """The enabled rules matching ``event``, in file order."""
        candidates = set(self._always)
        for path, by_key in self._index.items():
            for value in _values_at(event, path):
                key = scalar_key(value)
                if key is not None and key in by_key:
                    candidates.update(by_key[key])
        return [self._rules[pos] for pos in sorted(candidates) if self._rules[pos].pattern.matches(event)]

    def route(self, event: Mapping[str, Any]) -> list[str]:
        """Topic names ``event`` goes to: each once, in the order of the matching rules."""
        return list(dict.fromkeys(t for rule in self.matching_rules(event) for t in rule.topics))


def _values_at(event: Any, path: tuple[str, ...]) -> Iterator[Any]:
    """Every leaf at ``path``, descending through arrays (of arrays) of objects."""
    if isinstance(event, list):
        for element in event:
            yield from _values_at(element, path)
        return
    if not path:
        yield event
        return
    if isinstance(event, Mapping) and path[0] in event:
        yield from _values_at(event[path[0]], path[1:])


# --- parsing the EventBridge shape ----------------------------------------------------------------


def _parse_rule(spec: object, *, where: str) -> Rule:
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where}: a rule must be a JSON object")
    name = spec.get("Name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInputError(f"{where}: Name must be 1-64 characters of A-Z a-z 0-9 . - _, got {name!r}")
    where = f"{where} ({name})"
    if "ScheduleExpression" in spec:
        raise InvalidInputError(f"{where}: scheduled rules are not supported, only EventPattern rules")
    unknown = set(spec) - {"Name", "EventPattern", "State", "Description", "Targets"} - _IGNORED_RULE_KEYS
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "EventPattern" not in spec:
        raise InvalidInputError(f"{where}: EventPattern is required")
    try:
        pattern = compile_pattern(spec["EventPattern"])
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc
    state = spec.get("State", "ENABLED")
    if state not in _STATES:
        raise InvalidInputError(f"{where}: State must be one of {', '.join(_STATES)}, got {state!r}")
    description = spec.get("Description", "")
    if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
        raise InvalidInputError(
            f"{where}: Description must be a string of at most {_MAX_DESCRIPTION} characters"
        )
    targets = spec.get("Targets", [])
    if not isinstance(targets, list):
        raise InvalidInputError(f"{where}: Targets must be an array")
    if len(targets) > _MAX_TARGETS:
        raise InvalidInputError(f"{where}: at most {_MAX_TARGETS} targets per rule, got {len(targets)}")
    parsed = tuple(_parse_target(t, where=f"{where}.Targets[{i}]") for i, t in enumerate(targets))
    ids = [t.id for t in parsed]
    if len(set(ids)) != len(ids):
        raise InvalidInputError(f"{where}: target ids must be unique, got {ids}")
    return Rule(name=name, pattern=pattern, targets=parsed, enabled=_STATES[state], description=description)


def _parse_target(spec: object, *, where: str) -> Target:
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where}: a target must be a JSON object")
    unsupported = set(spec) & _UNSUPPORTED_TARGET_KEYS
    if unsupported:
        raise InvalidInputError(
            f"{where}: {', '.join(sorted(unsupported))} not supported (the alert is delivered as is)"
        )
    unknown = set(spec) - {"Id", "Arn"} - _IGNORED_TARGET_KEYS - _UNSUPPORTED_TARGET_KEYS
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    target_id, arn = spec.get("Id"), spec.get("Arn")
    if not isinstance(target_id, str) or not _NAME_RE.fullmatch(target_id):
        raise InvalidInputError(
            f"{where}: Id must be 1-64 characters of A-Z a-z 0-9 . - _, got {target_id!r}"
        )
    if not isinstance(arn, str):
        raise InvalidInputError(f"{where}: Arn must be an SNS topic ARN or a topic name, got {arn!r}")
    if arn.startswith("arn:"):
        if not _SNS_ARN_RE.fullmatch(arn):
            raise InvalidInputError(f"{where}: only SNS topic targets are supported, got {arn!r}")
    elif not _TOPIC_RE.fullmatch(arn):
        raise InvalidInputError(
            f"{where}: topic name must be 1-256 characters of A-Z a-z 0-9 _ -, got {arn!r}"
        )
    target = Target(id=target_id, arn=arn)
    if not _TOPIC_RE.fullmatch(target.topic):
        raise InvalidInputError(f"{where}: invalid topic name {target.topic!r} in {arn!r}")
    return target
