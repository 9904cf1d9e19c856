"""The benchmarks' own building blocks, on tiny sizes, so `make bench` cannot rot unnoticed."""
from bench.__main__ import bench_load, naive_faker_transactions, processed_frame
from fraud.features import FEATURE_NAMES


def test_processed_frame_is_loadable(engine):
    frame = processed_frame(300)
    assert len(frame) == 300 and len(frame["features"][0]) == len(FEATURE_NAMES)
    baseline, measured = bench_load(engine, 300)
    assert baseline > 0 and measured > 0


def test_naive_generator_makes_sparkov_rows():
    rows = naive_faker_transactions(20, [{"cc_num": "4111111111111111", "lat": 40.0, "long": -75.0}])
    assert len(rows) == 20 and len({r["trans_num"] for r in rows}) == 20
