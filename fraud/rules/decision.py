"""A transaction's decision: the lists first, then the rules (one function for batch scoring and the real-time
path, so both decide the same transaction alike).

A list entry in force decides on its own (block before allow, fraud/rules/lists.py); the rules are still evaluated
and the ones that fired are recorded, so an analyst sees what the rules would have said and a backtest of the
rules is not skewed by the lists. With no entry, the rules decide (fraud/rules/ruleset.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from fraud.features.catalog import FEATURE_NAMES
from fraud.rules.lists import ListHit, ListKind, deciding_entry
from fraud.rules.ruleset import Outcome, RuleSet, Verdict, evaluate

_POSITION = {name: index for index, name in enumerate(FEATURE_NAMES)}
_LIST_OUTCOME = {ListKind.BLOCK: Outcome.BLOCK, ListKind.ALLOW: Outcome.APPROVE}


def decide(ruleset: RuleSet, fields: Mapping[str, float | str | bool | None], hits: Iterable[ListHit] = ()) -> Verdict:
    verdict = evaluate(ruleset, fields)
    entry = deciding_entry(hits)
    if entry is None:
        return verdict
    return replace(verdict, outcome=_LIST_OUTCOME[entry.kind], rule=entry.ref)


def rule_fields(
    ruleset: RuleSet,
    features: Sequence[float],
    amt: float,
    category: str | None,
    merchant: str,
    score: float,
    threshold: float,
) -> dict[str, float | str | None]:
    """The values the rule set names, from one transaction's feature vector (FEATURE_NAMES order, as the model
    takes it: float32 values, so batch and real time compare the same numbers), raw fields and score: the one
    mapping both paths build."""
    values: dict[str, float | str | None] = {
        "amt": amt,
        "category": category,
        "merchant": merchant,
        "score": score,
        "threshold": threshold,
    }
    for name in ruleset.fields - values.keys():
        values[name] = features[_POSITION[name]]
    return values


def parse_hits(texts: Iterable[str] | None) -> list[ListHit]:
    """The database's HITS array (None when no entry applies) as ListHits."""
    return [ListHit.parse(text) for text in texts or ()]
