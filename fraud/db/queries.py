"""Read queries over the star schema used by training, scoring, the report and the alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text


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


def stored_labels(engine: Engine, since: pd.Timestamp) -> pd.DataFrame:
    """Labels already loaded that arrived from `since` on (trans_num, is_fraud, labelled_at as naive UTC): the ETL
    counts them beside its own run's label files, as the online path does, so a batch's features do not depend on
    which run brought a label. Earlier labels cannot count: a label arrives after its transaction, and no window
    reaches back before the run's history."""
    query = text("""
        SELECT trans_num, is_fraud, (labelled_at AT TIME ZONE 'UTC') AS labelled_at
        FROM transaction_label WHERE labelled_at >= :since""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"since": since.to_pydatetime()})


def features_matrix(frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros((0, 0), dtype=np.float32)
    return np.array(frame["values"].tolist(), dtype=np.float32).reshape(len(frame), -1)


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


def latest_features(engine: Engine, feature_version: str, limit: int = 10_000) -> pd.DataFrame:
    """The newest `limit` transactions with features of the version: trans_num, event_time, merchant, category,
    amount, values (the feature vector)."""
    query = text("""
        SELECT t.trans_num, t.event_time, t.merchant, t.category, t.amount, f.values
        FROM fact_transaction t JOIN transaction_features f USING (trans_num)
        WHERE f.feature_version = :version ORDER BY t.event_time DESC, t.trans_num LIMIT :limit""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"version": feature_version, "limit": limit})


