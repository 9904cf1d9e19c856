"""Backtesting a rule set: what the rules would have done on past transactions, against the labels that arrived
and the model's own flags. Pure: the history comes from the caller (fraud/db/replay.py reads it from the database).

Each transaction is evaluated once (`evaluate`: one verdict lists every rule that fired, the deciding rule and the
rules that failed), and the figures are counted:
- per rule: its hits (every transaction it fired on, whether it decided or not), hits per day, the hits whose label
  is known (`labelled_hits`), fraud or not, and those without one, precision (fraud hits / labelled hits; None with
  no labelled hit), recall (fraud hits / labelled frauds of the window; None with no fraud), the fraud amount it
  caught, how many of its hits the model flagged too (and their share of its hits), how often it decided the
  outcome, and its run-time errors (a rule that errors does not fire: see fraud/rules/ruleset.py);
- for the set, from the verdicts: transactions per outcome, and the same figures for "acted on" (the outcome is
  review or block) and for block alone; beside them the model's flags alone, for comparison.

A transaction without a label counts in the hits but in neither precision nor recall: labels arrive weeks late, so
the last days of a window have few. The window is the history's first to last event day (UTC), both included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from fraud.rules.ruleset import ACTED_ON, Outcome, RuleSet, evaluate


@dataclass(frozen=True)
class HistoryRow:
    """One past transaction as the rules saw it: `fields` holds every field of fraud.rules.FIELDS (the features,
    amt, category, merchant, the model's score and threshold), or at least those the rule set names;
    `is_fraud` is None while no label is known."""

    trans_num: str
    day: date  # the event's UTC day
    fields: Mapping[str, float | str]
    is_fraud: bool | None
    amount: float
    model_flagged: bool


def share(value: float | None) -> str:
    """A ratio as a percentage, or n/a."""
    return "n/a" if value is None else f"{value:.1%}"


@dataclass(frozen=True)
class Catch:
    """What a rule, an outcome or the model's flags caught in the window."""

    hits: int
    hits_per_day: float | None  # None for an empty window
    labelled_hits: int
    unlabelled_hits: int
    fraud_hits: int
    precision: float | None  # fraud hits / labelled hits
    recall: float | None  # fraud hits / labelled frauds of the window
    fraud_amount: float  # the amount of the fraud hits
    model_overlap: int  # hits the model flagged too
    model_overlap_share: float | None  # of the hits

    def cells(self) -> list[str]:
        """As the CLI's table and the report show it: hits, hits/day, labelled, frauds, precision, recall, fraud
        amount caught, model flagged too."""
        return [
            f"{self.hits:,}",
            "n/a" if self.hits_per_day is None else f"{self.hits_per_day:,.1f}",
            f"{self.labelled_hits:,}",
            f"{self.fraud_hits:,}",
            share(self.precision),
            share(self.recall),
            f"{self.fraud_amount:,.2f}",
            f"{self.model_overlap:,} ({share(self.model_overlap_share)})" if self.hits else "0",
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "hits": self.hits,
            "hits_per_day": self.hits_per_day,
            "labelled_hits": self.labelled_hits,
            "unlabelled_hits": self.unlabelled_hits,
            "fraud_hits": self.fraud_hits,
            "precision": self.precision,
            "recall": self.recall,
            "fraud_amount": self.fraud_amount,
            "model_overlap": self.model_overlap,
            "model_overlap_share": self.model_overlap_share,
        }


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    description: str
    expression: str
    outcome: Outcome
    priority: int
    catch: Catch
    decided: int  # transactions whose outcome this rule decided
    errors: int  # transactions on which the rule failed at run time (it did not fire)
    first_error: str | None  # the reason of its first failure

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.rule_id,
            "description": self.description,
            "expression": self.expression,
            "outcome": self.outcome.value,
            "priority": self.priority,
            **self.catch.as_json(),
            "decided": self.decided,
            "errors": self.errors,
            "first_error": self.first_error,
        }


