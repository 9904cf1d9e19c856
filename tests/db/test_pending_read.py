"""The scorer's read of "not scored yet" keeps a hash plan when `fraud_score` looks empty to the planner
(analyzed or vacuumed while empty): left alone, the planner checks each transaction by scanning the table
again, over the rows the run writes meanwhile, and a run turns quadratic (100,000 rows: 149 s, not 3.4 s)."""

import numpy as np
import pytest

from bench.scoring import load_world
from fraud.db.scores import _PENDING, guard_read_plan, write_scores
from fraud.features.catalog import FEATURE_VERSION

PARAMS = {"version": FEATURE_VERSION, "model": "plan-check", "batch": None, "since": None, "until": None}


@pytest.fixture(scope="module")
def scored_world(engine, settings):
    """Transactions with features, half of them scored: the shared tables are not empty."""
    trans_nums = load_world(engine, settings, 200, "plancheck")["trans_num"].tolist()
    write_scores(engine, "plan-check", 0.5, trans_nums[:100], np.full(100, 0.1), np.zeros(100, bool), ["[]"] * 100)
    return trans_nums


def _plan(cursor) -> str:
    return "\n".join(row[0] for row in cursor.execute("EXPLAIN " + _PENDING.format(unreviewed=""), PARAMS))


def test_an_analyzed_empty_score_table_gets_a_hash_anti_join(engine, scored_world):
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()
        # a temporary fraud_score shadows the shared one for this transaction only (pg_temp comes first)
        cursor.execute("CREATE TEMP TABLE fraud_score (LIKE public.fraud_score INCLUDING ALL) ON COMMIT DROP")
        cursor.execute("ANALYZE fraud_score")
        left_alone = _plan(cursor)
        assert "Nested Loop Anti Join" in left_alone and "Seq Scan on fraud_score" in left_alone, left_alone
        assert guard_read_plan(cursor)
        guarded = _plan(cursor)
        assert "Hash Anti Join" in guarded and "Nested Loop" not in guarded, guarded
    finally:
        raw.rollback()
        raw.close()


def test_a_table_with_rows_or_never_analyzed_keeps_the_planners_choice(engine, scored_world):
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()
        assert not guard_read_plan(cursor)  # the shared table holds the world's scores
        assert cursor.execute("SHOW enable_nestloop").fetchone()[0] == "on"
        cursor.execute("CREATE TEMP TABLE fraud_score (LIKE public.fraud_score INCLUDING ALL) ON COMMIT DROP")
        assert not guard_read_plan(cursor)  # never analyzed: the planner assumes ten pages, not none
    finally:
        raw.rollback()
        raw.close()
