from datetime import date

import numpy as np
import pytest

from fraud.privacy import normalize_card_number
from fraud.schema import RAW_COLUMNS
from fraud.simulate import build_world, simulate


@pytest.fixture(scope="module")
def world():
    return build_world(200, seed=3)


@pytest.mark.parametrize("days", [1, 2, 5])
def test_every_day_gets_a_batch_of_that_day(world, days):
    batches = simulate(world, date(2026, 1, 1), days, 0.02, seed=3)
    assert [b.day for b in batches] == [date(2026, 1, d) for d in range(1, days + 1)]
    for batch in batches:
        assert list(batch.transactions.columns) == list(RAW_COLUMNS)
        assert "is_fraud" not in batch.transactions.columns  # labels arrive separately
        assert batch.transactions["trans_date_trans_time"].str.startswith(str(batch.day)).all()
        assert (batch.labels["trans_num"] == batch.transactions["trans_num"]).all()


def test_deterministic_for_a_seed(world):
    first = simulate(world, date(2026, 1, 1), 3, 0.02, seed=3)
    second = simulate(build_world(200, seed=3), date(2026, 1, 1), 3, 0.02, seed=3)
    for a, b in zip(first, second):
        assert a.transactions.equals(b.transactions) and a.labels.equals(b.labels)


def test_fraud_rate_and_card_numbers(world):
    batches = simulate(world, date(2026, 1, 1), 10, 0.02, seed=3)
    labels = np.concatenate([b.labels["is_fraud"].to_numpy() for b in batches])
    assert 0.01 < labels.mean() < 0.04
    cards = world.customers["cc_num"]
    assert cards.map(normalize_card_number).notna().all()
    trans_nums = np.concatenate([b.transactions["trans_num"].to_numpy() for b in batches])
    assert len(set(trans_nums)) == len(trans_nums)
