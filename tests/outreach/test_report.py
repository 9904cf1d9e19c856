"""The stakeholder report on a hand-built scored world in real PostgreSQL: self-contained HTML, figures that
match the data, breakdowns, reasons, escaping, the CSV, the CLI command and the Dagster asset's metadata; the model
comparison (every baseline of the metadata, whatever its name) and the drift section on hand-built data; the
real-time decisions section, with and without recorded decisions; the decision rules section (the live rules
backtested on the report's window, escaped; a rule set that does not load); the top flagged transactions' reasons in
words; the review section (open cases by age, verdicts, time to decision, labels by source) against the world's
verdicts computed by hand."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import materialize
from markupsafe import escape
from sqlalchemy import text
from typer.testing import CliRunner

from assets.reporting import fraud_report
from assets.resources import FraudPlatform
from fraud.app.cli import app
from fraud.core.privacy import card_numbers_in
from fraud.core.settings import Settings
from fraud.db.decisions import DecisionStats
from fraud.db.labels import record_verdicts
from fraud.db.review_stats import DecisionTimes, LabelCounts, ReviewStats, VerdictCount, age_buckets
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model import drift, metrics
from fraud.outreach.report import (
    DRIFT_TOP,
    REALTIME_DAYS,
    RealtimeDecisions,
    ReportData,
    RulesBacktest,
    after_training,
    breakdown,
    build_report,
    live_metrics,
    load_report_data,
    load_rules_backtest,
    model_comparison,
    publish_report,
    realtime_view,
    reasons_in_words,
    reasons_text,
    report_window,
    review_view,
)
from fraud.rules import load_rules
from fraud.rules.backtest import HistoryRow, backtest
from fraud.rules.ruleset import DEFAULT_RULES_PATH
from tests.db.test_decisions import decision, forget, record
from tests.helpers.homes import own_migrated_home
from tests.helpers.scored_world import HOSTILE_MERCHANT, THRESHOLD, build_world

REASONS = [
    {"feature": "card_count_1h", "contribution": 0.4213},
    {"feature": "card_new_merchant_30d", "contribution": 0.2},
    {"feature": "night", "contribution": -0.05},  # no feature of the catalogue: shown as stored
]
# the explained transaction's features: a card that paid 6 times in the last hour, 144 times in 30 days
EXPLAINED = {"card_count_1h": 6, "card_count_30d": 144, "card_new_merchant_30d": 1}
IN_WORDS = [
    "6 purchases on this card in the last hour; usually 0.2 an hour",
    "First purchase at this merchant in 30 days",
]
LABEL_DELAY = timedelta(days=2)  # build_world's label files arrive two days after each transaction


@dataclass(frozen=True)
class Reviewed:
    """The verdicts the published world was given: case key (card token, day) per verdict."""

    groups: dict  # case key -> its decided transactions (rows of the world)
    clock: pd.Timestamp
    recent: list  # the cases open before any verdict (a label still to arrive)
    fraud: tuple  # analyst: fraud
    genuine: tuple  # customer: genuine
    unsure: tuple  # analyst: unsure (decides nothing)


def _review(engine, world) -> Reviewed:
    """Verdicts on three of the world's open cases; the world's labels follow them (the report reads them)."""
    frame = world.transactions
    decided = frame[frame["score"] >= THRESHOLD]
    groups = {key: rows for key, rows in decided.groupby(["card_token", "day"])}
    clock = frame["event_time"].max()
    recent = sorted(key for key, rows in groups.items() if (rows["event_time"] + LABEL_DELAY > clock).any())
    assert len(recent) >= 3
    reviewed = Reviewed(groups, clock, recent, *recent[:3])
    with engine.begin() as connection:
        for key, verdict, source in (
            (reviewed.fraud, "fraud", "analyst"),
            (reviewed.genuine, "genuine", "customer"),
            (reviewed.unsure, "unsure", "analyst"),
        ):
            record_verdicts(connection, list(groups[key]["trans_num"]), verdict, source, "tester")
            if verdict != "unsure":
                frame.loc[frame["trans_num"].isin(groups[key]["trans_num"]), "is_fraud"] = verdict == "fraud"
    return reviewed


@pytest.fixture(scope="module")
def report_db():
    """The report reads the whole warehouse (data freshness, the promoted model): its own home, so what other
    modules load into the session's database cannot change what these tests see."""
    with own_migrated_home("fraud-report-") as home:
        yield home


