"""The baseline for the ETL benchmark: the same features computed the straightforward way, with pandas
groupby/rolling on one machine. Also used by tests to cross-check the Spark job on a sample."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fraud.features import FEATURE_NAMES, LONGEST_WINDOW_SECONDS, WINDOWS, merchant_risk
from fraud.schema import CATEGORIES


def pandas_features(tx: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """tx: trans_num, card_token, merchant, category, amt, event_time (UTC), lat, long, merch_lat, merch_long,
    city_pop, dob; labels: trans_num, is_fraud, labelled_at. Returns trans_num + FEATURE_NAMES."""
    tx = tx.assign(ts=pd.to_datetime(tx["event_time"], utc=True))
    # grouped by card, in time order: groupby(sort=False).rolling() then returns rows in this same order
    tx = tx.sort_values(["card_token", "ts", "trans_num"]).reset_index(drop=True)
    unix = tx["ts"].astype("int64") // 10**9
    out = pd.DataFrame({"trans_num": tx["trans_num"]})
    out["amt_log"] = np.log1p(tx["amt"])
    out["hour"] = tx["ts"].dt.hour.astype(float)
    out["is_night"] = ((out["hour"] >= 22) | (out["hour"] < 6)).astype(float)
    out["is_weekend"] = (tx["ts"].dt.dayofweek >= 5).astype(float)
    dob = pd.to_datetime(tx["dob"], utc=True, errors="coerce")
    out["age_years"] = ((tx["ts"].dt.year - dob.dt.year) * 12 + (tx["ts"].dt.month - dob.dt.month)
                        + (tx["ts"].dt.day - dob.dt.day) / 31.0).div(12).fillna(0.0)  # months_between, as Spark
    out["city_pop_log"] = np.log1p(tx["city_pop"]).fillna(0.0)
    lat1, lat2 = np.radians(tx["lat"]), np.radians(tx["merch_lat"])
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(np.radians(tx["merch_long"] - tx["long"]) / 2) ** 2
    out["distance_km"] = (6371.0 * 2 * np.arcsin(np.sqrt(a))).fillna(0.0)

    by_card = tx.set_index("ts").groupby("card_token", sort=False)["amt"]
    for name, seconds in WINDOWS.items():
        rolled = by_card.rolling(f"{seconds}s", closed="left").agg(["count", "mean"])
        out[f"card_count_{name}"] = rolled["count"].fillna(0).to_numpy()
        out[f"card_mean_amt_{name}"] = rolled["mean"].fillna(0).to_numpy()
    out["amt_over_card_mean_30d"] = np.where(out["card_mean_amt_30d"] > 0, tx["amt"] / out["card_mean_amt_30d"].replace(0, 1), 1.0)
    previous = np.full(len(tx), np.nan)
    distinct = np.zeros(len(tx))
    for _, rows in tx.groupby("card_token", sort=False).indices.items():
        times, merchants = unix.to_numpy()[rows], tx["merchant"].to_numpy()[rows]
        before = np.searchsorted(times, times, "left")  # rows strictly earlier than each row
        day_start = np.searchsorted(times, times - WINDOWS["1d"], "left")
        for j, (b, d) in enumerate(zip(before, day_start)):
            if b:
                previous[rows[j]] = times[b - 1]
            distinct[rows[j]] = len(set(merchants[d:b]))
    out["secs_since_prev_log"] = np.log1p(np.where(np.isnan(previous), LONGEST_WINDOW_SECONDS, unix - previous))
    out["card_distinct_merchants_1d"] = distinct

    labelled = tx[["trans_num"]].merge(labels, on="trans_num", how="left")
    label_unix = pd.to_datetime(labelled["labelled_at"], utc=True).astype("int64") // 10**9
    label_unix = label_unix.where(labelled["labelled_at"].notna(), np.nan).astype(float)
    merchant_columns = {}
    for _, rows in tx.groupby("merchant", sort=False).indices.items():
        values = merchant_risk(unix.to_numpy()[rows], labelled["is_fraud"].fillna(False).to_numpy(dtype=bool)[rows],
                               label_unix.to_numpy()[rows], unix.to_numpy()[rows])
        for name, column in values.items():
            merchant_columns.setdefault(name, np.zeros(len(tx)))[rows] = column
    for name, column in merchant_columns.items():
        out[name] = column
    for category in CATEGORIES:
        out[f"cat_{category}"] = (tx["category"] == category).astype(float)
    return out[["trans_num", *FEATURE_NAMES]]
