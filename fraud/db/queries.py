"""Read queries over the star schema used by training, scoring, the report and the alerts."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from fraud.scoring import Scored


def labelled_features(engine: Engine, feature_version: str) -> pd.DataFrame:
    """Processed transactions with a known label: trans_num, event_time, card_token, values, is_fraud, labelled_at."""
    query = text("""
        SELECT f.trans_num, t.event_time, t.card_token, f.values, l.is_fraud, l.labelled_at
        FROM transaction_features f
        JOIN fact_transaction t USING (trans_num)
        JOIN transaction_label l USING (trans_num)
        WHERE f.feature_version = :version
        ORDER BY t.event_time, f.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"version": feature_version})


def unscored_features(engine: Engine, feature_version: str, model_version: str, batch_id: str | None = None) -> pd.DataFrame:
    """Transactions (of one batch, or all) that this model version has not scored yet."""
    query = text("""
        SELECT f.trans_num, f.values
        FROM transaction_features f
        JOIN fact_transaction t USING (trans_num)
        LEFT JOIN fraud_score s ON s.trans_num = f.trans_num AND s.model_version = :model
        WHERE f.feature_version = :version AND s.trans_num IS NULL
          AND (CAST(:batch AS text) IS NULL OR t.batch_id = :batch)
        ORDER BY f.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"version": feature_version, "model": model_version, "batch": batch_id})


def features_matrix(frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros((0, 0), dtype=np.float32)
    return np.array(frame["values"].tolist(), dtype=np.float32).reshape(len(frame), -1)


def write_scores(engine: Engine, model_version: str, threshold: float, scored: list[Scored]) -> int:
    """Insert scores; a (transaction, model version) pair is written once, so re-scoring is a no-op."""
    if not scored:
        return 0
    rows = [{"trans_num": s.trans_num, "model": model_version, "score": s.score, "flagged": s.flagged,
             "threshold": threshold, "reasons": json.dumps([])} for s in scored]
    with engine.begin() as connection:
        result = connection.execute(text("""
            INSERT INTO fraud_score (trans_num, model_version, score, flagged, threshold, top_reasons)
            VALUES (:trans_num, :model, :score, :flagged, :threshold, CAST(:reasons AS jsonb))
            ON CONFLICT (trans_num, model_version) DO NOTHING"""), rows)
        return result.rowcount


def flagged_transactions(engine: Engine, model_version: str) -> pd.DataFrame:
    query = text("""
        SELECT s.trans_num, s.score, s.threshold, s.model_version, t.event_time, t.amount, t.merchant, t.category,
               t.card_token, c.last4, c.first_name, c.last_name, c.email, c.state, c.alerts_opt_out
        FROM fraud_score s
        JOIN fact_transaction t USING (trans_num)
        JOIN dim_card c USING (card_token)
        WHERE s.model_version = :model AND s.flagged
        ORDER BY s.score DESC, s.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"model": model_version})


def scored_transactions(engine: Engine, model_version: str) -> pd.DataFrame:
    query = text("""
        SELECT s.trans_num, s.score, s.flagged, t.event_time, t.amount, t.category, t.merchant, c.state,
               l.is_fraud
        FROM fraud_score s
        JOIN fact_transaction t USING (trans_num)
        JOIN dim_card c USING (card_token)
        LEFT JOIN transaction_label l USING (trans_num)
        WHERE s.model_version = :model""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"model": model_version})


def table_counts(engine: Engine, tables: tuple[str, ...]) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def batch_accounting(engine: Engine, feature_version: str) -> pd.DataFrame:
    """Per raw batch: the ETL's accounting and what actually landed in fact_transaction / features."""
    with engine.connect() as connection:
        return pd.read_sql(text("""
            SELECT b.batch_id, b.rows_in, b.rows_loaded, b.rows_quarantined, b.duplicates_dropped,
                   (SELECT count(*) FROM fact_transaction t WHERE t.batch_id = b.batch_id) AS in_fact,
                   (SELECT count(*) FROM transaction_features f JOIN fact_transaction t USING (trans_num)
                     WHERE t.batch_id = b.batch_id AND f.feature_version = :version) AS with_features
            FROM batch_load b ORDER BY b.batch_id"""), connection, params={"version": feature_version})


def accounting_problems(batches: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(batches whose rows in != loaded + quarantined + duplicates, batches with rows missing from the tables).
    A trans_num already loaded by an earlier batch stays there, so a batch may hold fewer fact rows than it loaded."""
    unbalanced = batches[batches["rows_in"] != batches["rows_loaded"] + batches["rows_quarantined"] + batches["duplicates_dropped"]]
    missing = batches[(batches["in_fact"] > batches["rows_loaded"]) | (batches["with_features"] < batches["in_fact"])]
    return unbalanced, missing
