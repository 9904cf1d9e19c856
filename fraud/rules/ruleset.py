"""Decision rules: a versioned rule set in a TOML file, each rule a CEL expression over the transaction's fields
with an outcome (approve, review, block) and a priority. The same `evaluate` serves batch scoring and the
real-time path.

Expressions are CEL (https://cel.dev), compiled by `common-expression-language` (Rust bindings): a sandboxed
language with no access to Python objects, builtins or the file system; never Python's eval. Loading refuses a rule,
naming its id and the reason, when its expression
- does not parse;
- names a field outside `FIELDS` (the identifiers come from the compiled expression's references);
- calls a function outside `FUNCTIONS` (e.g. `__import__('os')`, `open('/etc/passwd')`: CEL has neither, and no
  function is ever registered, so such a rule could only fail at run time: it is refused at load instead);
- fails a dry run on sample values with a type error (CEL never coerces between types: `amt + 1` is double + int,
  `amt.__class__` selects a field of a double) or returns something other than a bool. Other dry-run errors
  (division by zero, `int(category)`) depend on the values, so they are left to run time.
Comprehension macros (`[..].exists(x, ...)`) and `cel.bind` are not supported: their bound names are refused as
unknown fields. Every field is a scalar, so they are not needed.

The fields (`FIELDS`), the same in batch and in real time:
- every feature of `fraud.features.catalog.FEATURE_NAMES` (double; flags such as `is_night` are 0.0/1.0: write
  `is_night == 1.0`; `hour` is the transaction's hour of day, UTC);
- the raw fields every path holds (fraud.features.online.Transaction, fact_transaction): `amt` (double, the amount),
  `category` and `merchant` (strings; an unknown category is "");
- `score`, the model's fraud probability, and `threshold`, the model's alert threshold (doubles).
Numeric values are passed to CEL as doubles, so an integer count from the caller still compares as a double.
Integer literals compare fine with doubles (`card_count_1h >= 10`), but arithmetic needs double literals
(`amt * 2.0`).

File format (TOML):

    version = "2026-12-05.1"          # recorded with every verdict

    [[rule]]
    id = "model-threshold"            # unique; letters, digits, '-', '_', '.'
    description = "The model's score is over its alert threshold"
    expression = "score >= threshold"
    outcome = "review"                # approve | review | block
    priority = 10                     # an integer: the higher, the more it counts

The verdict: the fired rule of highest priority decides the outcome; at equal priority block > review > approve,
then the earlier rule in the file; with no rule fired the outcome is approve. A rule whose evaluation fails at run
time (e.g. an integer division by zero) does not fire: the verdict lists it under `errors` with the reason, and
the other rules decide as usual (so one broken rule never fails the request; callers should log or count the
errors, since a block rule that errors lets the transaction through).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from fraud.features.catalog import FEATURE_NAMES
from fraud.rules.cel_engine import cel

# The live rule set, shipped inside the package (the scorer Lambda and the Dagster image carry it); FRAUD_RULES_PATH
# points a deployment at another file.
DEFAULT_RULES_PATH = Path(__file__).with_name("default.toml")

RAW_NUMERIC_FIELDS: tuple[str, ...] = ("amt",)
RAW_TEXT_FIELDS: tuple[str, ...] = ("category", "merchant")
MODEL_FIELDS: tuple[str, ...] = ("score", "threshold")
NUMERIC_FIELDS: frozenset[str] = frozenset(FEATURE_NAMES + RAW_NUMERIC_FIELDS + MODEL_FIELDS)
TEXT_FIELDS: frozenset[str] = frozenset(RAW_TEXT_FIELDS)
FIELDS: frozenset[str] = NUMERIC_FIELDS | TEXT_FIELDS

# CEL's operators (as the compiled program names them) and the standard functions a rule may call.
OPERATORS: frozenset[str] = frozenset(
    {"_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "_+_", "_-_", "_*_", "_/_", "_%_", "-_", "!_", "_&&_", "_||_"}
    | {"_?_:_", "@in", "@not_strictly_false"}
)
FUNCTIONS: frozenset[str] = frozenset(
    {"size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string", "bool"}
)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RULE_KEYS = frozenset({"id", "description", "expression", "outcome", "priority"})
_FILE_KEYS = frozenset({"version", "rule"})
# The dry run's values: one of each field's type.
_SAMPLE: dict[str, float | str] = {name: 0.0 for name in NUMERIC_FIELDS} | {name: "" for name in TEXT_FIELDS}


class Outcome(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    BLOCK = "block"


# the outcomes someone acts on (alerts, review cases, a backtest's hits), and so reads the reasons of
ACTED_ON: frozenset[Outcome] = frozenset({Outcome.REVIEW, Outcome.BLOCK})

# At equal priority the more severe outcome wins.
_SEVERITY = {Outcome.APPROVE: 0, Outcome.REVIEW: 1, Outcome.BLOCK: 2}


class RuleSetError(ValueError):
    """A rule set that cannot be loaded: `rule_id` names the rule at fault (None for the file as a whole)."""

    def __init__(self, rule_id: str | None, reason: str):
        super().__init__(f"rule {rule_id!r}: {reason}" if rule_id is not None else f"rule set: {reason}")
        self.rule_id, self.reason = rule_id, reason


@dataclass(frozen=True)
class Rule:
    """One rule, its expression compiled and checked on construction (RuleSetError when refused)."""

    id: str
    description: str
    expression: str
    outcome: Outcome
    priority: int
    fields: frozenset[str] = field(init=False, repr=False, compare=False)
    _program: cel.Program = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise RuleSetError(str(self.id), "the id must be letters, digits, '-', '_' or '.'")
        if not isinstance(self.description, str) or not self.description.strip():
            raise RuleSetError(self.id, "the description must be a non-empty string")
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise RuleSetError(self.id, "the expression must be a non-empty string")
        try:
            object.__setattr__(self, "outcome", Outcome(self.outcome))
        except ValueError:
            raise RuleSetError(
                self.id, f"outcome {self.outcome!r} is not one of {', '.join(o.value for o in Outcome)}"
            ) from None
        if type(self.priority) is not int:
            raise RuleSetError(self.id, f"priority {self.priority!r} is not an integer")
        program = _compile(self.id, self.expression)
        object.__setattr__(self, "fields", frozenset(program.variables()))
        object.__setattr__(self, "_program", program)

    def __reduce__(self):
        # the compiled program does not pickle: a copy (e.g. sent to a batch worker) compiles again
        return (Rule, (self.id, self.description, self.expression, self.outcome, self.priority))


def _compile(rule_id: str, expression: str) -> cel.Program:
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as error:
        raise RuleSetError(rule_id, f"the expression does not parse: {error}") from None
    unknown = sorted(set(program.variables()) - FIELDS)
    if unknown:
        raise RuleSetError(rule_id, f"unknown field(s) {', '.join(unknown)} (see fraud.rules.FIELDS)")
    functions = sorted(set(program.functions()) - OPERATORS - FUNCTIONS)
    if functions:
        raise RuleSetError(
            rule_id, f"unknown function(s) {', '.join(functions)} (allowed: {', '.join(sorted(FUNCTIONS))})"
        )
    try:
        result = program.execute(cel.Context({name: _SAMPLE[name] for name in program.variables()}))
    except TypeError as error:
        raise RuleSetError(rule_id, f"type error: {error}") from None
    except Exception:  # value-dependent (division by zero, int('')): left to run time
        return program
    if not isinstance(result, bool):
        raise RuleSetError(rule_id, f"the expression gives a {type(result).__name__}, not a bool")
    return program


@dataclass(frozen=True)
class RuleSet:
    """A version of the rules (ids unique)."""

    version: str
    rules: tuple[Rule, ...]
    fields: frozenset[str] = field(init=False, repr=False, compare=False)
    # evaluation aids: the fields by type, each rule's rank (the verdict's order), and every rule's expression in
    # one CEL list, run once per transaction instead of once per rule (a rule that errors falls back to one by one)
    _numeric: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _text: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _rank: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)
    _all: cel.Program | None = field(init=False, repr=False, compare=False)
    _approved: Verdict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise RuleSetError(None, "the version must be a non-empty string")
        object.__setattr__(self, "rules", tuple(self.rules))
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise RuleSetError(rule.id, "duplicate rule id")
            seen.add(rule.id)
        fields = frozenset().union(*(rule.fields for rule in self.rules))
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "_numeric", tuple(sorted(fields & NUMERIC_FIELDS)))
        object.__setattr__(self, "_text", tuple(sorted(fields & TEXT_FIELDS)))
        ranks = tuple((-r.priority, -_SEVERITY[r.outcome], i) for i, r in enumerate(self.rules))
        object.__setattr__(self, "_rank", ranks)
        combined = "[" + ", ".join(f"({rule.expression})" for rule in self.rules) + "]"
        object.__setattr__(self, "_all", cel.compile(combined) if self.rules else None)
        # most transactions fire no rule: they all share one verdict
        object.__setattr__(self, "_approved", Verdict(Outcome.APPROVE, None, (), (), self.version))

    def __reduce__(self):
        # compiled programs do not pickle: a copy compiles again
        return (RuleSet, (self.version, self.rules))


@dataclass(frozen=True)
class RuleFailure:
    """A rule whose evaluation failed for one transaction (it did not fire)."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """The rules' decision on one transaction: `fired` lists every fired rule, the deciding one (`rule`) first and
    the others by the same order (priority, severity, place in the file); `errors` the rules that failed."""

    outcome: Outcome
    rule: str | None
    fired: tuple[str, ...]
    errors: tuple[RuleFailure, ...]
    version: str

    @cached_property
    def stored(self) -> tuple[str, str | None, list[str], str]:
        """(outcome, decided_by, rules_fired, ruleset_version) as the score tables store them; computed once per
        verdict (the verdict most transactions share included)."""
        return self.outcome.value, self.rule, list(self.fired), self.version

    def as_record(self) -> dict[str, object]:
        """What a decision stores (JSON-ready): `decided_by` is the deciding rule, or the list entry that decided
        before the rules (fraud/rules/decision.py)."""
        return {
            "outcome": self.outcome.value,
            "decided_by": self.rule,
            "rules_fired": list(self.fired),
            "rule_errors": [{"rule": e.rule_id, "reason": e.reason} for e in self.errors],
            "ruleset_version": self.version,
        }


# --- loading ----------------------------------------------------------------------------------------------------


def load_rules(source: str | os.PathLike[str]) -> RuleSet:
    """The rule set of a TOML file (a path: `Path` or any PathLike) or of TOML text (a `str`)."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, os.PathLike) else source
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleSetError(None, f"not valid TOML: {error}") from None
    extra = sorted(set(document) - _FILE_KEYS)
    if extra:
        raise RuleSetError(None, f"unknown key(s) {', '.join(extra)} (expected version and [[rule]] tables)")
    if "version" not in document:
        raise RuleSetError(None, "no version")
    entries = document.get("rule", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise RuleSetError(None, "rules must be [[rule]] tables")
    return RuleSet(version=document["version"], rules=tuple(_rule(n, entry) for n, entry in enumerate(entries, 1)))


_live: dict[Path, tuple[int, RuleSet]] = {}


def live_rules(path: os.PathLike[str] | None = None) -> RuleSet:
    """The live rule set (the settings' `rules_path`, else `DEFAULT_RULES_PATH`), loaded once and again when the
    file changes: a rule change reaches a running API, a warm Lambda and the next batch run without a restart.
    A file that no longer loads raises RuleSetError: decisions stop rather than run on rules nobody wrote."""
    resolved = Path(path or DEFAULT_RULES_PATH).resolve()
    stamp = resolved.stat().st_mtime_ns
    cached = _live.get(resolved)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_rules(resolved))
        _live[resolved] = cached
    return cached[1]


