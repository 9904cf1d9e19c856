"""The real-time path computes the same features as the Glue job: 1,000 simulated transactions, taken raw from
the raw zone, featurized online from PostgreSQL (fraud.features.online) and compared with what the Spark job
stored for them. The database holds the whole simulation, so the online query must leave out everything from
the transaction's second on, and every label not yet known at that time."""

from collections import Counter
from datetime import timedelta

import numpy as np
from sqlalchemy import text

from fraud.core.schema import batch_id_of, decode_jsonl_gz
from fraud.core.storage import object_store
from fraud.db.lists import add_entry
from fraud.db.scores import Selection
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.features.online import online_features, parse_transaction
from fraud.ingest.raw_zone import transaction_keys
from fraud.rules import live_rules
from fraud.serving.batch import ModelCache, score_selection
from fraud.serving.realtime import RealtimeScorer
from lambdas.generator.handler import handler as generate
from tests.helpers.homes import own_migrated_home
from tests.helpers.litert_models import publish_logistic, weights_for

SAMPLE = 1_000
# rules over raw fields, features and the score, so that every kind of field takes part in the comparison
PARITY_RULES = """
version = "parity-1"

[[rule]]
id = "big-amount"
description = "A large amount"
expression = "amt >= 150.0"
outcome = "review"
priority = 20

[[rule]]
id = "velocity"
description = "A burst on the card"
expression = "card_count_1h >= 2.0 && category != 'gas_transport'"
outcome = "block"
priority = 50

[[rule]]
id = "model"
description = "The model's threshold"
expression = "score >= threshold"
outcome = "review"
priority = 10
"""


def list_some_of(engine, transactions) -> dict[str, int]:
    """A block entry on a merchant, an allow entry on a card, and a block entry on another merchant that expired
    before the day was scored; returns their ids."""
    merchants = Counter(tx.merchant for tx in transactions).most_common()
    blocked, expired = merchants[0][0], merchants[1][0]
    allowed = Counter(tx.card_token for tx in transactions if tx.merchant not in (blocked, expired)).most_common()[0][0]
    ids = {
        "block": add_entry(engine, "block", "merchant", blocked, "parity test", "tests").id,
        "allow": add_entry(engine, "allow", "card", allowed, "parity test", "tests").id,
        "expired": add_entry(engine, "block", "merchant", expired, "parity test", "tests").id,
    }
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE list_entry SET added_at = now() - interval '2 days', expires_at = now() - interval '1 day' "
                "WHERE id = :id"
            ),
            {"id": ids["expired"]},
        )
    return ids


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