@dataclass(frozen=True)
class BacktestResult:
    ruleset_version: str
    first_day: date | None  # None when the history is empty
    last_day: date | None
    days: int  # first to last day, both included
    transactions: int
    labelled: int
    frauds: int  # labelled fraud
    fraud_amount: float
    rules: tuple[RuleResult, ...]  # in the file's order
    outcomes: Mapping[Outcome, int]  # every outcome, 0 when none
    acted_on: Catch  # outcome review or block
    block: Catch
    model: Catch  # the model's flags alone
    transactions_with_errors: int  # transactions on which at least one rule failed
    _by_id: dict[str, RuleResult] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {rule.rule_id: rule for rule in self.rules})

    def rule(self, rule_id: str) -> RuleResult:
        return self._by_id[rule_id]

    def as_json(self) -> dict[str, object]:
        """JSON-ready figures (dates as ISO strings; None where a ratio has no denominator)."""
        return {
            "ruleset_version": self.ruleset_version,
            "window": {
                "first_day": self.first_day.isoformat() if self.first_day else None,
                "last_day": self.last_day.isoformat() if self.last_day else None,
                "days": self.days,
            },
            "transactions": self.transactions,
            "labelled": self.labelled,
            "frauds": self.frauds,
            "fraud_amount": self.fraud_amount,
            "rules": [rule.as_json() for rule in self.rules],
            "set": {
                "outcomes": {outcome.value: self.outcomes[outcome] for outcome in Outcome},
                "acted_on": self.acted_on.as_json(),
                "block": self.block.as_json(),
                "transactions_with_errors": self.transactions_with_errors,
            },
            "model_flags": self.model.as_json(),
        }


class _Tally:
    __slots__ = ("hits", "labelled", "frauds", "fraud_amount", "overlap")

    def __init__(self) -> None:
        self.hits = self.labelled = self.frauds = self.overlap = 0
        self.fraud_amount = 0.0

    def add(self, row: HistoryRow) -> None:
        self.hits += 1
        if row.is_fraud is not None:
            self.labelled += 1
            if row.is_fraud:
                self.frauds += 1
                self.fraud_amount += row.amount
        if row.model_flagged:
            self.overlap += 1

    def catch(self, days: int, frauds: int) -> Catch:
        return Catch(
            hits=self.hits,
            hits_per_day=self.hits / days if days else None,
            labelled_hits=self.labelled,
            unlabelled_hits=self.hits - self.labelled,
            fraud_hits=self.frauds,
            precision=self.frauds / self.labelled if self.labelled else None,
            recall=self.frauds / frauds if frauds else None,
            fraud_amount=round(self.fraud_amount, 2),
            model_overlap=self.overlap,
            model_overlap_share=self.overlap / self.hits if self.hits else None,
        )


def backtest(ruleset: RuleSet, history: Iterable[HistoryRow]) -> BacktestResult:
    """The rule set's figures on `history` (any iterable: read once, in one pass, nothing kept per row)."""
    tally = {rule.id: _Tally() for rule in ruleset.rules}
    decided = dict.fromkeys(tally, 0)
    errors = dict.fromkeys(tally, 0)
    first_error: dict[str, str] = {}
    outcomes = dict.fromkeys(Outcome, 0)
    acted_on, block, model, everything = _Tally(), _Tally(), _Tally(), _Tally()
    with_errors = 0
    first_day: date | None = None
    last_day: date | None = None
    for row in history:
        verdict = evaluate(ruleset, row.fields)
        everything.add(row)
        if first_day is None or row.day < first_day:
            first_day = row.day
        if last_day is None or row.day > last_day:
            last_day = row.day
        for rule_id in verdict.fired:
            tally[rule_id].add(row)
        if verdict.rule is not None:
            decided[verdict.rule] += 1
        outcomes[verdict.outcome] += 1
        if verdict.outcome in ACTED_ON:
            acted_on.add(row)
            if verdict.outcome is Outcome.BLOCK:
                block.add(row)
        if row.model_flagged:
            model.add(row)
        if verdict.errors:
            with_errors += 1
            for failure in verdict.errors:
                errors[failure.rule_id] += 1
                first_error.setdefault(failure.rule_id, failure.reason)
    days = (last_day - first_day).days + 1 if first_day and last_day else 0
    frauds = everything.frauds
    return BacktestResult(
        ruleset_version=ruleset.version,
        first_day=first_day,
        last_day=last_day,
        days=days,
        transactions=everything.hits,
        labelled=everything.labelled,
        frauds=frauds,
        fraud_amount=round(everything.fraud_amount, 2),
        rules=tuple(
            RuleResult(
                rule_id=rule.id,
                description=rule.description,
                expression=rule.expression,
                outcome=rule.outcome,
                priority=rule.priority,
                catch=tally[rule.id].catch(days, frauds),
                decided=decided[rule.id],
                errors=errors[rule.id],
                first_error=first_error.get(rule.id),
            )
            for rule in ruleset.rules
        ),
        outcomes=outcomes,
        acted_on=acted_on.catch(days, frauds),
        block=block.catch(days, frauds),
        model=model.catch(days, frauds),
        transactions_with_errors=with_errors,
    )
