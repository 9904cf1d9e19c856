"""Online features of one new transaction from PostgreSQL: validation with the ETL's rules, the raw-value readers
against fraud.ingest.csv_files's, and every history feature on a hand-built history in the real database (window
edges, the same second, labels that arrive after the transaction, stored holder fields). The per-row features are
tests/features/test_rows.py's, the same rules in every engine tests/ingest/test_validation.py's, and the parity with
the Glue job on 1,000 simulated transactions is tests/glue/test_online_parity.py."""

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud.core.privacy import card_token
from fraud.db.load import load_processed
from fraud.features.catalog import FEATURE_NAMES, LONGEST_WINDOW_SECONDS
from fraud.features.online import (
    History,
    InvalidTransaction,
    feature_vector,
    history_parameters,
    online_features,
    parse_event_time,
    parse_transaction,
    window_start,
)
from fraud.ingest import raw_values

KEY = b"online-test-key"
CARD = "4539578763621486"
OTHER_CARD = "4916338506082832"
T = datetime(2031, 3, 10, 14, 30, 0, tzinfo=UTC)  # a Monday
RAW = {
    "trans_num": "new-1",
    "cc_num": CARD,
    "merchant": "fraud_Online Shop",
    "amt": "120.00",
    "trans_date_trans_time": T.strftime("%Y-%m-%d %H:%M:%S"),
    "category": "Shopping_Net ",
    "lat": "40.0",
    "long": "-75.0",
    "merch_lat": "40.5",
    "merch_long": "-75.5",
    "city_pop": "25000",
    "dob": "1990-06-15",
}


def features(values: np.ndarray) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, values.tolist(), strict=False))


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, code",
    [
        ({"trans_num": " "}, "missing_trans_num"),
        ({"cc_num": "12"}, "invalid_card_number"),
        ({"cc_num": "inf"}, "invalid_card_number"),
        ({"merchant": ""}, "missing_merchant"),
        ({"amt": "abc"}, "invalid_amount"),
        ({"amt": "NaN"}, "invalid_amount"),
        ({"amt": -1}, "negative_amount"),
        ({"amt": "2000000"}, "absurd_amount"),
        ({"trans_date_trans_time": "yesterday"}, "invalid_timestamp"),
        ({"trans_date_trans_time": "9999-12-31 23:59:59"}, "event_time_out_of_range"),
        ({"trans_date_trans_time": "0001-01-01 00:00:00"}, "event_time_out_of_range"),
        ({"dob": "2031-03-11"}, "invalid_dob"),
        ({"dob": "9999-12-31"}, "invalid_dob"),
        ({"dob": "1899-12-31"}, "invalid_dob"),
        ({"lat": "91"}, "invalid_coordinate"),
        ({"merch_long": -181}, "invalid_coordinate"),
    ],
)
def test_invalid_transactions_get_the_etl_reason(change, code):
    with pytest.raises(InvalidTransaction) as raised:
        parse_transaction({**RAW, **change}, KEY)
    assert raised.value.code == code and raised.value.message


def test_a_valid_transaction_is_tokenized_and_normalised():
    tx = parse_transaction({**RAW, "amt": 10.005, "cc_num": "4.539578763621486E+15"}, KEY)
    assert tx.card_token == card_token(CARD, KEY) and tx.last4 == "1486" and CARD not in repr(tx)
    assert tx.amt == 10.01  # Spark's round(x, 2): half up
    assert tx.category == "shopping_net" and tx.event_time == T and tx.dob == date(1990, 6, 15)
    assert tx.city_pop == 25000 and tx.lat == 40.0


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01 10:00:00",
        "2026-11-01 10:00",
        "11/12/2019 5:12",
        "11/12/2019 05:12:09",
        "27-04-2020 03:20",
        "27-04-2020 03:20:01",
        "2026-4-1 10:00:00",
        "2026-11-01T10:00:00",
        "31/02/2020 10:00",
        "",
        "1/1/20 1:00",
        "2026-11-01 25:00:00",
    ],
)
def test_event_times_read_like_fraud_ingest(text):
    expected = raw_values.parse_timestamp(text)
    got = parse_event_time({"trans_date_trans_time": text})
    assert got == (expected.replace(tzinfo=UTC) if expected else None)


