import pandas as pd
from sqlalchemy import text

from fraud.db.queries import accounting_problems, batch_accounting


def test_accounting_problems_by_hand():
    batches = pd.DataFrame(
        {
            "batch_id": ["ok", "unbalanced", "lost_rows", "no_features"],
            "rows_in": [10, 10, 10, 10],
            "rows_loaded": [8, 8, 10, 10],
            "rows_quarantined": [1, 1, 0, 0],
            "duplicates_dropped": [1, 0, 0, 0],
            "in_fact": [8, 8, 11, 10],
            "with_features": [8, 8, 11, 9],
        }
    )
    unbalanced, missing = accounting_problems(batches)
    assert unbalanced["batch_id"].tolist() == ["unbalanced"]
    assert missing["batch_id"].tolist() == ["lost_rows", "no_features"]


def test_batch_accounting_reads_the_database(engine):
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO batch_load (batch_id, source_key, rows_in, rows_loaded, rows_quarantined, "
                "duplicates_dropped) VALUES ('acct-test', 'k', 5, 3, 1, 0) ON CONFLICT DO NOTHING"
            )
        )
    batches = batch_accounting(engine, "v2")
    row = batches[batches["batch_id"] == "acct-test"].iloc[0]
    assert (row["rows_in"], row["in_fact"], row["with_features"]) == (5, 0, 0)
    assert "acct-test" in accounting_problems(batches)[0]["batch_id"].tolist()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM batch_load WHERE batch_id = 'acct-test'"))