@pytest.fixture(scope="module")
def reviewed_world(report_db):
    settings, engine = report_db
    world = build_world(engine, settings, "report", cards=8, days=4, seed=11)
    flagged = world.transactions[world.transactions["flagged"]].sort_values("score", ascending=False)
    with engine.begin() as connection:  # the scorer's explanations: dicts on one, plain strings on another
        connection.execute(
            text("UPDATE fraud_score SET top_reasons = CAST(:r AS jsonb) WHERE trans_num = :t"),
            [
                {"t": flagged.iloc[0]["trans_num"], "r": json.dumps(REASONS)},
                {"t": flagged.iloc[1]["trans_num"], "r": json.dumps(["card testing pattern"])},
            ],
        )
        connection.execute(
            text("UPDATE transaction_features SET values = :v WHERE trans_num = :t AND feature_version = :version"),
            {
                "t": flagged.iloc[0]["trans_num"],
                "v": [float(EXPLAINED.get(name, 0.0)) for name in FEATURE_NAMES],
                "version": FEATURE_VERSION,
            },
        )
    return world, _review(engine, world)


@pytest.fixture(scope="module")
def published(report_db, reviewed_world):
    settings, engine = report_db
    world, _ = reviewed_world
    return world, publish_report(engine, settings)


def test_report_is_one_self_contained_file(published):
    world, result = published
    html = Path(result.latest).read_text()
    assert Path(result.snapshot).read_text() == html
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "no external resources"
    images = re.findall(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 6
    for alt, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, alt
    assert world.model_version in html and "data up to 2026-11-05" in html


def test_headline_figures_match_the_data(published):
    world, result = published
    frame = world.transactions
    headline = result.report.headline
    assert headline["transactions"] == len(frame)
    assert headline["flagged"] == int(frame["flagged"].sum())
    assert headline["flagged_amount"] == pytest.approx(frame.loc[frame["flagged"], "amt"].sum())
    assert headline["labelled_fraud_rate"] == pytest.approx(frame["is_fraud"].mean())
    precision, recall = metrics.precision_recall_at(frame["is_fraud"].to_numpy(), frame["flagged"].to_numpy())
    assert (headline["live_precision"], headline["live_recall"]) == (pytest.approx(precision), pytest.approx(recall))
    assert headline["live_average_precision"] == pytest.approx(
        metrics.average_precision(frame["is_fraud"].to_numpy(), frame["score"].to_numpy())
    )
    html = result.report.html
    assert f"{len(frame):,}" in html and f"{precision:.1%}" in html


def test_breakdowns_and_top_flagged_table(published):
    world, result = published
    html = result.report.html
    frame = world.transactions
    for state, rows in frame.groupby("state"):
        flagged = int(rows["flagged"].sum())
        assert re.search(
            rf"<tr><td>{state}</td><td class=\"num\">{len(rows):,}</td><td class=\"num\">{flagged:,}</td>", html
        )
    for category in frame["category"].unique():
        assert f"<td>{category}</td>" in html
    top = html[html.index('id="top-flagged"') :]
    top = top[: top.index("</table>")]
    assert top.count('<tr><td class="nowrap">2026-11-') == min(25, int(frame["flagged"].sum()))
    best = frame[frame["flagged"]].sort_values("score", ascending=False).iloc[0]
    assert f"•••• {best['last4']}" in top and f"{best['score']:.3f}" in top
    # the reasons in words (the feature and its contribution as the title); what is not a feature, as stored
    assert (
        f'<ul class="reasons"><li title="card_count_1h (+0.421)">{escape(IN_WORDS[0])}</li>'
        f'<li title="card_new_merchant_30d (+0.200)">{escape(IN_WORDS[1])}</li><li>night (-0.050)</li></ul>'
    ) in top
    assert "<li>card testing pattern</li>" in top and "card_count_1h</li>" not in top
    assert "fraud_" not in top  # the data set's merchant prefix is not shown


def test_hostile_names_are_escaped_in_the_report(published):
    _, result = published
    html = result.report.html
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &#34;Quotes&#39; Shop&#34;" in html


def test_flagged_csv_beside_the_report(published):
    world, result = published
    csv = pd.read_csv(io.StringIO(Path(result.csv).read_text()))
    flagged = world.transactions[world.transactions["flagged"]]
    assert sorted(csv["trans_num"]) == sorted(flagged["trans_num"])
    assert csv["card"].str.fullmatch(r"•••• \d{4}").all()
    assert HOSTILE_MERCHANT.removeprefix("fraud_") in set(csv["merchant"])
    assert csv["reasons"].fillna("").str.contains("card_count_1h").sum() == 1
    explained = csv.set_index("trans_num").loc[flagged.sort_values("score").iloc[-1]["trans_num"]]
    assert explained["reasons_in_words"] == "; ".join([*IN_WORDS, "night (-0.050)"])
    text_csv = Path(result.csv).read_text()
    assert not any(token in text_csv for token in flagged["card_token"]) and card_numbers_in(text_csv) == []
    assert (csv["score"] >= THRESHOLD).all()


def test_reasons_in_any_shape():
    assert reasons_text(None) == [] and reasons_text([]) == []
    assert reasons_text(REASONS) == ["card_count_1h (+0.421)", "card_new_merchant_30d (+0.200)", "night (-0.050)"]
    assert reasons_text(json.dumps(["a", {"feature": "b"}])) == ["a", "b"]
    assert reasons_text("velocity") == ["velocity"]


def test_reasons_in_words_in_any_shape():
    vector = [float(EXPLAINED.get(name, 0.0)) for name in FEATURE_NAMES]
    assert reasons_in_words(json.dumps(REASONS), vector) == [
        {"text": IN_WORDS[0], "detail": "card_count_1h (+0.421)"},
        {"text": IN_WORDS[1], "detail": "card_new_merchant_30d (+0.200)"},
        {"text": "night (-0.050)", "detail": ""},
    ]
    # no vector stored, or one of another length: as stored; two features saying the same thing: once
    assert [r["text"] for r in reasons_in_words(REASONS, None)] == reasons_text(REASONS)
    assert [r["text"] for r in reasons_in_words(REASONS, vector[:-1])] == reasons_text(REASONS)
    amount = vector.copy()
    amount[FEATURE_NAMES.index("amt_log")] = math.log1p(50.0)
    same = [{"feature": "amt_log", "contribution": 0.3}, {"feature": "amt_over_card_mean_30d", "contribution": 0.1}]
    assert reasons_in_words(same, amount) == [
        {
            "text": "Amount 50.00; no earlier purchase on this card in 30 days to compare with",
            "detail": "amt_log (+0.300)",
        }
    ]
    assert reasons_in_words(None, vector) == [] and reasons_in_words("velocity", vector)[0]["text"] == "velocity"


def test_breakdown_on_a_hand_computed_case():
    scored = pd.DataFrame(
        {
            "trans_num": list("abcde"),
            "category": ["x", "x", "y", "y", None],
            "flagged": [True, False, True, True, False],
            "amount": [10.0, 20.0, 5.0, 7.0, 1.0],
            "is_fraud": [True, None, False, True, None],
        }
    )
    table = breakdown(scored, "category").set_index("category")
    assert list(table.index) == ["y", "x", "(unknown)"]
    assert table.loc["y"].to_dict() == {
        "transactions": 2,
        "flagged": 2,
        "frauds": 1,
        "labelled": 2,
        "amount": 12.0,
        "flagged_amount": 12.0,
        "fraud_rate": 0.5,
    }
    assert table.loc["x", "fraud_rate"] == 1.0 and np.isnan(table.loc["(unknown)", "fraud_rate"])


def test_cli_report_prints_the_path(published):
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    path = Path(re.search(r"^report: (.+)$", result.output, re.M).group(1))
    assert path.name == "latest.html" and path.is_file()


def test_asset_metadata_has_headline_and_plot(published):
    world, _ = published
    result = materialize([fraud_report], resources={"fraud": FraudPlatform()})
    assert result.success
    metadata = result.asset_materializations_for_node("fraud_report")[0].metadata
    assert metadata["transactions"].value == len(world.transactions)
    assert metadata["flagged"].value == int(world.transactions["flagged"].sum())
    assert metadata["model_version"].value == world.model_version
    assert metadata["alerts_per_day_plot"].value.startswith("![alerts per day](data:image/png;base64,iVBOR")
    assert Path(metadata["report"].value).is_file()


def test_live_quality_leaves_out_the_training_window():
    scored = pd.DataFrame(
        {
            "trans_num": list("abcd"),
            "score": [0.9, 0.1, 0.9, 0.2],
            "flagged": [True, False, True, False],
            "event_time": pd.to_datetime(
                ["2026-11-01T10:00Z", "2026-11-02T10:00Z", "2026-11-06T01:00Z", "2026-11-07T01:00Z"]
            ),
            "is_fraud": [True, False, False, True],
        }
    )
    unseen, scope = after_training(
        scored, {"training_window": {"start": "2026-11-01T00:00:00+00:00", "end": "2026-11-06T00:00:00+00:00"}}
    )
    assert list(unseen["trans_num"]) == ["c", "d"] and "after the training window" in scope
    assert live_metrics(unseen, 0.5)["precision at threshold"] == 0.0  # the model's training days would say 0.5
    assert after_training(scored, {})[0] is scored


def test_published_report_without_a_training_window_says_so(published):
    _, result = published
    html = result.report.html
    section = html[html.index('<div class="panel" id="drift">') :]
    section = section[: section.index("</div>")]
    assert "No drift figures: the model&#39;s metadata names no training window" in section
    assert "<table" not in section and "above 0.25 is a significant shift" in section
    comparison = html[html.index('id="model-comparison"') :]
    comparison = comparison[: comparison.index("</table>")]
    assert comparison.count("<tr>") == 2 and "neural network" in comparison  # no baselines in this world's metadata


# --- model comparison and drift, on hand-built data (no database) ---

UNSEEN = "isolation_forest_v9"  # a baseline name no code or template knows
HOSTILE_BASELINE = "<b>bold</b>_model"


def _metrics(auc, ap, cp, recall, k=50):
    return {
        "roc_auc": auc,
        "average_precision": ap,
        f"card_precision_at_{k}": cp,
        "precision_at_budget": 0.3,
        "recall_at_budget": recall,
        "alerts_per_day": 40.0,
        "test_rows": 1000,
        "test_frauds": 20,
    }


HAND_METADATA = {
    "version": "hand-model",
    "threshold": 0.5,
    "protocol": {"precision_k": 50},
    "feature_names": list(FEATURE_NAMES),
    "training_window": {
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-11-05T00:00:00+00:00",
        "rows": 4000,
        "frauds": 40,
    },
    "metrics": _metrics(0.95, 0.80, 0.60, 0.70),
    "baselines": {
        "logistic_regression": {**_metrics(0.90, 0.60, 0.50, 0.55), "threshold": 0.7},
        "random_forest": {**_metrics(0.97, 0.78, 0.62, None), "threshold": 0.6},
        UNSEEN: {**_metrics(0.85, 0.82, 0.40, 0.65), "threshold": 0.4},
        HOSTILE_BASELINE: {**_metrics(0.50, 0.02, 0.01, 0.01), "threshold": 0.5},
    },
}


def test_model_comparison_lists_every_baseline_and_the_best_of_each_column():
    columns, rows = model_comparison(HAND_METADATA)
    assert columns == ["ROC AUC", "average precision", "card precision@50", "recall at budget"]
    assert [r["name"] for r in rows] == [
        "neural network",
        "logistic regression",
        "random forest",
        UNSEEN.replace("_", " "),
        HOSTILE_BASELINE.replace("_", " "),
    ]
    best = {columns[i]: [r["name"] for r in rows if r["cells"][i][1]] for i in range(len(columns))}
    assert best == {
        "ROC AUC": ["random forest"],
        "average precision": [UNSEEN.replace("_", " ")],
        "card precision@50": ["random forest"],
        "recall at budget": ["neural network"],
    }
    assert rows[2]["cells"][3] == ("n/a", False)  # a missing value is n/a, never the best
    assert model_comparison({"metrics": _metrics(0.9, 0.5, 0.4, 0.3, k=100)})[0][2] == "card precision@100"
    _, tied = model_comparison({"metrics": {"roc_auc": 0.15}, "baselines": {"x": {"roc_auc": 0.1500000001}}})
    assert [r["cells"][0] for r in tied] == [("0.1500", True), ("0.1500", True)]  # equal as shown: both best


def _hand_report_data(shift_day: date) -> ReportData:
    """Four days of scored transactions; the drift of the last two days against the first two, computed from
    feature vectors in which the first feature moves on `shift_day`."""
    rng = np.random.default_rng(21)
    days = [date(2026, 11, d) for d in range(3, 9)]
    rows = 400
    scored = pd.DataFrame(
        {
            "trans_num": [f"h{i}" for i in range(rows * len(days))],
            "event_time": [
                pd.Timestamp(d, tz="UTC") + pd.Timedelta(hours=int(h)) for d in days for h in rng.integers(0, 24, rows)
            ],
            "score": rng.beta(1, 6, rows * len(days)),
            "amount": rng.gamma(2, 30, rows * len(days)).round(2),
            "category": "grocery_pos",
            "merchant": "fraud_Hand Store",
            "state": "NY",
        }
    )
    scored["flagged"] = scored["score"] >= 0.5
    scored["is_fraud"] = scored["score"] > rng.uniform(0.2, 1.0, len(scored))
    flagged = scored[scored["flagged"]].assign(
        threshold=0.5, model_version="hand-model", top_reasons="[]", last4="1234"
    )
    vectors = rng.normal(size=(len(scored), len(FEATURE_NAMES)))
    day_of = scored["event_time"].dt.date
    vectors[(day_of == shift_day).to_numpy(), 0] += 3.0
    reference = (day_of < date(2026, 11, 5)).to_numpy()
    result = drift.from_samples(
        pd.DataFrame({"values": list(vectors[reference]), "score": scored["score"][reference]}),
        pd.DataFrame(
            {"day": day_of[~reference], "values": list(vectors[~reference]), "score": scored["score"][~reference]}
        ),
        HAND_METADATA,
    )
    return ReportData(
        scored=scored,
        flagged=flagged,
        alerts=pd.DataFrame(columns=["day", "status", "alerts"]),
        freshness={"latest_transaction": scored["event_time"].max()},
        metadata=HAND_METADATA,
        budget=40,
        drift=result,
    )


def test_report_shows_the_comparison_and_the_drift_per_day():
    data = _hand_report_data(shift_day=date(2026, 11, 7))
    html = build_report(data, now=datetime(2026, 11, 9, tzinfo=UTC)).html

    comparison = html[html.index('id="model-comparison"') :]
    comparison = comparison[: comparison.index("</table>")]
    assert UNSEEN.replace("_", " ") in comparison and "random forest" in comparison
    assert "&lt;b&gt;bold&lt;/b&gt; model" in comparison and "<b>" not in comparison  # escaped
    assert '<td class="num best">0.9700</td>' in comparison  # the random forest's ROC AUC
    assert '<td class="num best">0.8200</td>' in comparison and '<td class="num">0.8000</td>' in comparison
    assert comparison.count(" best") == 4 and "card precision@50" in comparison

    section = html[html.index('<div class="panel" id="drift">') :]
    section = section[: section.index("</div>")]
    table = section[: section.index("</table>")]
    assert re.findall(r'<th class="num">([\d-]+)</th>', table) == [
        "2026-11-05",
        "2026-11-06",
        "2026-11-07",
        "2026-11-08",
    ]
    assert "800 transactions sampled from the training window (2026-11-01 to 2026-11-04)" in section
    lines = [line for line in table.split("</tr>") if "<td>" in line]
    assert "<strong>model score</strong>" in lines[0]  # the score first, then the features that moved most
    first = FEATURE_NAMES[0]
    assert f"<td>{first}</td>" in lines[1]
    cells = re.findall(r'<td class="num">([\d.]+) <span class="tag ([a-z-]+)">([a-z ]+)</span></td>', lines[1])
    assert [(css, level) for _, css, level in cells] == [("stable", "stable")] * 2 + [
        ("significant", "significant"),
        ("stable", "stable"),
    ]
    assert float(cells[2][0]) == pytest.approx(drift.max_psi(data.drift.features), abs=5e-4)
    assert len(lines) == 1 + DRIFT_TOP
    assert re.findall(r'<td class="num muted">([\d,]+)</td>', table) == ["400"] * 4  # transactions compared per day
    assert (
        f"1 of {len(FEATURE_NAMES)} features above 0.25 on at least one day; largest: {first} on 2026-11-07" in section
    )
    assert "below 0.10 the day looks like training (stable)" in section


# --- the real-time decisions section (the decision log, fraud/db/decisions.py) ---


def _realtime_section(html: str) -> str:
    section = html[html.index('<div class="panel" id="realtime">') :]
    return section[: section.index("</div>")]


def test_published_report_without_realtime_decisions_says_so(published):
    _, result = published
    section = _realtime_section(result.report.html)
    assert "There were no real-time decisions in the period (the last 14 days," in section
    assert "<table" not in section


def test_report_shows_the_realtime_decisions_per_day_and_channel(report_db):
    settings, engine = report_db
    now = datetime(2026, 12, 5, 15, tzinfo=UTC)
    today = datetime(2026, 12, 5, tzinfo=UTC)
    rows = [
        # today: 3 api answers (one flagged, one for a new card) and a Lambda one
        decision(1, today + timedelta(hours=1), latency_ms=2.0, flagged=True, new_card=True),
        decision(2, today + timedelta(hours=2), latency_ms=4.0),
        decision(3, today + timedelta(hours=3), latency_ms=6.0),
        decision(4, today + timedelta(hours=4), latency_ms=40.0, channel="lambda", flagged=True),
        # 13 days earlier: still in the report's 14 days; 14 days earlier and after `now`'s day: not
        decision(5, today - timedelta(days=REALTIME_DAYS - 1), latency_ms=8.0),
        decision(6, today - timedelta(days=REALTIME_DAYS), latency_ms=8.0),
        decision(7, today + timedelta(days=1), latency_ms=8.0),
    ]
    rows = [{**row, "trans_num": row["trans_num"].replace("tdl-", "trp-")} for row in rows]
    record(engine, rows)
    try:
        html = build_report(load_report_data(engine, settings, now), now=now).html
    finally:
        forget(engine, "trp-")
    section = _realtime_section(html)
    assert "5 answers of the real-time path" in section
    assert "the last 14 days, 2026-11-22 to 2026-12-05 UTC" in section
    table = section[: section.index("</table>")]
    assert re.findall(r"<tr><td>([\d-]+)</td>", table) == ["2026-11-22", "2026-12-05"]
    today_row = table[table.index("<td>2026-12-05</td>") :]
    today_row = today_row[: today_row.index("</tr>")]
    # decisions, flagged, flag rate, new cards, latency p50 and p99 (interpolated: percentile_cont)
    assert re.findall(r'<td class="num">([^<]+)</td>', today_row) == [
        "4",
        "2",
        "50.0%",
        "1",
        "5.0",
        f"{np.percentile([2.0, 4.0, 6.0, 40.0], 99):.1f}",
    ]
    channels = re.findall(r'<p class="muted channel">([^<]+)</p>', section)
    assert channels == [
        f"api: 4 decisions, 25.0% flagged, latency p50 5.0 ms, p99 {np.percentile([2.0, 4.0, 6.0, 8.0], 99):.1f} ms",
        "lambda: 1 decision, 100.0% flagged, latency p50 40.0 ms, p99 40.0 ms",
    ]
    assert "There were no real-time decisions" not in section


def test_realtime_view_on_hand_built_figures():
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    hostile = DecisionStats("<script>x</script>", 1, 0, 0, 1.0, 1.0, 1.0)
    day = DecisionStats(date(2026, 12, 2), 1_234, 12, 3, 3.25, 9.0, 12.75)
    view = realtime_view(RealtimeDecisions(start, end, (day,), (hostile,)))
    assert view["period"] == "the last 2 days, 2026-12-01 to 2026-12-02 UTC" and view["total"] == 1_234
    assert view["rows"] == [
        {
            "day": "2026-12-02",
            "decisions": "1,234",
            "flagged": "12",
            "flag_rate": "1.0%",
            "new_cards": "3",
            "p50": "3.2",
            "p99": "12.8",
        }
    ]
    data = _hand_report_data(shift_day=date(2026, 11, 7))
    html = build_report(replace(data, realtime=RealtimeDecisions(start, end, (day,), (hostile,)))).html
    section = _realtime_section(html)
    assert "&lt;script&gt;x&lt;/script&gt;: 1 decision," in section and "<script>" not in section
    # no figures loaded at all (a hand-built ReportData): the section still says there were none
    assert "There were no real-time decisions." in _realtime_section(build_report(data).html)


# --- the decision rules: the live rule set backtested on the report's window (fraud/rules/backtest.py) ---


def _rules_section(html: str) -> str:
    section = html[html.index('<div class="panel" id="rules">') :]
    return section[: section.index("<h2>")]


def _row_of(section: str, rule_id: str) -> list[str]:
    row = section[section.index(f"<strong>{rule_id}</strong>") :]
    return re.findall(r'<td class="num">([^<]*)</td>', row[: row.index("</tr>")])


def test_published_report_backtests_the_live_rules(published):
    world, result = published
    section = _rules_section(result.report.html)
    live = load_rules(DEFAULT_RULES_PATH)
    for rule in live.rules:  # each rule with its description and expression, escaped
        assert f"<strong>{rule.id}</strong>" in section
        assert f'<span class="description">{escape(rule.description)}</span>' in section
        assert f'<code class="expression">{escape(rule.expression)}</code>' in section
    assert "&amp;&amp;" in section and "&&" not in section
    assert f"<code>{live.version}</code>" in section
    frame = world.transactions  # features all 0.0 and no amount over 2,000: only the model's threshold fires
    flagged, days = int(frame["flagged"].sum()), frame["day"].nunique()
    precision, recall = metrics.precision_recall_at(frame["is_fraud"].to_numpy(), frame["flagged"].to_numpy())
    fraud_amount = frame.loc[frame["flagged"] & frame["is_fraud"], "amt"].sum()
    # priority, hits, hits/day, labelled, frauds, precision, recall, fraud amount, model flagged too, decided, errors
    assert _row_of(section, "model-threshold") == [
        "10",
        f"{flagged:,}",
        f"{flagged / days:,.1f}",
        f"{flagged:,}",
        f"{int((frame['flagged'] & frame['is_fraud']).sum()):,}",
        f"{precision:.1%}",
        f"{recall:.1%}",
        f"{fraud_amount:,.2f}",
        f"{flagged:,} (100.0%)",
        f"{flagged:,}",
        "0",
    ]
    assert _row_of(section, "card-velocity-1h")[1] == "0"
    assert f"{len(frame):,} transactions of 2026-11-02 to 2026-11-05 ({days} days)" in section
    assert f"Verdicts: {len(frame) - flagged:,} approve, {flagged:,} review, 0 block." in section
    # the decisions recorded: the world's scores were written without rules (rule set "none", review when flagged)
    recorded = section[section.index('id="rules-recorded"') :]
    assert re.findall(r'<td class="num">([^<]*)</td>', recorded[: recorded.index("</table>")]) == [
        f"{len(frame) - flagged:,}",
        f"{flagged:,}",
        "0",
        f"{len(frame):,}",
    ]
    headline = result.report.headline
    assert (headline["ruleset_version"], headline["rules_acted_on"], headline["rules_blocked"]) == (
        live.version,
        flagged,
        0,
    )
    assert headline["rules_acted_on_precision"] == pytest.approx(precision)


HOSTILE_RULES = load_rules("""
version = "<b>v</b>"

[[rule]]
id = "hostile"
description = "<img src=x onerror=alert(1)> & \\"quotes\\""
expression = "merchant == '<script>alert(1)</script>'"
outcome = "block"
priority = 5
""")


def test_rules_section_escapes_the_rules_and_says_when_they_do_not_load(report_db, tmp_path):
    rows = [
        HistoryRow(
            f"h{n}",
            date(2026, 11, 3 + n),
            dict.fromkeys(FEATURE_NAMES, 0.0)
            | {"amt": 10.0, "category": "", "merchant": merchant, "score": 0.1, "threshold": 0.5},
            n == 0,
            10.0,
            False,
        )
        for n, merchant in enumerate(["<script>alert(1)</script>", "fraud_Shop"])
    ]
    rules = RulesBacktest("hand.toml", backtest(HOSTILE_RULES, rows), {"<i>r</i>": {"block": 1}})
    html = build_report(replace(_hand_report_data(shift_day=date(2026, 11, 7)), rules=rules)).html
    section = _rules_section(html)
    assert "<script" not in section and "<img" not in section and "<b>" not in section and "<i>" not in section
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;" in section
    assert "merchant == &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in section
    assert _row_of(section, "hostile")[:5] == ["5", "1", "0.5", "1", "1"]  # 1 hit on 2 days, labelled fraud
    assert "<code>&lt;i&gt;r&lt;/i&gt;</code>" in section

    # a live rule set that does not load: a note, not a failed report
    settings, engine = report_db
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = "x"\n[[rule]]\nid = "broken"\ndescription = "d"\nexpression = "amt >= "\n'
        'outcome = "block"\npriority = 1\n'
    )
    window = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC))
    refused = load_rules_backtest(engine, Settings(rules_path=bad), "report-model", window)
    assert refused.result is None
    assert f"the live rule set ({bad}) does not load: rule 'broken': the expression does not parse" in refused.note
    section = _rules_section(build_report(replace(_hand_report_data(date(2026, 11, 7)), rules=refused)).html)
    assert "No backtest of the rules: the live rule set" in section and 'id="rules-table"' not in section
    assert report_window(pd.DataFrame({"event_time": []})) is None