def test_unix_time_when_the_date_is_missing():
    assert parse_event_time({"unix_time": "1767225788.9"}) == datetime(2026, 1, 1, 0, 3, 8, tzinfo=UTC)
    assert parse_event_time({"unix_time": "1e30"}) is None


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"trans_date_trans_time": "garbage"}, "trans_date_trans_time", "format"),
        ({"trans_date_trans_time": "2026-13-01 10:00:00"}, "trans_date_trans_time", "format"),
        ({"trans_date_trans_time": "", "unix_time": "soon"}, "unix_time", "seconds"),
        ({"trans_date_trans_time": "", "unix_time": "1e30"}, "unix_time", "seconds"),
        ({"trans_date_trans_time": ""}, "trans_date_trans_time", "required"),
        ({"trans_date_trans_time": "2101-01-01 00:00:00"}, "trans_date_trans_time", "between"),
        ({"trans_date_trans_time": "", "unix_time": 253402300799}, "unix_time", "between"),
        ({"dob": "2100-01-01"}, "dob", "dob"),
    ],
)
def test_time_refusals_name_the_field_that_was_sent(change, field, words):
    with pytest.raises(InvalidTransaction) as raised:
        parse_transaction({**RAW, **change}, KEY)
    assert raised.value.field == field and words in raised.value.message
    if words != "required":
        assert "required" not in raised.value.message


def test_a_known_card_keeps_its_stored_holder_an_unknown_one_uses_the_request():
    tx = parse_transaction({**RAW, "dob": "2031-03-10", "city_pop": "9"}, KEY)
    stored = History(known_card=True, dob=date(1980, 1, 1), city_pop=5000, home_lat=40.0, home_long=-75.0)
    known = features(feature_vector(tx, stored))
    assert known["age_years"] > 51 and known["city_pop_log"] == pytest.approx(math.log1p(5000))
    unknown = features(feature_vector(tx, History(dob=date(1980, 1, 1), city_pop=5000)))
    assert unknown["age_years"] == 0 and unknown["city_pop_log"] == pytest.approx(math.log1p(9))
    lacking = features(feature_vector(tx, History(known_card=True)))  # a record without them: the request fills in
    assert lacking["age_known"] == 1 and lacking["city_pop_log"] == pytest.approx(math.log1p(9))


@pytest.mark.parametrize("when", [datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)])
@pytest.mark.parametrize("dob", [None, "1900-01-01", "1970-01-01", "2100-12-31"])
def test_features_at_the_edges_of_the_accepted_dates(when, dob):
    raw = {**RAW, "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"), "dob": dob or ""}
    try:
        tx = parse_transaction(raw, KEY)
    except InvalidTransaction as refused:  # a birth after the transaction
        assert refused.code == "invalid_dob" and date.fromisoformat(dob) > when.date()
        return
    values = feature_vector(tx, History(known_card=True, dob=date(1900, 1, 1), previous_unix=0))
    assert np.isfinite(values).all()
    assert history_parameters(tx)["card_since"] <= tx.event_time


def test_a_window_reaching_back_before_year_one_starts_there():
    first = datetime.min.replace(tzinfo=UTC)
    assert window_start(first + timedelta(days=1), 60 * 86_400) == first
    assert window_start(T, 3600) == T - timedelta(hours=1)


def test_no_history_gives_the_first_transaction_values():
    tx = parse_transaction(RAW, KEY)
    f = features(feature_vector(tx, History()))
    assert f["card_count_1h"] == f["card_count_30d"] == f["card_mean_amt_30d"] == f["merchant_count_30d"] == 0
    assert f["amt_over_card_mean_30d"] == 1.0 and f["secs_since_prev_log"] == pytest.approx(
        math.log1p(LONGEST_WINDOW_SECONDS)
    )
    assert (
        f["amt_log"] == pytest.approx(math.log1p(120.0))
        and f["hour"] == 14
        and f["is_night"] == 0
        and f["is_weekend"] == 0
    )
    assert f["city_pop_log"] == pytest.approx(math.log1p(25000)) and f["cat_shopping_net"] == 1 and f["cat_travel"] == 0
    assert f["distance_km"] == pytest.approx(69.9, abs=0.5)
    assert f["age_known"] == f["city_pop_known"] == f["distance_known"] == 1
    assert f["card_new_merchant_30d"] == f["card_new_category_30d"] == 1 and f["amt_z_card_30d"] == 0


