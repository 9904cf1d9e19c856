"""The stakeholder report: one self-contained HTML file (plots embedded as data URIs, CSS inline, no script,
no external fonts) answering "how much fraud, where, how well does the live model do, how does it compare with
the baselines, has the data drifted since training, how many alerts did we raise, how did the real-time path
answer, what would the live decision rules have done, how is the review keeping up", plus a CSV of the flagged
transactions. The flagged transactions' reasons are shown in words (fraud/features/phrases.py). Jinja2 autoescapes
every value from the data."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import Engine

from fraud.core.privacy import mask_card
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db import queries
from fraud.db.decisions import DecisionStats, channel_decisions, daily_decisions, day_window
from fraud.db.replay import count_history, recorded_outcomes, replay_history
from fraud.db.review_stats import ReviewStats, review_stats
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.features.phrases import describe
from fraud.model import drift, metrics, plots, registry
from fraud.model.network import NAME as NETWORK
from fraud.outreach.alerts import CHANNEL
from fraud.outreach.notify import display_merchant
from fraud.rules.backtest import BacktestResult, backtest
from fraud.rules.ruleset import DEFAULT_RULES_PATH, Outcome, RuleSetError, live_rules

_env = Environment(
    loader=PackageLoader("fraud.outreach", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    undefined=StrictUndefined,
)


REALTIME_DAYS = 14  # days of the real-time decision log the report shows, today included


@dataclass(frozen=True)
class RealtimeDecisions:
    """The decision log's figures (fraud/db/decisions.py) over [start, end): per UTC day, per channel."""

    start: datetime
    end: datetime
    daily: tuple[DecisionStats, ...] = ()
    channels: tuple[DecisionStats, ...] = ()


@dataclass(frozen=True)
class RulesBacktest:
    """The live rule set replayed on the report's window (fraud/db/replay.py, fraud/rules/backtest.py), and the
    decisions the promoted model's scores recorded there, per rule set version and outcome."""

    rules_path: str
    result: BacktestResult | None = None
    recorded: dict[str, dict[str, int]] = field(default_factory=dict)
    left_out: int = 0  # transactions of the window no model version scored
    seconds: float = 0.0  # the replay and the backtest
    note: str = ""  # why there are no backtest figures


@dataclass(frozen=True)
class ReportData:
    scored: pd.DataFrame  # queries.scored_transactions: every transaction the model scored
    flagged: pd.DataFrame  # queries.flagged_for_report
    alerts: pd.DataFrame  # queries.alerts_per_day: day, status, alerts
    freshness: dict[str, object]
    metadata: dict  # the model version's metadata.json
    budget: int  # alerts the fraud team reviews per day
    drift: drift.DriftResult | None = None  # load_drift: PSI per day since the training window
    realtime: RealtimeDecisions | None = None  # load_realtime: the real-time path's answers per day and channel
    rules: RulesBacktest | None = None  # load_rules_backtest: the live rules on the report's window
    review: ReviewStats | None = None  # fraud.db.review_stats: open cases, verdicts, time to decision, label sources


@dataclass(frozen=True)
class Report:
    html: str
    flagged_csv: str
    headline: dict[str, float | int | str]  # raw figures, for Dagster metadata
    plot_alerts_png_b64: str
    plots: dict[str, str] = field(default_factory=dict)


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def _frauds(is_fraud: pd.Series) -> pd.Series:
    """Labelled fraud as bool (an unknown label is not a fraud)."""
    return is_fraud.astype("boolean").fillna(False).astype(bool)


def daily_summary(scored: pd.DataFrame, alerts: pd.DataFrame) -> pd.DataFrame:
    """Per UTC day: transactions, flagged, labelled, frauds, fraud_rate (of labelled), emails (alerts sent)."""
    frame = scored.assign(
        day=_utc(scored["event_time"]).dt.date, labelled=scored["is_fraud"].notna(), fraud=_frauds(scored["is_fraud"])
    )
    daily = (
        frame.groupby("day")
        .agg(
            transactions=("trans_num", "size"),
            flagged=("flagged", "sum"),
            labelled=("labelled", "sum"),
            frauds=("fraud", "sum"),
        )
        .reset_index()
    )
    daily["fraud_rate"] = (daily["frauds"] / daily["labelled"].where(daily["labelled"] > 0)).astype(float)
    sent = alerts[alerts["status"] == "sent"].groupby("day")["alerts"].sum() if len(alerts) else pd.Series(dtype=int)
    daily["emails"] = daily["day"].map(sent).fillna(0).astype(int)
    return daily