def test_transactions_first_seen_by_the_api_get_their_batch_features_and_count_once():
    """Two days settled through the Glue job; the third day's transactions scored by the real-time path first, in
    event-time order (so each sees the day's earlier ones only as recorded decisions); then the third day's
    batch loaded by the Glue job. The features the real-time path recorded equal those the job computed for the
    same transactions, and after the load a card's history counts each of them once. Then the batch scorer
    decides on the day: every outcome, deciding rule or list entry and fired rule equals the real-time path's."""
    from glue.process_transactions import run

    with own_migrated_home("fraud-api-first-") as (settings, engine):
        small = settings.model_copy(update={"sim_customers": 150, "sim_fraud_rate": 0.05, "model_name": "parity"})
        generated = generate({"start_day": "2026-06-01", "days": 3}, settings=small)
        raw = object_store(settings, settings.raw_bucket)
        processed = object_store(settings, settings.processed_bucket)
        batches = [b["transactions_key"] for b in generated["batches"]]
        label_keys = [k for b in generated["batches"] for k in b["labels_keys"]]

        def etl(keys: list[str], labels: list[str]) -> None:
            arguments = {"raw_uri": raw.uri(), "processed_uri": processed.uri(), "transactions_keys": ",".join(keys)}
            run({**arguments, "labels_keys": ",".join(labels)}, settings, report=lambda s: None)

        etl(batches[:2], label_keys)  # every label file: labels count only from their labelled_at on
        publish_logistic(small, "parity-v1", weights_for(amt_log=0.5, card_count_1h=1.0), -3.0, 0.5)
        day3 = sorted(decode_jsonl_gz(raw.get_bytes(batches[2])), key=lambda r: int(r["unix_time"]))
        rules_file = settings.home / "parity-rules.toml"
        rules_file.write_text(PARITY_RULES)
        small = small.model_copy(update={"rules_path": rules_file})
        listed = list_some_of(engine, [parse_transaction(row, settings.token_key()) for row in day3])
        scorer = RealtimeScorer(small, recheck_seconds=3600)
        try:
            answers = [scorer.score(row, channel="api") for row in day3]
        finally:
            scorer.close()
        # cards with no transaction on days 1-2 are new to the real-time path: their holder fields are the request's
        new_cards = {a["trans_num"] for a in answers if a["new_card"]}
        assert new_cards

        etl(batches[2:], [])
        with engine.connect() as connection:
            recorded = dict(connection.execute(text("SELECT trans_num, features FROM realtime_decision")).all())
            stored = dict(
                connection.execute(
                    text("SELECT trans_num, values FROM transaction_features WHERE feature_version = :v"),
                    {"v": FEATURE_VERSION},
                ).all()
            )
        both = sorted(set(recorded) & set(stored))
        assert len(both) == len(day3) == len(recorded)
        online, spark = np.array([recorded[t] for t in both]), np.array([stored[t] for t in both])
        for j, name in enumerate(FEATURE_NAMES):
            np.testing.assert_allclose(online[:, j], spark[:, j], rtol=1e-9, atol=1e-9, err_msg=name)
        column = {n: j for j, n in enumerate(FEATURE_NAMES)}
        assert (online[:, column["card_count_1h"]] > 0).any()  # decisions counted in the same day's velocity
        assert set(both) >= new_cards

        # after the load, each of those transactions counts once: as its fact row, not also as its decision
        last = day3[-1]
        later = {**last, "trans_num": "after-the-load", "unix_time": str(int(last["unix_time"]) + 3600)}
        later.pop("trans_date_trans_time", None)
        tx = parse_transaction(later, settings.token_key())
        with engine.connect() as connection:
            values, history = online_features(connection.connection.driver_connection, tx)
            facts = connection.execute(
                text("SELECT count(*) FROM fact_transaction WHERE card_token = :c AND event_time >= :since"),
                {"c": tx.card_token, "since": tx.event_time - timedelta(days=1)},
            ).scalar_one()
        assert history.card_counts["1d"] == facts > 0

        # the batch scorer decides on the same transactions as the real-time path did: same lists, same rules
        model = ModelCache().get(small)
        batch = score_selection(engine, model, Selection(batch_id=batch_id_of(batches[2])), live_rules(rules_file))
        assert batch.scored == len(day3)
        with engine.connect() as connection:
            pairs = connection.execute(
                text("""
                SELECT d.trans_num, d.outcome, d.decided_by, d.rules_fired, s.outcome, s.decided_by, s.rules_fired
                FROM realtime_decision d JOIN fraud_score s USING (trans_num)
                WHERE s.model_version = 'parity-v1' AND d.trans_num <> 'after-the-load'""")
            ).all()
        assert len(pairs) == len(day3)
        disagree = [p for p in pairs if tuple(p[1:4]) != tuple(p[4:7])]
        assert not disagree, disagree[:5]
        decided_by = Counter(p[2] for p in pairs)
        outcomes = Counter(p[1] for p in pairs)
        assert set(outcomes) == {"approve", "review", "block"}, outcomes
        assert decided_by[f"block-list#{listed['block']}"] > 0 and decided_by[f"allow-list#{listed['allow']}"] > 0
        assert decided_by[f"block-list#{listed['expired']}"] == 0  # past its expiry before day 3 was scored
        assert {"big-amount", "velocity", "model"} <= {rule for p in pairs for rule in p[3]}
