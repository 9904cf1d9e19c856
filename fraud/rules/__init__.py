"""Decision rules over the features, the raw fields and the model's score (fraud/rules/ruleset.py)."""

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
    load_rules,
)

__all__ = [
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
    "load_rules",
]