def breakdown(scored: pd.DataFrame, by: str, top: int | None = None) -> pd.DataFrame:
    """Per value of `by`: transactions, flagged, frauds (labelled), fraud_rate, amount, flagged_amount; most flagged
    first."""
    frame = scored.assign(
        **{by: scored[by].fillna("(unknown)")},
        amount=scored["amount"].astype(float),
        fraud=_frauds(scored["is_fraud"]),
        labelled=scored["is_fraud"].notna(),
    )
    frame["flagged_amount"] = frame["amount"].where(frame["flagged"], 0.0)
    table = (
        frame.groupby(by)
        .agg(
            transactions=("trans_num", "size"),
            flagged=("flagged", "sum"),
            frauds=("fraud", "sum"),
            labelled=("labelled", "sum"),
            amount=("amount", "sum"),
            flagged_amount=("flagged_amount", "sum"),
        )
        .reset_index()
    )
    table["fraud_rate"] = table["frauds"] / table["labelled"].where(table["labelled"] > 0)
    table = table.sort_values(["flagged", "frauds", "transactions"], ascending=False).reset_index(drop=True)
    return table.head(top) if top else table


def after_training(scored: pd.DataFrame, metadata: dict) -> tuple[pd.DataFrame, str]:
    """The scored transactions the model did not learn from (after its training window, when the metadata names
    one), and a phrase saying which they are."""
    end = (
        (metadata.get("training_window") or {}).get("end")
        if isinstance(metadata.get("training_window"), dict)
        else None
    )
    if not end:
        return scored, "all scored transactions"
    cutoff = pd.Timestamp(end)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
    return scored[
        _utc(scored["event_time"]) >= cutoff
    ], f"transactions from {cutoff:%Y-%m-%d}, after the training window"


def live_metrics(scored: pd.DataFrame, threshold: float) -> dict[str, float | int]:
    """Quality of the live model on the scored transactions whose label has arrived."""
    labelled = scored[scored["is_fraud"].notna()]
    y = labelled["is_fraud"].astype(bool).to_numpy()
    s = labelled["score"].astype(float).to_numpy()
    precision, recall = metrics.precision_recall_at(y, s >= threshold) if len(y) else (float("nan"), float("nan"))
    return {
        "labelled transactions": int(len(y)),
        "labelled frauds": int(y.sum()),
        "average precision": metrics.average_precision(y, s) if len(y) else float("nan"),
        "ROC AUC": metrics.roc_auc(y, s) if len(y) else float("nan"),
        "precision at threshold": precision,
        "recall at threshold": recall,
    }


def _reason_items(value: object) -> list:
    """fraud_score.top_reasons as read: a list of {feature, contribution} or of strings, JSON text or not."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return [item for item in value if item is not None] if isinstance(value, (list, tuple)) else []


def _reason_text(item: object) -> str:
    if isinstance(item, dict):
        name = item.get("feature") or item.get("name") or "?"
        weight = item.get("contribution", item.get("value"))
        return f"{name} ({weight:+.3f})" if isinstance(weight, (int, float)) else str(name)
    return str(item)


def reasons_text(value: object) -> list[str]:
    """fraud_score.top_reasons as short strings (feature and contribution): the CSV's machine-readable column."""
    return [_reason_text(item) for item in _reason_items(value)]


