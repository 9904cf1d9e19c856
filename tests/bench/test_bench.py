"""The benchmarks' own building blocks, on tiny sizes, so `make bench` cannot rot unnoticed."""

from bench.__main__ import bench_load, naive_faker_transactions, processed_frame
from fraud.features.catalog import FEATURE_NAMES


def test_processed_frame_is_loadable(engine):
    frame = processed_frame(300)
    assert len(frame) == 300 and len(frame["features"][0]) == len(FEATURE_NAMES)
    baseline, measured = bench_load(engine, 300)
    assert baseline > 0 and measured > 0


def test_naive_generator_makes_sparkov_rows():
    rows = naive_faker_transactions(20, [{"cc_num": "4111111111111111", "lat": 40.0, "long": -75.0}])
    assert len(rows) == 20 and len({r["trans_num"] for r in rows}) == 20


def test_raw_to_pandas_reads_and_tokenizes(tmp_path):
    from datetime import datetime

    import pandas as pd

    from bench.__main__ import raw_to_pandas
    from fraud.core.storage import LocalObjectStore
    from fraud.ingest.raw_zone import write_transactions

    store = LocalObjectStore(tmp_path, "raw")
    row = {
        "trans_num": "t1",
        "cc_num": "4111111111111111",
        "trans_date_trans_time": "2026-01-01 10:00:00",
        "amt": "5.5",
        "lat": "1",
        "long": "2",
        "merch_lat": "1",
        "merch_long": "2",
        "city_pop": "10",
        "merchant": "m",
    }
    key = write_transactions(store, "b1", pd.DataFrame([row]), datetime(2026, 1, 1))
    frame = raw_to_pandas(store, [key], b"k")
    assert frame["card_token"][0] != "4111111111111111" and len(frame["card_token"][0]) == 64
    assert frame["amt"][0] == 5.5 and str(frame["event_time"][0]) == "2026-01-01 10:00:00+00:00"
