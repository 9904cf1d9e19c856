"""The Spark job and the straightforward pandas implementation (the benchmark's baseline) agree."""

import numpy as np
import pandas as pd
from sqlalchemy import text

from bench.pandas_features import pandas_features
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION


def test_spark_features_match_pandas(first_loaded_simulation):
    engine, labels = first_loaded_simulation
    with engine.connect() as connection:
        tx = pd.read_sql(
            text("""
            SELECT t.trans_num, t.card_token, t.merchant, t.category, t.amount::float8 AS amt, t.event_time,
                   c.home_lat AS lat, c.home_long AS long, t.merch_lat, t.merch_long, c.city_pop, c.dob, f.values
            FROM fact_transaction t JOIN dim_card c USING (card_token) JOIN transaction_features f USING (trans_num)
            WHERE t.batch_id LIKE 'sim-%%' AND f.feature_version = :v"""),
            connection,
            params={"v": FEATURE_VERSION},
        )
    expected = pandas_features(tx.drop(columns="values"), labels).set_index("trans_num")
    spark = pd.DataFrame(tx["values"].tolist(), columns=list(FEATURE_NAMES), index=tx["trans_num"]).loc[expected.index]
    for name in FEATURE_NAMES:  # the age too: both compute Spark's months_between (fraud/features/rows.py)
        np.testing.assert_allclose(spark[name], expected[name], rtol=1e-6, atol=1e-6, err_msg=name)
