"""A transaction's decision: the lists first, then the rules (one function for batch scoring and the real-time
path, so both decide the same transaction alike).

A list entry in force decides on its own (block before allow, fraud/rules/lists.py); the rules are still evaluated
and the ones that fired are recorded, so an analyst sees what the rules would have said and a backtest of the
rules is not skewed by the lists. With no entry, the rules decide (fraud/rules/ruleset.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from fraud.features.catalog import FEATURE_NAMES
from fraud.rules.lists import ListHit, ListKind, deciding_entry, hits_for
from fraud.rules.ruleset import Outcome, RuleSet, Verdict, evaluate, evaluate_values, values_column

_POSITION = {name: index for index, name in enumerate(FEATURE_NAMES)}
_LIST_OUTCOME = {ListKind.BLOCK: Outcome.BLOCK, ListKind.ALLOW: Outcome.APPROVE}


def decide(ruleset: RuleSet, fields: Mapping[str, float | str | bool | None], hits: Iterable[ListHit] = ()) -> Verdict:
    return _with_lists(evaluate(ruleset, fields), hits)


def _with_lists(verdict: Verdict, hits: Iterable[ListHit]) -> Verdict:
    entry = deciding_entry(hits)
    if entry is None:
        return verdict
    return replace(verdict, outcome=_LIST_OUTCOME[entry.kind], rule=entry.ref)


def _raw_fields(amt, category, merchant, score, threshold) -> dict:
    """The rule fields that are not features, by name: one transaction's values (rule_fields) or a page's columns
    (decide_many)."""
    return {"amt": amt, "category": category, "merchant": merchant, "score": score, "threshold": threshold}


def decide_many(
    ruleset: RuleSet,
    features: np.ndarray,
    amounts: Sequence[float],
    categories: Sequence[str | None],
    merchants: Sequence[str],
    card_tokens: Sequence[str],
    scores: np.ndarray,
    threshold: float,
    listed: Mapping[tuple[str, str], list[ListHit]],
) -> list[Verdict]:
    """`decide(ruleset, rule_fields(...), hits_for(listed, ...))` for every transaction of a page (the batch
    scorer's): the same verdicts, with each field the rules name taken out of the page once, as a column of the
    values CEL takes, instead of a mapping built and converted per transaction."""
    n = len(scores)
    raw = _raw_fields(amounts, categories, merchants, scores.tolist(), [threshold] * n)
    names = (*ruleset._numeric, *ruleset._text)  # the order `evaluate` builds its values in
    columns = [
        values_column(name, list(raw[name]) if name in raw else features[:, _POSITION[name]].tolist()) for name in names
    ]
    if names:
        verdicts = [evaluate_values(ruleset, dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
    else:  # no rule reads a field (or there is no rule): one verdict for all
        verdicts = [evaluate_values(ruleset, {})] * n
    if listed:
        verdicts = [
            _with_lists(verdict, hits_for(listed, card, merchant, category))
            for verdict, card, merchant, category in zip(verdicts, card_tokens, merchants, categories, strict=True)
        ]
    return verdicts


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
    values: dict[str, float | str | None] = _raw_fields(amt, category, merchant, score, threshold)
    for name in ruleset.fields - values.keys():
        values[name] = features[_POSITION[name]]
    return values


def parse_hits(texts: Iterable[str] | None) -> list[ListHit]:
    """The database's HITS array (None when no entry applies) as ListHits."""
    return [ListHit.parse(text) for text in texts or ()]
