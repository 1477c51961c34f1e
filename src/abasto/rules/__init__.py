"""Event routing with Amazon EventBridge event-pattern semantics.

- :func:`compile_pattern` / :class:`EventPattern`: validate and match one pattern;
- :class:`Rule`, :class:`Target`, :class:`RuleEngine`: EventBridge-shaped rules loaded from
  JSON (``RuleEngine.default()`` ships the stockout alert rules) routed to topic names.
"""

from abasto.rules.engine import Rule, RuleEngine, Target
from abasto.rules.pattern import EventPattern, compile_pattern, matches

__all__ = ["EventPattern", "Rule", "RuleEngine", "Target", "compile_pattern", "matches"]