def _rule(position: int, entry: Mapping[str, object]) -> Rule:
    rule_id = entry.get("id")
    if not isinstance(rule_id, str):
        raise RuleSetError(None, f"rule #{position} has no string id")
    missing = sorted(_RULE_KEYS - set(entry))
    if missing:
        raise RuleSetError(rule_id, f"missing key(s) {', '.join(missing)}")
    extra = sorted(set(entry) - _RULE_KEYS)
    if extra:
        raise RuleSetError(rule_id, f"unknown key(s) {', '.join(extra)}")
    return Rule(
        id=rule_id,
        description=entry["description"],
        expression=entry["expression"],
        outcome=entry["outcome"],
        priority=entry["priority"],
    )


# --- evaluation -------------------------------------------------------------------------------------------------


def _value(name: str, value: object) -> float | str:
    if name in TEXT_FIELDS:
        return "" if value is None else str(value)
    if value is None or isinstance(value, str):
        raise ValueError(f"field {name} must be a number, got {value!r}")
    return float(value)  # bools and numpy scalars too: CEL sees doubles only


def values_column(name: str, values: list) -> list[float | str]:
    """`_value` over a column of one field's values (the batch scorer converts a page field by field), with the same
    rule: text as str ("" for None), numbers as float, None or a str for a number refused."""
    if name in TEXT_FIELDS:
        return ["" if value is None else str(value) for value in values]
    column = [float(value) for value in values if value is not None and not isinstance(value, str)]
    if len(column) != len(values):
        raise ValueError(
            f"field {name} must be a number, got {next(v for v in values if v is None or isinstance(v, str))!r}"
        )
    return column


