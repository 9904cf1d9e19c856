"""Batch scoring gives top reasons only where they are read: the flagged, the reviewed and the blocked (and a
configured top share by score), the same reasons as full occlusion through the interpreter; the other rows are
scored and decided with no reasons (NULL), which every reader of `top_reasons` takes as none."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from bench.scoring import load_world
from fraud.db.scores import Selection
from fraud.features.catalog import FEATURE_NAMES
from fraud.model.attribution import reasons_json, score_and_attribute
from fraud.rules import RuleSet, load_rules
from fraud.serving.batch import ModelCache, score_selection
from tests.helpers.litert_models import publish_logistic, weights_for

WEIGHTS = weights_for(card_count_1h=3.0, merchant_fraud_rate_7d=2.0, distance_km=1.0, hour=-1.0)
BIAS = -3.0
THRESHOLD = 0.75
# blocks about a tenth of the random feature vectors whatever their score: reasons the model did not flag
RULES = """
version = "reasons-test.1"
[[rule]]
id = "model-threshold"
description = "review the flagged"
expression = "score >= threshold"
outcome = "review"
priority = 10
[[rule]]
id = "night-block"
description = "block at night"
expression = "is_night >= 0.9"
outcome = "block"
priority = 100
"""


@pytest.fixture(scope="module")
def world(settings, engine):
    mine = settings.model_copy(update={"model_name": "reasons-test-mlp"})
    frame = load_world(engine, mine, 1_200, "reasons-test", seed=21)
    publish_logistic(mine, "reasons-v1", WEIGHTS, BIAS, THRESHOLD)
    return mine, engine, frame


def stored(engine, model_version: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT s.trans_num, s.score, s.flagged, s.outcome, s.top_reasons::text AS reasons, f.values
            FROM fraud_score s JOIN fact_transaction t USING (trans_num) JOIN transaction_features f USING (trans_num)
            WHERE s.model_version = :model AND t.batch_id = 'reasons-test' ORDER BY s.trans_num"""),
            connection,
            params={"model": model_version},
        )


def full_occlusion(model, engine, rows: pd.DataFrame) -> list[list[dict]]:
    """Today's reasons: every row and its copies through the interpreter."""
    x = np.array(rows["values"].tolist(), dtype=np.float32)
    _, contributions = score_and_attribute(model.scorer.predict, x, model.baseline(engine))
    return [json.loads(t) for t in reasons_json(contributions, FEATURE_NAMES)]


def assert_same_reasons(stored_text: str, expected: list[dict]) -> None:
    reasons = json.loads(stored_text)
    assert [r["feature"] for r in reasons] == [r["feature"] for r in expected]
    for got, want in zip(reasons, expected, strict=True):
        assert got["contribution"] == pytest.approx(want["contribution"], abs=2e-6)


def test_reasons_for_the_flagged_reviewed_and_blocked_only(world):
    settings, engine, frame = world
    model = ModelCache().get(settings)
    assert model.scorer.network is not None  # the copies come from the linear first layer
    result = score_selection(engine, model, Selection(batch_id="reasons-test"), load_rules(RULES), page_rows=500)
    rows = stored(engine, "reasons-v1")
    assert len(rows) == len(frame) == result.scored
    read = rows["flagged"] | rows["outcome"].isin(["review", "block"])
    blocked_unflagged = rows["outcome"].eq("block") & ~rows["flagged"]
    assert rows["flagged"].sum() > 20 and blocked_unflagged.sum() > 20 and (~read).sum() > 500
    assert rows.loc[~read, "reasons"].isna().all()  # no reasons where nobody reads them
    assert rows.loc[read, "reasons"].notna().all() and result.reasons == read.sum()
    for stored_text, expected in zip(rows.loc[read, "reasons"], full_occlusion(model, engine, rows[read]), strict=True):
        assert_same_reasons(stored_text, expected)


def test_a_top_share_by_score_gets_reasons_too(world):
    settings, engine, frame = world
    model = replace(ModelCache().get(settings), version="reasons-v1-top")
    result = score_selection(
        engine, model, Selection(batch_id="reasons-test"), RuleSet("none", ()), reasons_top_share=0.3
    )
    rows = stored(engine, "reasons-v1-top")
    top = rows["score"] >= np.sort(rows["score"])[::-1][int(np.ceil(0.3 * len(rows))) - 1]  # one page: 1,200 rows
    assert (top & ~rows["flagged"]).sum() > 100
    assert (rows["reasons"].notna() == (top | rows["flagged"])).all() and result.reasons == top.sum()
    for stored_text, expected in zip(rows.loc[top, "reasons"], full_occlusion(model, engine, rows[top]), strict=True):
        assert_same_reasons(stored_text, expected)


def test_every_reader_of_top_reasons_takes_null_as_none():
    from fraud.db.cases import _reasons as case_reasons
    from fraud.outreach.alerts import _reasons as alert_reasons
    from fraud.outreach.report import reasons_in_words, reasons_text

    assert case_reasons(None) == alert_reasons(None) == reasons_text(None) == reasons_in_words(None, None) == []