def test_empty_optional_fields_are_flagged_not_mistaken_for_values():
    bare = {k: RAW[k] for k in ("trans_num", "cc_num", "merchant", "amt", "trans_date_trans_time")}
    f = features(feature_vector(parse_transaction(bare, KEY), History()))
    assert f["age_known"] == f["city_pop_known"] == f["distance_known"] == 0
    assert f["age_years"] == f["city_pop_log"] == f["distance_km"] == 0
    assert not any(f[name] for name in f if name.startswith("cat_"))


# --- history in the database ----------------------------------------------------------------------------------


def _row(trans_num, when, card, merchant, amt, **holder):
    digits = card
    return {
        "trans_num": trans_num,
        "event_time": when,
        "card_token": card_token(digits, KEY),
        "last4": digits[-4:],
        "merchant": merchant,
        "category": "misc_net",
        "amt": amt,
        "merch_lat": 41.0,
        "merch_long": -74.0,
        "first": "Ada",
        "last": "Lovelace",
        "gender": "F",
        "dob": holder.get("dob"),
        "street": "1 Main St",
        "city": "Springfield",
        "state": "PA",
        "zip": "19000",
        "lat": holder.get("lat"),
        "long": holder.get("long"),
        "city_pop": holder.get("city_pop"),
        "job": "Engineer",
        "batch_id": "online-test",
        "features": [0.0] * len(FEATURE_NAMES),
    }


@pytest.fixture(scope="module")
def history(engine):
    m, other = "fraud_Online Shop", "fraud_Elsewhere"
    s = timedelta(seconds=1)
    home = {"dob": date(1980, 1, 1), "lat": 40.0, "long": -75.0, "city_pop": 5000}
    rows = [
        _row("h-same-second", T, CARD, m, 999.0, **home),  # same second: never seen
        _row("h-later", T + s, CARD, m, 999.0, **home),  # the future: never seen
        _row("h-1h-edge", T - timedelta(hours=1), CARD, m, 10.0, **home),  # exactly t - 1 h: inside [t - 1h, t)
        _row("h-1h-out", T - timedelta(hours=1) - s, CARD, other, 20.0, **home),  # one second older: 1 d window only
        _row("h-6d", T - timedelta(days=6), CARD, other, 30.0, **home),
        _row("h-20d", T - timedelta(days=20), CARD, m, 40.0, **home),
        _row("h-31d", T - timedelta(days=31), CARD, m, 5000.0, **home),  # beyond every window
        _row("m-fraud-known", T - timedelta(days=3), OTHER_CARD, m, 50.0),  # labelled fraud before t
        _row("m-fraud-late", T - timedelta(days=2), OTHER_CARD, m, 60.0),  # labelled fraud after t
        _row("m-legit", T - timedelta(days=10), OTHER_CARD, m, 70.0),  # labelled legitimate before t
    ]
    labels = pd.DataFrame(
        [
            {"trans_num": "m-fraud-known", "is_fraud": True, "labelled_at": (T - timedelta(days=1)).isoformat()},
            {"trans_num": "m-fraud-late", "is_fraud": True, "labelled_at": (T + timedelta(hours=1)).isoformat()},
            {"trans_num": "m-legit", "is_fraud": False, "labelled_at": (T - timedelta(days=5)).isoformat()},
            {"trans_num": "h-20d", "is_fraud": True, "labelled_at": (T - timedelta(days=18)).isoformat()},
        ]
    )
    load_processed(engine, pd.DataFrame(rows), labels, [])
    return engine


def online(engine, raw):
    with engine.connect() as connection:
        values, found = online_features(connection.connection.driver_connection, parse_transaction(raw, KEY))
    return features(values), found


def test_card_windows_are_strictly_before_the_second(history):
    f, found = online(history, RAW)
    assert found.known_card
    assert f["card_count_1h"] == 1 and f["card_mean_amt_1h"] == 10.0
    assert f["card_count_1d"] == 2 and f["card_mean_amt_1d"] == 15.0
    assert f["card_count_7d"] == 3 and f["card_mean_amt_7d"] == 20.0
    assert f["card_count_30d"] == 4 and f["card_mean_amt_30d"] == 25.0
    assert f["amt_over_card_mean_30d"] == pytest.approx(120.0 / 25.0)
    assert f["secs_since_prev_log"] == pytest.approx(math.log1p(3600))
    assert f["card_distinct_merchants_1d"] == 2


