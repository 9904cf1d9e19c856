"""Decisions: rules over the features, the raw fields and the model's score (fraud/rules/ruleset.py), block and
allow lists (fraud/rules/lists.py), applied together by `decide` (fraud/rules/decision.py)."""

from fraud.rules.decision import decide, parse_hits, rule_fields
from fraud.rules.lists import Entity, ListHit, ListKind, deciding_entry, hits_for, is_list_ref
from fraud.rules.ruleset import (
    DEFAULT_RULES_PATH,
    FIELDS,
    FUNCTIONS,
    Outcome,
    Rule,
    RuleFailure,
    RuleSet,
    RuleSetError,
    Verdict,
    evaluate,
    evaluate_many,
    live_rules,
    load_rules,
)

__all__ = [
    "Entity",
    "ListHit",
    "ListKind",
    "decide",
    "deciding_entry",
    "hits_for",
    "is_list_ref",
    "parse_hits",
    "rule_fields",
    "DEFAULT_RULES_PATH",
    "FIELDS",
    "FUNCTIONS",
    "Outcome",
    "Rule",
    "RuleFailure",
    "RuleSet",
    "RuleSetError",
    "Verdict",
    "evaluate",
    "evaluate_many",
    "live_rules",
    "load_rules",
]