def feature_summary(latest: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Mean, std, min, median and max of each feature over `latest_features` rows (empty when there are none)."""
    if latest.empty:
        return pd.DataFrame(columns=["mean", "std", "min", "50%", "max"])
    values = pd.DataFrame(latest["values"].tolist(), columns=list(names))
    return values.describe().T[["mean", "std", "min", "50%", "max"]]


def table_counts(engine: Engine, tables: tuple[str, ...]) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def batch_accounting(engine: Engine, feature_version: str) -> pd.DataFrame:
    """Per raw batch: the ETL's accounting and what actually landed in fact_transaction / features."""
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT b.batch_id, b.rows_in, b.rows_loaded, b.rows_quarantined, b.duplicates_dropped,
                   (SELECT count(*) FROM fact_transaction t WHERE t.batch_id = b.batch_id) AS in_fact,
                   (SELECT count(*) FROM transaction_features f JOIN fact_transaction t USING (trans_num)
                     WHERE t.batch_id = b.batch_id AND f.feature_version = :version) AS with_features
            FROM batch_load b ORDER BY b.batch_id"""),
            connection,
            params={"version": feature_version},
        )


def accounting_problems(batches: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(batches whose rows in != loaded + quarantined + duplicates, batches whose fact rows are not exactly the rows
    they loaded or lack features). A trans_num an earlier batch loaded counts as a duplicate of the later one, so
    every loaded row is in fact_transaction under its own batch."""
    unbalanced = batches[
        batches["rows_in"] != batches["rows_loaded"] + batches["rows_quarantined"] + batches["duplicates_dropped"]
    ]
    missing = batches[(batches["in_fact"] != batches["rows_loaded"]) | (batches["with_features"] < batches["in_fact"])]
    return unbalanced, missing


# --- customer alerts (one per card-day group and channel; see fraud/outreach/alerts.py) ---


def alert_candidates(connection: Connection, model_version: str, channel: str) -> pd.DataFrame:
    """The transactions the model's decisions sent to review or blocked (fraud/rules/: the model's threshold is one
    rule among others, a block list entry another) that are in no alert of the channel yet, with the
    cardholder's contact. The partial index ix_fraud_score_actionable (migration 0006) holds exactly those."""
    return pd.read_sql(
        text("""
        SELECT s.trans_num, s.model_version, t.event_time, t.card_token, c.email, c.alerts_opt_out
        FROM fraud_score s
        JOIN fact_transaction t USING (trans_num)
        JOIN dim_card c USING (card_token)
        LEFT JOIN customer_alert_transaction l ON l.trans_num = s.trans_num AND l.channel = :channel
        WHERE s.model_version = :model AND s.outcome <> 'approve' AND l.trans_num IS NULL
        ORDER BY t.event_time, s.trans_num"""),
        connection,
        params={"model": model_version, "channel": channel},
    )


def customer_alerts_for(connection: Connection, channel: str, emails: list[str]) -> pd.DataFrame:
    """Existing alerts of the channel to these customers (lower-cased email), for grouping and the daily cap."""
    return pd.read_sql(
        text("""
        SELECT a.id, a.group_key, a.card_token, a.alert_day, a.status, lower(c.email) AS email
        FROM customer_alert a JOIN dim_card c USING (card_token)
        WHERE a.channel = :channel AND lower(c.email) = ANY(:emails)
        ORDER BY a.id"""),
        connection,
        params={"channel": channel, "emails": list(emails)},
    )


def insert_customer_alert(
    connection: Connection,
    group_key: str,
    channel: str,
    card_token: str,
    alert_day,
    model_version: str,
    status: str,
    trans_nums: list[str],
) -> int | None:
    """A new alert and its transactions; None (and nothing written) when the group key exists on the channel."""
    alert_id = connection.execute(
        text("""
        INSERT INTO customer_alert (group_key, channel, card_token, alert_day, model_version, status)
        VALUES (:key, :channel, :card, :day, :model, :status)
        ON CONFLICT ON CONSTRAINT uq_customer_alert_group_channel DO NOTHING
        RETURNING id"""),
        {
            "key": group_key,
            "channel": channel,
            "card": card_token,
            "day": alert_day,
            "model": model_version,
            "status": status,
        },
    ).scalar_one_or_none()
    if alert_id is not None:
        link_alert_transactions(connection, alert_id, channel, trans_nums)
    return alert_id


def link_alert_transactions(connection: Connection, alert_id: int, channel: str, trans_nums: list[str]) -> int:
    result = connection.execute(
        text("""
        INSERT INTO customer_alert_transaction (alert_id, trans_num, channel) VALUES (:alert, :trans_num, :channel)
        ON CONFLICT DO NOTHING"""),
        [{"alert": alert_id, "trans_num": t, "channel": channel} for t in trans_nums],
    )
    return result.rowcount


def pending_alert_lines(engine: Engine, channel: str, feature_version: str) -> pd.DataFrame:
    """Every pending alert of the channel, one row per transaction, with what its email shows: top_reasons (the
    alert's model's score, NULL when it has none) and features (the vector of `feature_version`, NULL when none)
    say why the payment was flagged."""
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT a.id, a.group_key, a.alert_day, c.email, c.first_name, c.last_name, c.last4, c.alerts_opt_out,
                   t.trans_num, t.event_time, t.amount, t.merchant, s.top_reasons, f.values AS features
            FROM customer_alert a
            JOIN customer_alert_transaction l ON l.alert_id = a.id
            JOIN fact_transaction t ON t.trans_num = l.trans_num
            JOIN dim_card c ON c.card_token = a.card_token
            LEFT JOIN fraud_score s ON s.trans_num = t.trans_num AND s.model_version = a.model_version
            LEFT JOIN transaction_features f ON f.trans_num = t.trans_num AND f.feature_version = :version
            WHERE a.channel = :channel AND a.status = 'pending'
            ORDER BY a.id, t.event_time, t.trans_num"""),
            connection,
            params={"channel": channel, "version": feature_version},
        )


def claim_pending_alert(connection: Connection, alert_id: int) -> bool:
    """Lock a still-pending alert for this transaction; False when it was sent meanwhile or another run holds it."""
    return (
        connection.execute(
            text("""
        SELECT id FROM customer_alert WHERE id = :id AND status = 'pending' FOR UPDATE SKIP LOCKED"""),
            {"id": alert_id},
        ).first()
        is not None
    )


def record_alert_delivery(
    connection: Connection, alert_id: int, status: str, attempts: int, error: str | None, message_id: str | None = None
) -> None:
    """Add this run's attempts; the last error stays on record even after a later success."""
    connection.execute(
        text("""
        UPDATE customer_alert SET status = CAST(:status AS varchar), attempts = attempts + :attempts,
               last_error = COALESCE(:error, last_error), message_id = COALESCE(:message_id, message_id),
               sent_at = CASE WHEN CAST(:status AS varchar) = 'sent' THEN now() ELSE sent_at END
        WHERE id = :id"""),
        {"id": alert_id, "status": status, "attempts": attempts, "error": error, "message_id": message_id},
    )


def alert_status_counts(engine: Engine, channel: str) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT status, count(*) FROM customer_alert WHERE channel = :channel GROUP BY status"),
            {"channel": channel},
        ).all()
    return {status: count for status, count in rows}


# --- the stakeholder report (fraud/outreach/report.py) ---


