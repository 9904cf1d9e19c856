"""The real-time path computes the same features as the Glue job: 1,000 simulated transactions, taken raw from
the raw zone, featurized online from PostgreSQL (fraud.features.online) and compared with what the Spark job
stored for them. The database holds the whole simulation, so the online query must leave out everything from
the transaction's second on, and every label not yet known at that time."""

import numpy as np
from sqlalchemy import text

from fraud.core.schema import decode_jsonl_gz
from fraud.core.storage import object_store
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.features.online import online_features, parse_transaction
from fraud.ingest.raw_zone import transaction_keys

SAMPLE = 1_000


def test_online_features_match_the_glue_job(first_loaded_simulation, settings):
    engine, labels = first_loaded_simulation
    raw = object_store(settings, settings.raw_bucket)
    rows = {
        r["trans_num"]: r
        for k in transaction_keys(raw)
        if "/dt=2026-05-0" in k
        for r in decode_jsonl_gz(raw.get_bytes(k))
    }
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                text("""
            SELECT f.trans_num, f.values FROM transaction_features f JOIN fact_transaction t USING (trans_num)
            WHERE t.batch_id LIKE 'sim-%' AND f.feature_version = :v AND f.trans_num = ANY(:ids)"""),
                {"v": FEATURE_VERSION, "ids": list(rows)},
            ).all()
        )
    assert len(stored) >= SAMPLE, "the loaded simulation is too small for the parity test"
    sample = np.random.default_rng(0).choice(sorted(stored), SAMPLE, replace=False)
    assert labels["trans_num"].isin(sample).any()  # some merchants' fraud rates depend on when labels arrived

    key = settings.token_key()
    online = []
    with engine.connect() as connection:
        for trans_num in sample:
            values, history = online_features(
                connection.connection.driver_connection, parse_transaction(rows[trans_num], key)
            )
            assert history.known_card
            online.append(values)
    online = np.array(online)
    spark = np.array([stored[t] for t in sample])
    for j, name in enumerate(FEATURE_NAMES):
        np.testing.assert_allclose(online[:, j], spark[:, j], rtol=1e-9, atol=1e-9, err_msg=name)
    # the sample exercises the history features, not only zeros
    column = {n: j for j, n in enumerate(FEATURE_NAMES)}
    assert (spark[:, column["card_count_1d"]] > 0).mean() > 0.3
    assert (spark[:, column["merchant_fraud_rate_30d"]] > 0).any()
