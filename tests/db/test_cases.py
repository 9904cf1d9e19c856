"""Review cases (fraud/db/cases.py): card-days of review/block decisions, open until every transaction has a label
known at the platform's clock, in order of risk then age; a verdict closes one."""

from datetime import UTC, datetime

from fraud.db.cases import case_of, case_transactions, cases
from fraud.db.labels import record_verdicts
from tests.helpers.scored_world import THRESHOLD, build_world

# later than any other test's transactions: this world's newest transaction is the platform's clock
START = datetime(2045, 1, 1, tzinfo=UTC)


def test_cases_open_in_risk_order_and_a_verdict_closes_one(engine, settings):
    world = build_world(engine, settings, "cases", cards=4, days=3, seed=5, start=START)
    frame = world.transactions
    decided = frame[frame["score"] >= THRESHOLD]
    expected = {f"{card}:{day}" for card, day in zip(decided["card_token"], decided["day"], strict=True)}
    every = cases(engine, world.model_version, open_only=False, limit=None)
    assert {c.case_id for c in every} == expected
    assert all(
        c.transactions == ((decided["card_token"] == c.card_token) & (decided["day"] == c.day)).sum() for c in every
    )
    # the label files' labels arrive two days after each transaction: only the last days' cases are open
    opened = cases(engine, world.model_version)
    assert (
        opened
        and all(not c.closed for c in opened)
        and {c.day for c in opened} <= {START.date().replace(day=2), START.date().replace(day=3)}
    )
    assert [c.risk for c in opened] == sorted((c.risk for c in opened), reverse=True)

    top = opened[0]
    trans_nums = case_transactions(engine, world.model_version, top.case_id)
    assert len(trans_nums) == top.transactions
    with engine.begin() as connection:
        record_verdicts(connection, trans_nums, "fraud", "analyst", "ana")
    assert case_of(engine, world.model_version, top.case_id).closed
    assert top.case_id not in {c.case_id for c in cases(engine, world.model_version)}
    assert case_of(engine, world.model_version, "not-a-case") is None