# --- the review section: open cases by age, verdicts, time to decision, labels by source ---


def _review_section(html: str) -> str:
    section = html[html.index('<div class="panel" id="review">') :]
    return section[: section.index("<h2>")]


def _table(section: str, table_id: str) -> str:
    table = section[section.index(f'id="{table_id}"') :]
    return table[: table.index("</table>")]


def test_review_section_against_the_verdicts_given(published, reviewed_world):
    world, result = published
    _, reviewed = reviewed_world
    frame, groups, clock = world.transactions, reviewed.groups, reviewed.clock
    section = _review_section(result.report.html)
    assert f"platform&#39;s clock ({clock:%Y-%m-%d %H:%M} UTC, the newest transaction)" in section
    first_seen = {key: rows["event_time"].min() for key, rows in groups.items()}

    # open cases: the recent ones, but for the two decided (the unsure one stays open)
    still_open = [key for key in reviewed.recent if key not in (reviewed.fraud, reviewed.genuine)]
    buckets = age_buckets((clock - first_seen[key]).total_seconds() / 3600 for key in still_open)
    ages = _table(section, "review-ages")
    assert re.findall(r'<tr><td>([^<]+)</td><td class="num">([\d,]+)</td></tr>', ages) == [
        (str(escape(bucket.label)), f"{bucket.cases:,}") for bucket in buckets
    ]
    assert f'<td class="num"><strong>{len(still_open)}</strong></td>' in ages
    assert result.report.headline["open_cases"] == len(still_open)

    # the verdicts: one per transaction, per source (rows) and verdict (fraud, genuine, unsure, total)
    fraud, genuine, unsure = (len(groups[key]) for key in (reviewed.fraud, reviewed.genuine, reviewed.unsure))
    rows = re.findall(r"<tr><td>(analyst|customer)</td>(.*?)</tr>", _table(section, "review-verdicts"))
    assert {source: re.findall(r'<td class="num">([\d,]+)</td>', cells) for source, cells in rows} == {
        "analyst": [str(fraud), "0", str(unsure), str(fraud + unsure)],
        "customer": ["0", str(genuine), "0", str(genuine)],
    }

    # time to decision: from each decided case's first transaction to its verdict (the clock when it was given)
    hours = [(clock - first_seen[key]).total_seconds() / 3600 for key in (reviewed.fraud, reviewed.genuine)]
    assert (
        f"2 of the {len(groups)} cases that began in the report&#39;s window have been decided by an analyst or the "
        f"cardholder: median {np.percentile(hours, 50):,.1f} hours, 90th percentile {np.percentile(hours, 90):,.1f} "
        "hours." in section
    )

    # labels by source, known at the clock: the label files' that arrived, but for those a verdict replaced
    replaced = set(groups[reviewed.fraud]["trans_num"]) | set(groups[reviewed.genuine]["trans_num"])
    files = int(((frame["event_time"] + LABEL_DELAY <= clock) & ~frame["trans_num"].isin(replaced)).sum())
    n = len(frame)

    def of(count: int) -> str:
        return f"{count:,} ({count / n:.1%})"

    assert re.findall(r'<tr><td>([^<]+)</td><td class="num">([^<]+)</td></tr>', _table(section, "review-labels")) == [
        ("file", of(files)),
        ("analyst", of(fraud)),
        ("customer", of(genuine)),
        ("no label known yet", of(n - files - fraud - genuine)),
    ]


