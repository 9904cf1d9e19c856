"""The baseline for the ETL benchmark: the same features computed the straightforward way, with pandas
groupby/rolling on one machine. Also the test oracle the Spark job and the online path are checked against.

The windows are pandas' own; the per-row features (time, age, distance, population, the amount against the card's
mean, the gap since its previous transaction, the category) are fraud/features/rows.py's, the definitions the
online path uses and the Spark job's expressions are checked against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.features.catalog import FEATURE_NAMES, LONGEST_WINDOW_SECONDS, WINDOWS, known_frauds, merchant_risk
from fraud.features.rows import RowInputs, row_features


def _rolling_count(tx: pd.DataFrame, keys: list[str], seconds: int) -> np.ndarray:
    """Per row (tx sorted by card, time), how many earlier rows of its `keys` group lie in [t - seconds, t)."""
    counts = np.zeros(len(tx))
    unix = tx["unix"].to_numpy()
    for rows in tx.groupby(keys, sort=False, dropna=False).indices.values():
        times = unix[rows]  # in time order: tx is sorted by card and time
        counts[rows] = np.searchsorted(times, times, "left") - np.searchsorted(times, times - seconds, "left")
    return counts


def pandas_features(tx: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """tx: trans_num, card_token, merchant, category, amt, event_time (UTC), lat, long, merch_lat, merch_long,
    city_pop, dob; labels: trans_num, is_fraud, labelled_at. Returns trans_num + FEATURE_NAMES."""
    tx = tx.assign(ts=pd.to_datetime(tx["event_time"], utc=True))
    # grouped by card, in time order: groupby(sort=False).rolling() then returns rows in this same order
    tx = tx.sort_values(["card_token", "ts", "trans_num"]).reset_index(drop=True)
    unix = tx["ts"].astype("int64") // 10**9
    tx["unix"] = unix
    out = pd.DataFrame({"trans_num": tx["trans_num"]})

    by_card = tx.set_index("ts").groupby("card_token", sort=False)["amt"]
    for name, seconds in WINDOWS.items():
        rolled = by_card.rolling(f"{seconds}s", closed="left").agg(["count", "mean"])
        out[f"card_count_{name}"] = rolled["count"].fillna(0).to_numpy()
        out[f"card_mean_amt_{name}"] = rolled["mean"].fillna(0).to_numpy()
    spread = by_card.rolling(f"{LONGEST_WINDOW_SECONDS}s", closed="left").std(ddof=0).to_numpy()
    previous = np.full(len(tx), np.nan)
    distinct = {"1h": np.zeros(len(tx)), "1d": np.zeros(len(tx))}
    for rows in tx.groupby("card_token", sort=False).indices.values():
        times, merchants = unix.to_numpy()[rows], tx["merchant"].to_numpy()[rows]
        before = np.searchsorted(times, times, "left")  # rows strictly earlier than each row
        starts = {w: np.searchsorted(times, times - WINDOWS[w], "left") for w in distinct}
        month_start = np.searchsorted(times, times - LONGEST_WINDOW_SECONDS, "left")
        for j, b in enumerate(before):
            if b > month_start[j]:  # a previous transaction within the 30-day window
                previous[rows[j]] = times[b - 1]
            for w, start in starts.items():
                distinct[w][rows[j]] = len(set(merchants[start[j] : b]))
    row_inputs = RowInputs(
        event_time=tx["ts"].dt.tz_convert(None).to_numpy("datetime64[s]"),
        amount=tx["amt"].to_numpy(dtype=float),
        dob=pd.to_datetime(tx["dob"], utc=True, errors="coerce").dt.tz_convert(None).to_numpy("datetime64[D]"),
        city_pop=pd.to_numeric(tx["city_pop"], errors="coerce").to_numpy(dtype=float),
        **{name: tx[name].astype(float).to_numpy() for name in ("lat", "long", "merch_lat", "merch_long")},
        category=tx["category"].to_numpy(dtype=object),
        card_mean_30d=out["card_mean_amt_30d"].to_numpy(),
        card_std_30d=spread,
        card_count_30d=out["card_count_30d"].to_numpy(),
        previous_unix=previous,
    )
    for name, column in row_features(row_inputs).items():
        out[name] = column
    out["card_distinct_merchants_1h"] = distinct["1h"]
    out["card_distinct_merchants_1d"] = distinct["1d"]
    out["card_new_merchant_30d"] = (_rolling_count(tx, ["card_token", "merchant"], LONGEST_WINDOW_SECONDS) == 0).astype(
        float
    )
    with_category = tx.assign(category_key=tx["category"].fillna("").astype(str))  # empty: a category of its own
    out["card_new_category_30d"] = (
        _rolling_count(with_category, ["card_token", "category_key"], LONGEST_WINDOW_SECONDS) == 0
    ).astype(float)

    labelled = tx[["trans_num"]].merge(labels, on="trans_num", how="left")
    label_unix = pd.to_datetime(labelled["labelled_at"], utc=True).astype("int64") // 10**9
    label_unix = label_unix.where(labelled["labelled_at"].notna(), np.nan).astype(float).to_numpy()
    is_fraud = labelled["is_fraud"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    card_frauds = np.zeros(len(tx))
    for rows in tx.groupby("card_token", sort=False).indices.values():
        if is_fraud[rows].any():
            card_frauds[rows] = known_frauds(
                unix.to_numpy()[rows], is_fraud[rows], label_unix[rows], unix.to_numpy()[rows]
            )
    out["card_known_frauds_60d"] = card_frauds

    merchant_columns = {}
    for rows in tx.groupby("merchant", sort=False).indices.values():
        values = merchant_risk(unix.to_numpy()[rows], is_fraud[rows], label_unix[rows], unix.to_numpy()[rows])
        for name, column in values.items():
            merchant_columns.setdefault(name, np.zeros(len(tx)))[rows] = column
    for name, column in merchant_columns.items():
        out[name] = column
    return out[["trans_num", *FEATURE_NAMES]]