def evaluate(ruleset: RuleSet, fields: Mapping[str, float | str | bool | None]) -> Verdict:
    """The rules' verdict on one transaction. `fields` must hold every field the rule set names (ValueError
    otherwise: a caller's bug, not a rule's); other keys are ignored."""
    missing = ruleset.fields - fields.keys()
    if missing:
        raise ValueError(f"fields missing for rule set {ruleset.version}: {', '.join(sorted(missing))}")
    values: dict[str, float | str] = {}
    for name in ruleset._numeric:
        value = fields[name]
        values[name] = value if type(value) is float else _value(name, value)
    for name in ruleset._text:
        value = fields[name]
        values[name] = value if type(value) is str else _value(name, value)
    return evaluate_values(ruleset, values)


def evaluate_values(ruleset: RuleSet, values: dict[str, float | str]) -> Verdict:
    """`evaluate` on values already typed as CEL takes them (every field of the rule set: a float for a numeric
    field, a str for a text field): the batch scorer converts a page column by column
    (fraud.rules.decision.decide_many)."""
    context = cel.Context(values)
    results: list | None = None
    if ruleset._all is not None:
        try:
            results = ruleset._all.execute(context)
        except Exception:  # some rule fails on these values: each on its own, to know which
            results = None
    fired: list[int] = []
    errors: list[RuleFailure] = []
    for index, rule in enumerate(ruleset.rules):
        if results is not None:
            result = results[index]
        else:
            try:
                result = rule._program.execute(context)
            except Exception as error:  # one failing rule must not fail the request
                errors.append(RuleFailure(rule.id, f"{type(error).__name__}: {error}"))
                continue
        if result is True:
            fired.append(index)
        elif result is not False:
            errors.append(RuleFailure(rule.id, f"gave {result!r}, not a bool"))
    if not fired and not errors:
        return ruleset._approved
    fired.sort(key=ruleset._rank.__getitem__)
    deciding = ruleset.rules[fired[0]] if fired else None
    return Verdict(
        outcome=deciding.outcome if deciding else Outcome.APPROVE,
        rule=deciding.id if deciding else None,
        fired=tuple(ruleset.rules[i].id for i in fired),
        errors=tuple(errors),
        version=ruleset.version,
    )


def evaluate_many(ruleset: RuleSet, rows: Iterable[Mapping[str, float | str | bool | None]]) -> list[Verdict]:
    """Batch scoring: `evaluate` on each row, the same evaluator as the real-time path."""
    return [evaluate(ruleset, row) for row in rows]
