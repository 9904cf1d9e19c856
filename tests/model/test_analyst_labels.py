"""A retraining after analysts' verdicts uses them: a verdict counts from the platform's clock when it was given
(fraud/db/labels.py), so once later traffic moves the test window past it, the verdict's label is a training label,
and it changes the training data (a new model version)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from fraud.db.labels import record_verdicts
from fraud.model.evaluation import split
from fraud.model.promotion import labelled_data, protocol_for
from tests.helpers.homes import own_migrated_home
from tests.helpers.scored_world import build_world

START = datetime(2026, 11, 2, tzinfo=UTC)


def test_a_retraining_after_analyst_verdicts_trains_on_them():
    with own_migrated_home("fraud-verdicts-") as (settings, engine):
        first = build_world(engine, settings, "early", cards=4, days=3, seed=1, start=START)
        # the last day's label files arrive two days later: unknown at the platform's clock (the world's end)
        unknown = first.transactions[first.transactions["day"] == (START + timedelta(days=2)).date()]
        reviewed = list(unknown["trans_num"][:3])
        before = labelled_data(engine).fingerprint()
        with engine.begin() as connection:
            given_at = record_verdicts(connection, reviewed, "fraud", "analyst", "ana", note="confirmed by phone")
        assert labelled_data(engine).fingerprint() != before  # the training data changed: a new version

        # three weeks of later traffic: the test window moves past the verdicts
        build_world(engine, settings, "later", cards=4, days=21, seed=2, start=START + timedelta(days=10))
        data = labelled_data(engine)
        windows = protocol_for(settings).windows(data.rows["event_time"])
        assert given_at < windows.test_start
        train = split(data, windows).train
        trained = train.rows.assign(y=train.y).set_index("trans_num").loc[reviewed]
        assert trained["y"].all() and (trained["labelled_at"] == given_at).all()
        with engine.connect() as connection:
            sources = connection.execute(
                text("SELECT DISTINCT source FROM transaction_label WHERE trans_num = ANY(:t)"), {"t": reviewed}
            ).scalars()
            assert list(sources) == ["analyst"]