def flagged_for_report(engine: Engine, model_version: str, feature_version: str) -> pd.DataFrame:
    """The model's flagged transactions with what the report and its CSV show (never the card token); features is
    the vector of `feature_version` (NULL when none), for the reasons in words."""
    query = text("""
        SELECT s.trans_num, s.score, s.threshold, s.model_version, s.top_reasons, t.event_time, t.amount, t.merchant,
               t.category, c.last4, c.state, l.is_fraud, f.values AS features
        FROM fraud_score s
        JOIN fact_transaction t USING (trans_num)
        JOIN dim_card c USING (card_token)
        LEFT JOIN transaction_label l USING (trans_num)
        LEFT JOIN transaction_features f ON f.trans_num = s.trans_num AND f.feature_version = :version
        WHERE s.model_version = :model AND s.flagged
        ORDER BY s.score DESC, s.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(query, connection, params={"model": model_version, "version": feature_version})


def alerts_per_day(engine: Engine, channel: str) -> pd.DataFrame:
    """Customer alerts by the day of their transactions and status: day, status, alerts."""
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT alert_day AS day, status, count(*) AS alerts FROM customer_alert WHERE channel = :channel
            GROUP BY alert_day, status ORDER BY alert_day"""),
            connection,
            params={"channel": channel},
        )


def data_freshness(engine: Engine, model_version: str) -> dict[str, object]:
    """Latest transaction, load, label and score times: how current the report's data is."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text("""
            SELECT (SELECT max(event_time) FROM fact_transaction) AS latest_transaction,
                   (SELECT max(loaded_at) FROM batch_load) AS latest_load,
                   (SELECT max(labelled_at) FROM transaction_label) AS latest_label,
                   (SELECT max(scored_at) FROM fraud_score WHERE model_version = :model) AS latest_score"""),
                {"model": model_version},
            )
            .mappings()
            .one()
        )
    return dict(row)


def loaded_batch_ids(engine: Engine) -> set[str]:
    """The raw batches the ETL has loaded (their accounting row commits with their rows)."""
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT batch_id FROM batch_load")).scalars())


# --- drift (fraud/model/drift.py): the training window's features and scores against each day since ---


def drift_reference_sample(
    engine: Engine, model_version: str, feature_version: str, start, end, limit: int = 20_000
) -> pd.DataFrame:
    """Up to `limit` transactions of [start, end) with features of the version: trans_num, day (UTC), values, score
    (the model's, NULL when it has not scored the row). Ordered by a hash of trans_num, not random(): a sample that
    looks random but is the same on every run, so the PSI moves only when the data does."""
    query = text("""
        WITH sample AS (
            SELECT f.trans_num FROM transaction_features f JOIN fact_transaction t USING (trans_num)
            WHERE f.feature_version = :version AND t.event_time >= :start AND t.event_time < :end
            ORDER BY md5(f.trans_num) LIMIT :limit)
        SELECT f.trans_num, (t.event_time AT TIME ZONE 'UTC')::date AS day, f.values, s.score
        FROM sample
        JOIN transaction_features f ON f.trans_num = sample.trans_num AND f.feature_version = :version
        JOIN fact_transaction t ON t.trans_num = sample.trans_num
        LEFT JOIN fraud_score s ON s.trans_num = sample.trans_num AND s.model_version = :model
        ORDER BY f.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(
            query,
            connection,
            params={"version": feature_version, "model": model_version, "start": start, "end": end, "limit": limit},
        )


def drift_recent_days(
    engine: Engine, model_version: str, feature_version: str, after, days: int = 7, per_day: int = 20_000
) -> pd.DataFrame:
    """Transactions from `after` on with features of the version, in the last `days` UTC days that have any, up to
    `per_day` of each day (the same hash order as the reference): trans_num, day, values, score (NULL when not
    scored by the model)."""
    query = text("""
        WITH recent AS (
            SELECT f.trans_num, (t.event_time AT TIME ZONE 'UTC')::date AS day
            FROM transaction_features f JOIN fact_transaction t USING (trans_num)
            WHERE f.feature_version = :version AND t.event_time >= :after),
        last_day AS (SELECT max(day) AS day FROM recent),
        sample AS (
            SELECT r.trans_num, r.day, row_number() OVER (PARTITION BY r.day ORDER BY md5(r.trans_num)) AS n
            FROM recent r, last_day WHERE r.day > last_day.day - CAST(:days AS integer))
        SELECT sample.trans_num, sample.day, f.values, s.score
        FROM sample
        JOIN transaction_features f ON f.trans_num = sample.trans_num AND f.feature_version = :version
        LEFT JOIN fraud_score s ON s.trans_num = sample.trans_num AND s.model_version = :model
        WHERE sample.n <= :per_day
        ORDER BY sample.day, sample.trans_num""")
    with engine.connect() as connection:
        return pd.read_sql(
            query,
            connection,
            params={
                "version": feature_version,
                "model": model_version,
                "after": after,
                "days": days,
                "per_day": per_day,
            },
        )