def test_review_view_on_hand_built_figures():
    window = (datetime(2047, 1, 1, tzinfo=UTC), datetime(2047, 1, 4, tzinfo=UTC))
    counts = {("analyst", "fraud"): 3, ("analyst", "unsure"): 1, ("customer", "fraud"): 1, ("customer", "genuine"): 2}
    stats = ReviewStats(
        now=datetime(2047, 1, 3, 12, tzinfo=UTC),
        window=window,
        open_cases=age_buckets([1, 30, 200]),
        verdicts=tuple(
            VerdictCount(source, verdict, counts.get((source, verdict), 0))
            for source in ("analyst", "customer")
            for verdict in ("fraud", "genuine", "unsure")
        ),
        decision_times=DecisionTimes(10, 0, None, None),
        labels=LabelCounts(200, (("file", 150), ("analyst", 4), ("customer", 3))),
    )
    view = review_view(stats)
    assert view["clock"] == "2047-01-03 12:00 UTC" and view["open_total"] == "3"
    assert view["ages"] == [("< 1 day", "1"), ("1–3 days", "1"), ("3–7 days", "0"), ("> 7 days", "1")]
    assert view["verdict_columns"] == ["fraud", "genuine", "unsure"]
    assert view["verdicts"] == [
        {"source": "analyst", "cells": ["3", "0", "1", "4"]},
        {"source": "customer", "cells": ["1", "2", "0", "3"]},
    ]
    assert view["timing"] == (
        "None of the 10 cases that began in the report's window has been decided by an analyst or the cardholder yet."
    )
    assert view["labels"] == [
        ("file", "150 (75.0%)"),
        ("analyst", "4 (2.0%)"),
        ("customer", "3 (1.5%)"),
        ("no label known yet", "43 (21.5%)"),
    ]
    decided = replace(stats, decision_times=DecisionTimes(10, 4, 5.25, 30.0))
    assert review_view(decided)["timing"] == (
        "4 of the 10 cases that began in the report's window have been decided by an analyst or the cardholder: "
        "median 5.2 hours, 90th percentile 30.0 hours."
    )

    data = _hand_report_data(shift_day=date(2026, 11, 7))
    report = build_report(replace(data, review=stats))
    assert "None of the 10 cases" in _review_section(report.html) and report.headline["open_cases"] == 3
    # no figures loaded (a hand-built ReportData): the section says so, the headline has no open cases
    bare = build_report(data)
    assert "No review figures: the review figures were not computed" in _review_section(bare.html)
    assert "open_cases" not in bare.headline