def reasons_in_words(value: object, features: object) -> list[dict[str, str]]:
    """fraud_score.top_reasons in words from the transaction's feature vector (fraud.features.phrases), each phrase
    once: [{"text": the phrase, "detail": feature and contribution}]. A reason the phrases cannot describe (a
    feature of another catalogue version, no stored vector, a plain string) is shown as it is stored."""
    vector = list(features) if isinstance(features, (list, tuple, np.ndarray)) else None
    shown: dict[str, str] = {}
    for item in _reason_items(value):
        detail = _reason_text(item)
        text = detail
        if isinstance(item, dict) and vector is not None:
            try:
                text = describe(str(item.get("feature")), vector)
            except (KeyError, ValueError):
                pass
        shown.setdefault(text, detail if text != detail else "")
    return [{"text": text, "detail": detail} for text, detail in shown.items()]


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _number(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _when(value: object) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return (
        pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
        if pd.Timestamp(value).tzinfo
        else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    )


def _window(value: object) -> str | None:
    if isinstance(value, dict):
        return ", ".join(
            f"{name.replace('_', ' ')} {str(when).replace('T00:00:00+00:00', '')}" for name, when in value.items()
        )
    return str(value) if value else None


# --- model comparison: the network and every baseline its metadata records, on the same test window ---

# (metric key in the metadata, column title); {k} is the protocol's precision_k
COMPARED = (
    ("roc_auc", "ROC AUC"),
    ("average_precision", "average precision"),
    ("card_precision_at_{k}", "card precision@{k}"),
    ("recall_at_budget", "recall at budget"),
)


def _precision_k(metadata: dict) -> int:
    k = (metadata.get("protocol") or {}).get("precision_k") if isinstance(metadata.get("protocol"), dict) else None
    if k:
        return int(k)
    keys = [
        key
        for values in [metadata.get("metrics") or {}, *(metadata.get("baselines") or {}).values()]
        if isinstance(values, dict)
        for key in values
    ]
    found = [int(m.group(1)) for key in keys if (m := re.fullmatch(r"card_precision_at_(\d+)", key))]
    return found[0] if found else 100


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def model_comparison(metadata: dict) -> tuple[list[str], list[dict]]:
    """Column titles and one row per model: the promoted network first, then each baseline of the metadata in
    its order (whatever their names); each cell (text, best in its column)."""
    k = _precision_k(metadata)
    keys = [key.format(k=k) for key, _ in COMPARED]
    baselines = metadata.get("baselines") if isinstance(metadata.get("baselines"), dict) else {}
    models = {
        NETWORK: metadata.get("metrics") or {},
        **{str(name): values for name, values in baselines.items() if isinstance(values, dict)},
    }
    # compared as shown (4 decimals): two models that look equal are both the best
    values = {
        name: [None if (v := _finite(row.get(key))) is None else round(v, 4) for key in keys]
        for name, row in models.items()
    }
    best = []
    for i in range(len(keys)):
        column = [v[i] for v in values.values() if v[i] is not None]
        best.append(max(column) if len(column) > 1 else None)  # one model alone is not "best"
    rows = [
        {
            "name": name.replace("_", " "),
            "network": name == NETWORK,
            "cells": [("n/a" if v is None else f"{v:.4f}", v is not None and v == best[i]) for i, v in enumerate(row)],
        }
        for name, row in values.items()
    ]
    return [title.format(k=k) for _, title in COMPARED], rows


# --- drift since the training window (fraud/model/drift.py) ---


def load_drift(engine: Engine, metadata: dict, min_rows: int = drift.MIN_ROWS) -> drift.DriftResult:
    """PSI of each feature and of the score, per day since the model's training window (at most the last
    drift.RECENT_DAYS days), against a repeatable sample of that window. `metadata` has the model's version."""
    window = drift.training_window(metadata)
    if window is None:
        return drift.DriftResult.nothing("the model's metadata names no training window: nothing to compare with")
    version, feature_version = str(metadata.get("version")), metadata.get("feature_version") or FEATURE_VERSION
    start, end = (t.to_pydatetime() for t in window)
    reference = queries.drift_reference_sample(engine, version, feature_version, start, end, drift.REFERENCE_SAMPLE)
    recent = queries.drift_recent_days(engine, version, feature_version, end, drift.RECENT_DAYS, drift.DAY_SAMPLE)
    return drift.from_samples(reference, recent, metadata, FEATURE_NAMES, min_rows)


DRIFT_TOP = 8  # features shown in the report's drift table (the score always is)


def _level_class(level: str) -> str:
    return level.replace(" ", "-")


def drift_view(result: drift.DriftResult, top: int = DRIFT_TOP) -> dict:
    """What the report's drift section shows: the score's PSI per day, then the `top` features by their largest
    PSI, each cell (PSI, level, css class); sampled rows per day; a sentence on the worst."""
    days = result.days
    view = {
        "note": result.note,
        "days": [f"{d:%Y-%m-%d}" if hasattr(d, "strftime") else str(d) for d in days],
        "rows": [],
        "counts": [],
        "summary": "",
        "reference": "",
    }
    if result.note:
        return view
    view["reference"] = f"{result.reference_rows:,} transactions sampled from the training window"
    if result.window:
        start, end = result.window
        view["reference"] += f" ({start:%Y-%m-%d} to {end - pd.Timedelta(seconds=1):%Y-%m-%d})"
    counts = result.score.set_index("day")["rows"] if len(result.score) else pd.Series(dtype=int)
    feature_rows = result.features.groupby("day")["rows"].max() if len(result.features) else pd.Series(dtype=int)
    view["counts"] = [f"{int(max(counts.get(d, 0), feature_rows.get(d, 0))):,}" for d in days]

    def row(name: str, frame: pd.DataFrame, is_score: bool) -> dict:
        cells = {r.day: (r.psi, r.level) for r in frame[frame["feature"] == name].itertuples()}
        shown = []
        for day in days:
            value, level = cells.get(day, (float("nan"), drift.NO_DATA))
            shown.append(("–" if value != value else f"{value:.3f}", level, _level_class(level)))
        return {"name": name, "score": is_score, "cells": shown}

    if len(result.score):
        view["rows"].append(row(drift.SCORE, result.score, True))
    ranked = drift.by_feature(result.features)
    view["rows"] += [row(name, result.features, False) for name in ranked["feature"].head(top)]
    hidden = len(ranked) - min(top, len(ranked))
    flagged = drift.significant(result.features)["feature"].nunique()
    worst = drift.worst(result.features, 1)
    parts = [f"{flagged} of {len(ranked)} features above {drift.SIGNIFICANT_ABOVE} on at least one day"]
    if worst:
        parts.append(
            f"largest: {worst[0]['feature']} on {worst[0]['day']}, PSI {worst[0]['psi']:.3f} ({worst[0]['level']})"
        )
    if hidden:
        below = ranked["max_psi"].iloc[top]
        parts.append(
            f"{hidden} more features not shown"
            + ("" if below != below else f" (their largest PSI is at most {below:.3f})")
        )
    view["summary"] = "; ".join(parts) + "."
    return view


# --- the real-time path's answers (the decision log, fraud/db/decisions.py) ---


def load_realtime(engine: Engine, days: int = REALTIME_DAYS, now: datetime | None = None) -> RealtimeDecisions:
    start, end = day_window(days, now)
    return RealtimeDecisions(
        start, end, tuple(daily_decisions(engine, days, now)), tuple(channel_decisions(engine, days, now))
    )


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def realtime_view(realtime: RealtimeDecisions | None) -> dict:
    """What the report's real-time section shows: its period, one row per day with decisions (count, flagged,
    flag rate, new cards, latency p50/p99), one sentence per channel; `rows` empty when there were none."""
    if realtime is None:
        return {"period": "", "rows": [], "channels": [], "total": 0}
    last_day, days = realtime.end - timedelta(days=1), (realtime.end - realtime.start).days
    rows = [
        {
            "day": f"{d.key:%Y-%m-%d}" if hasattr(d.key, "strftime") else str(d.key),
            "decisions": f"{d.decisions:,}",
            "flagged": f"{d.flagged:,}",
            "flag_rate": f"{d.flag_rate:.1%}",
            "new_cards": f"{d.new_cards:,}",
            "p50": _ms(d.latency_p50),
            "p99": _ms(d.latency_p99),
        }
        for d in realtime.daily
    ]
    channels = [
        f"{c.key}: {c.decisions:,} decision{'' if c.decisions == 1 else 's'}, {c.flag_rate:.1%} flagged, "
        f"latency p50 {_ms(c.latency_p50)} ms, p99 {_ms(c.latency_p99)} ms"
        for c in realtime.channels
    ]
    return {
        "period": f"the last {days} days, {realtime.start:%Y-%m-%d} to {last_day:%Y-%m-%d} UTC",
        "rows": rows,
        "channels": channels,
        "total": sum(d.decisions for d in realtime.daily),
    }


# --- the live decision rules, backtested on the report's window (docs/rules.md) ---


def report_window(scored: pd.DataFrame) -> tuple[datetime, datetime] | None:
    """[since, until) of the transactions the promoted model scored (the report's window); None when there are none."""
    if not len(scored):
        return None
    times = _utc(scored["event_time"])
    return times.min().to_pydatetime(), times.max().to_pydatetime() + timedelta(microseconds=1)


def load_rules_backtest(
    engine: Engine, settings: Settings, model_version: str, window: tuple[datetime, datetime] | None
) -> RulesBacktest:
    """The live rules (settings.rules_path, else the packaged default) replayed on `window`. A rule set that does not
    load gives a note instead of figures: the report is still written."""
    path = str(settings.rules_path or DEFAULT_RULES_PATH)
    if window is None:
        return RulesBacktest(path, note="no scored transactions to replay")
    since, until = window
    began = time.perf_counter()
    recorded = recorded_outcomes(engine, model_version, since, until)
    try:
        ruleset = live_rules(settings.rules_path)
    except (RuleSetError, OSError) as error:
        return RulesBacktest(path, recorded=recorded, note=f"the live rule set ({path}) does not load: {error}")
    left_out = count_history(engine, since, until).unscored
    pages = replay_history(engine, model_version, since, until, fields=ruleset.fields)  # only the features it names
    result = backtest(ruleset, (row for page in pages for row in page))
    return RulesBacktest(path, result, recorded, left_out, time.perf_counter() - began)


def rules_view(rules: RulesBacktest | None) -> dict:
    """What the report's rules section shows: a sentence on the window, one row per rule (its figures, its
    description and expression under them), the set's rows (acted on, blocked, the model's flags), the verdicts per
    outcome, the rules that failed, and the decisions recorded per rule set version."""
    view: dict = {"note": "", "summary": "", "rows": [], "totals": [], "outcomes": "", "errors": [], "recorded": []}
    if rules is None:
        view["note"] = "the rules were not backtested for this report"
        return view
    for version, counts in sorted(rules.recorded.items()):
        view["recorded"].append(
            {
                "version": version,
                "cells": [f"{counts.get(o.value, 0):,}" for o in Outcome] + [f"{sum(counts.values()):,}"],
            }
        )
    result = rules.result
    if result is None or not result.transactions:
        view["note"] = rules.note or "no scored transaction in the window"
        return view
    days = f"{result.days} day{'' if result.days == 1 else 's'}"
    view["version"] = result.ruleset_version
    view["summary"] = (
        f"{len(result.rules)} rules replayed on {result.transactions:,} transactions of {result.first_day} to "
        f"{result.last_day} ({days}), each with its stored features and the promoted model's score (another "
        f"version's where it did not score it): {result.labelled:,} labelled, {result.frauds:,} of them fraud "
        f"({result.fraud_amount:,.2f})."
    )
    if rules.left_out:
        view["summary"] += f" {rules.left_out:,} transactions no model scored are left out."
    view["rows"] = [
        {
            "id": rule.rule_id,
            "description": rule.description,
            "expression": rule.expression,
            "outcome": rule.outcome.value,
            "priority": rule.priority,
            "cells": rule.catch.cells() + [f"{rule.decided:,}", f"{rule.errors:,}"],
        }
        for rule in result.rules
    ]
    view["totals"] = [
        {"name": "the set: acted on", "outcome": "review or block", "cells": result.acted_on.cells()},
        {"name": "the set: blocked", "outcome": "block", "cells": result.block.cells()},
        {"name": "the model's flags alone", "outcome": "", "cells": result.model.cells()},
    ]
    view["outcomes"] = ", ".join(f"{count:,} {outcome.value}" for outcome, count in result.outcomes.items())
    view["errors"] = [
        f"{rule.rule_id} failed on {rule.errors:,} transaction{'' if rule.errors == 1 else 's'} "
        f"(it did not fire there): {rule.first_error}"
        for rule in result.rules
        if rule.errors
    ]
    return view


# --- the review: open cases, verdicts, time to decision, labels by source (fraud/db/review_stats.py) ---


def _hours(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _of(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"


def review_view(stats: ReviewStats | None) -> dict:
    """What the report's review section shows: open cases per age bucket, the verdicts per source (rows) and verdict
    (columns), the time to decision as a sentence, the labels per source; `note` when there are no figures."""
    view: dict = {"note": "", "clock": "", "ages": [], "open_total": "0", "verdicts": [], "verdict_columns": []}
    if stats is None:
        view["note"] = "the review figures were not computed for this report"
        return view
    view["clock"] = _when(stats.now)
    view["open_total"] = f"{stats.open_total:,}"
    view["ages"] = [(bucket.label, f"{bucket.cases:,}") for bucket in stats.open_cases]
    columns = list(dict.fromkeys(v.verdict for v in stats.verdicts))
    view["verdict_columns"] = columns
    for source in dict.fromkeys(v.source for v in stats.verdicts):
        counts = {v.verdict: v.count for v in stats.verdicts if v.source == source}
        view["verdicts"].append(
            {"source": source, "cells": [f"{counts[c]:,}" for c in columns] + [f"{sum(counts.values()):,}"]}
        )
    view["verdicts_total"] = f"{sum(v.count for v in stats.verdicts):,}"
    times = stats.decision_times
    if stats.window is None:
        view["timing"] = "No scored transactions in the report's window: no case to time."
    elif times.decided:
        view["timing"] = (
            f"{times.decided:,} of the {times.cases:,} cases that began in the report's window have been decided by "
            f"an analyst or the cardholder: median {_hours(times.median_hours)} hours, 90th percentile "
            f"{_hours(times.p90_hours)} hours."
        )
    else:
        view["timing"] = (
            f"None of the {times.cases:,} cases that began in the report's window has been decided by an analyst or "
            f"the cardholder yet."
        )
    labels = stats.labels
    view["labels"] = [(source, _of(count, labels.transactions)) for source, count in labels.by_source] + [
        ("no label known yet", _of(labels.unlabelled, labels.transactions))
    ]
    view["labelled_total"] = f"{labels.transactions:,}"
    return view


# a cell starting with one of these is a formula (or, tab and CR, a way to hide one) to a spreadsheet
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """A text cell a spreadsheet will show as text: a leading `'` before a formula prefix; other values as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def csv_for_people(frame: pd.DataFrame) -> str:
    """`frame` as CSV with every text cell through `csv_safe`: the one way the platform writes a CSV for people
    (merchant names, ids and reasons come from data, never formulas)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(csv_safe)
    # RFC 4180's CRLF: the csv module then quotes a cell holding a lone CR too, which would otherwise end the row
    return frame.to_csv(index=False, lineterminator="\r\n")


def _features_column(flagged: pd.DataFrame) -> pd.Series:
    """The flagged rows' feature vectors (None where there is none, or a hand-built frame has no column)."""
    return flagged["features"] if "features" in flagged else pd.Series([None] * len(flagged), index=flagged.index)


def flagged_csv(flagged: pd.DataFrame) -> str:
    frame = pd.DataFrame(
        {
            "trans_num": flagged["trans_num"],
            "event_time": _utc(flagged["event_time"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "card": flagged["last4"].map(mask_card),
            "merchant": flagged["merchant"].map(display_merchant),
            "category": flagged["category"],
            "state": flagged["state"],
            "amount": flagged["amount"].astype(float).round(2),
            "score": flagged["score"].astype(float).round(6),
            "threshold": flagged["threshold"],
            "model_version": flagged["model_version"],
            "labelled_fraud": flagged["is_fraud"],
            "reasons": flagged["top_reasons"].map(lambda r: "; ".join(reasons_text(r))),
            "reasons_in_words": [
                "; ".join(r["text"] for r in reasons_in_words(reasons, features))
                for reasons, features in zip(flagged["top_reasons"], _features_column(flagged), strict=True)
            ],
        }
    )
    return csv_for_people(frame)


def build_report(data: ReportData, top_n: int = 25, now: datetime | None = None) -> Report:
    scored = data.scored.assign(score=data.scored["score"].astype(float))
    threshold = float(data.metadata.get("threshold", 0.5))
    version = str(data.metadata.get("version", "?"))
    daily = daily_summary(scored, data.alerts)
    unseen, live_scope = after_training(scored, data.metadata)
    live = live_metrics(unseen, threshold)
    labelled = scored["is_fraud"].dropna().astype(bool)
    sent = int(data.alerts.loc[data.alerts["status"] == "sent", "alerts"].sum()) if len(data.alerts) else 0
    pending = int(data.alerts.loc[data.alerts["status"] == "pending", "alerts"].sum()) if len(data.alerts) else 0
    flagged_amount = float(scored.loc[scored["flagged"], "amount"].astype(float).sum())
    per_day = float(daily["flagged"].mean()) if len(daily) else 0.0
    headline = {
        "transactions": int(len(scored)),
        "flagged": int(scored["flagged"].sum()),
        "flagged_per_day": round(per_day, 1),
        "alert_budget_per_day": data.budget,
        "labelled_fraud_rate": float(labelled.mean()) if len(labelled) else float("nan"),
        "flagged_amount": round(flagged_amount, 2),
        "live_precision": live["precision at threshold"],
        "live_recall": live["recall at threshold"],
        "live_average_precision": live["average precision"],
        "emails_sent": sent,
        "emails_pending": pending,
        "model_version": version,
    }
    backtested = data.rules.result if data.rules else None
    if backtested is not None:  # the live rules on the report's window (NaN: no labelled hit, no labelled fraud)
        headline |= {
            "ruleset_version": backtested.ruleset_version,
            "rules_acted_on": backtested.acted_on.hits,
            "rules_blocked": backtested.block.hits,
            "rules_acted_on_precision": _nan(backtested.acted_on.precision),
            "rules_acted_on_recall": _nan(backtested.acted_on.recall),
        }
    if data.review is not None:
        headline["open_cases"] = data.review.open_total
    headline = {name: value.item() if isinstance(value, np.generic) else value for name, value in headline.items()}

    def pct(value: float) -> str:
        return "n/a" if value != value else f"{value:.1%}"  # NaN != NaN

    cards = [
        (
            "Transactions scored",
            f"{headline['transactions']:,}",
            f"{daily['day'].min()} – {daily['day'].max()}" if len(daily) else "no data",
        ),
        ("Flagged", f"{headline['flagged']:,}", f"{per_day:.1f}/day, budget {data.budget}/day"),
        (
            "Labelled fraud rate",
            pct(headline["labelled_fraud_rate"]),
            f"{int(labelled.sum()):,} of {len(labelled):,} labelled",
        ),
        ("Flagged amount", f"${flagged_amount:,.0f}", "sum of flagged payments"),
        ("Live precision", pct(live["precision at threshold"]), f"recall {pct(live['recall at threshold'])}"),
        ("Customer emails", f"{sent:,}", f"{pending:,} pending"),
    ]
    by_category, by_state = breakdown(scored, "category"), breakdown(scored, "state", top=15)
    by_merchant = breakdown(scored.assign(merchant=scored["merchant"].map(display_merchant)), "merchant", top=15)
    unseen_labelled = unseen[unseen["is_fraud"].notna()]
    y, s = unseen_labelled["is_fraud"].astype(bool).to_numpy(), unseen_labelled["score"].to_numpy()
    images = {
        "volume": plots.volume_and_fraud_rate(daily),
        "alerts": plots.alerts_against_budget(daily, data.budget),
        "scores": plots.score_distribution(scored["score"], scored["is_fraud"], threshold),
        "pr_curve": plots.precision_recall(y, s, threshold),
        "category": plots.breakdown_bars(by_category, "category", "Flagged and fraud by category"),
        "state": plots.breakdown_bars(by_state, "state", "Flagged and fraud by cardholder state"),
    }
    top = data.flagged.head(top_n)
    top_rows = [
        {
            "time": _when(r.event_time),
            "card": mask_card(r.last4),
            "merchant": display_merchant(r.merchant),
            "category": r.category or "",
            "state": r.state or "",
            "amount": f"{float(r.amount):,.2f}",
            "score": f"{float(r.score):.3f}",
            "label": "" if pd.isna(r.is_fraud) else ("fraud" if r.is_fraud else "genuine"),
            "reasons": reasons_in_words(r.top_reasons, features),
        }
        for r, features in zip(top.itertuples(), _features_column(top), strict=True)
    ]
    trained = [
        (name, _number(value))
        for name, value in data.metadata.get("metrics", {}).items()
        if not isinstance(value, (dict, list))
    ]
    freshness = [(name.replace("_", " "), _when(value)) for name, value in data.freshness.items()]
    comparison_columns, comparison = model_comparison(data.metadata)
    drifted = drift_view(data.drift or drift.DriftResult.nothing("drift was not computed for this report"))
    realtime = realtime_view(data.realtime)
    rules = rules_view(data.rules)
    html = _env.get_template("report.html.j2").render(
        generated_at=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        model_version=version,
        threshold=f"{threshold:.4f}",
        data_until=_when(data.freshness.get("latest_transaction")),
        cards=cards,
        images=images,
        live=[(k, _number(v)) for k, v in live.items()],
        live_scope=live_scope,
        trained=trained,
        windows=[
            (key.replace("_", " "), _window(data.metadata[key]))
            for key in ("training_window", "test_window")
            if data.metadata.get(key)
        ],
        freshness=freshness,
        budget=data.budget,
        breakdowns=[
            ("Category", "category", by_category),
            ("Cardholder state (top 15 by flagged)", "state", by_state),
            ("Merchant (top 15 by flagged)", "merchant", by_merchant),
        ],
        top_flagged=top_rows,
        flagged_total=len(data.flagged),
        top_n=top_n,
        comparison_columns=comparison_columns,
        comparison=comparison,
        drift=drifted,
        psi_stable=f"{drift.STABLE_BELOW:.2f}",
        psi_significant=f"{drift.SIGNIFICANT_ABOVE:.2f}",
        psi_min_rows=drift.MIN_ROWS,
        realtime=realtime,
        rules=rules,
        outcomes=[o.value for o in Outcome],
        review=review_view(data.review),
    )
    return Report(
        html=html,
        flagged_csv=flagged_csv(data.flagged),
        headline=headline,
        plot_alerts_png_b64=images["alerts"],
        plots=images,
    )


@dataclass(frozen=True)
class PublishedReport:
    report: Report
    latest: str  # where latest.html is (a path locally, s3:// in aws mode)
    snapshot: str
    csv: str


def load_report_data(engine: Engine, settings: Settings, now: datetime | None = None) -> ReportData:
    store = object_store(settings, settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        raise LookupError("no promoted model yet: materialize fraud_model first")
    metadata = {"version": version, **registry.load_metadata(store, settings.model_name, version)}
    scored = queries.scored_transactions(engine, version)
    return ReportData(
        scored=scored,
        flagged=queries.flagged_for_report(engine, version, FEATURE_VERSION),
        alerts=queries.alerts_per_day(engine, CHANNEL),
        freshness=queries.data_freshness(engine, version),
        metadata=metadata,
        budget=settings.alert_budget_per_day,
        drift=load_drift(engine, metadata),
        realtime=load_realtime(engine, REALTIME_DAYS, now),
        rules=load_rules_backtest(engine, settings, version, report_window(scored)),
        review=review_stats(engine, version, report_window(scored)),
    )


def publish_report(engine: Engine, settings: Settings, now: datetime | None = None) -> PublishedReport:
    """Build the report of the promoted model and write it to the reports bucket: reports/<timestamp>/ and latest."""
    now = now or datetime.now(UTC)
    report = build_report(load_report_data(engine, settings, now), now=now)
    store = object_store(settings, settings.reports_bucket)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    html, csv = report.html.encode(), report.flagged_csv.encode()
    for key, body, kind in (
        (f"reports/{stamp}/report.html", html, "text/html; charset=utf-8"),
        (f"reports/{stamp}/flagged.csv", csv, "text/csv; charset=utf-8"),
        ("latest.html", html, "text/html; charset=utf-8"),
        ("latest-flagged.csv", csv, "text/csv; charset=utf-8"),
    ):
        store.put_bytes(key, body, kind)
    return PublishedReport(
        report, store.uri("latest.html"), store.uri(f"reports/{stamp}/report.html"), store.uri("latest-flagged.csv")
    )