def test_merchant_risk_counts_only_labels_known_at_the_time(history):
    f, _ = online(history, RAW)
    # merchant m in [t - 7d, t): h-1h-edge, m-fraud-known, m-fraud-late; in 30 d also h-20d and m-legit
    assert f["merchant_count_1d"] == 1 and f["merchant_count_7d"] == 3 and f["merchant_count_30d"] == 5
    assert f["merchant_volume_ratio_1d"] == pytest.approx(2 / (5 / 30 + 1))
    # labels that arrived in [t - w, t): m-fraud-known's at exactly t - 1 d; m-legit's at t - 5 d; h-20d's at t - 18 d;
    # m-fraud-late's arrives after t and never counts
    assert f["merchant_labels_1d"] == 1 and f["merchant_fraud_rate_1d"] == 1.0
    assert f["merchant_labels_7d"] == 2 and f["merchant_fraud_rate_7d"] == pytest.approx(1 / 2)
    assert f["merchant_labels_30d"] == 3 and f["merchant_fraud_rate_30d"] == pytest.approx(2 / 3)


def test_label_free_card_signals(history):
    f, _ = online(history, RAW)
    # the card's 30 days: 10, 20, 30, 40 (population std sqrt(125)); 120 is far above them
    assert f["amt_z_card_30d"] == pytest.approx((120.0 - 25.0) / (math.sqrt(125.0) + 1.0))
    assert f["card_distinct_merchants_1h"] == 1
    assert f["card_new_merchant_30d"] == 0  # it paid at this merchant an hour ago
    assert f["card_new_category_30d"] == 1  # but always in misc_net, never in shopping_net
    assert f["card_known_frauds_60d"] == 1  # h-20d, labelled fraud 18 days before t
    elsewhere, _ = online(history, {**RAW, "merchant": "fraud_Never Seen", "category": "misc_net"})
    assert elsewhere["card_new_merchant_30d"] == 1 and elsewhere["card_new_category_30d"] == 0


def test_a_second_later_the_same_second_transaction_counts(history):
    later = {**RAW, "trans_date_trans_time": (T + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")}
    f, _ = online(history, later)
    # [t + 1 - 1h, t + 1): the transaction at t is in, the one at exactly t - 1h has just left
    assert (
        f["card_count_1h"] == 1
        and f["card_mean_amt_1h"] == 999.0
        and f["secs_since_prev_log"] == pytest.approx(math.log1p(1))
    )


def test_missing_holder_fields_come_from_the_card_record(history):
    bare = {k: RAW[k] for k in ("trans_num", "cc_num", "merchant", "amt", "trans_date_trans_time")}
    f, _ = online(history, bare)
    assert f["city_pop_log"] == pytest.approx(math.log1p(5000))  # dim_card, not the request
    # dim_card's 1980-01-01 at T (2031-03-10 14:30): 614 months and 9.6 days of a 31-day month
    assert f["age_years"] == pytest.approx((614 + (9 * 86400 + 14.5 * 3600) / (31 * 86400)) / 12)
    assert f["distance_km"] > 0  # home (dim_card) to the merchant's stored location (dim_merchant)
    given, _ = online(history, RAW)
    holder = ("age_years", "age_known", "city_pop_log", "city_pop_known")
    # a known card's stored holder wins over the request's dob and city_pop (the merchant's place is the request's)
    assert {k: given[k] for k in holder} == {k: f[k] for k in holder}


def test_a_request_cannot_override_a_known_holder(history):
    stored, _ = online(history, RAW)
    younger, _ = online(history, {**RAW, "dob": "2031-03-10", "city_pop": "9", "lat": "-40", "long": "100"})
    assert younger == stored and stored["age_years"] > 50


def test_unknown_card_and_merchant_have_no_history(history):
    f, found = online(history, {**RAW, "cc_num": "4024007103939509", "merchant": "fraud_Never Seen"})
    assert not found.known_card
    assert f["card_count_30d"] == 0 and f["merchant_count_30d"] == 0 and f["merchant_fraud_rate_30d"] == 0
    assert f["merchant_labels_30d"] == 0 and f["card_known_frauds_60d"] == 0
