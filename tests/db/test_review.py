"""What a newly promoted model rescores: unreviewed transactions (no label, no sent alert) of the last days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from fraud.db.review import count_unreviewed, recent_window

NEWEST = datetime(2090, 1, 10, 12, tzinfo=UTC)  # later than any other test's rows in the shared database


def test_reviewed_means_labelled_or_alerted_and_sent(engine):
    rows = {  # trans_num: age before the newest transaction
        "rv-plain": timedelta(0),
        "rv-labelled": timedelta(hours=1),
        "rv-sent": timedelta(hours=2),
        "rv-pending-alert": timedelta(hours=3),
        "rv-old": timedelta(days=8),
        "rv-label-not-yet-known": timedelta(hours=4),
    }
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO dim_card (card_token, last4) VALUES ('rv-card', '0000') ON CONFLICT DO NOTHING")
        )
        connection.execute(text("INSERT INTO dim_merchant (merchant) VALUES ('rv-shop') ON CONFLICT DO NOTHING"))
        connection.execute(
            text("""
            INSERT INTO fact_transaction (trans_num, event_time, card_token, merchant, amount, batch_id)
            VALUES (:t, :at, 'rv-card', 'rv-shop', 10, 'rv-batch')"""),
            [{"t": t, "at": NEWEST - age} for t, age in rows.items()],
        )
        connection.execute(text("INSERT INTO transaction_label VALUES ('rv-labelled', false, :at)"), {"at": NEWEST})
        # a simulated chargeback that only arrives after the newest transaction: not known yet
        connection.execute(
            text("INSERT INTO transaction_label VALUES ('rv-label-not-yet-known', true, :at)"),
            {"at": NEWEST + timedelta(days=2)},
        )
        for trans_num, status in (("rv-sent", "sent"), ("rv-pending-alert", "pending")):
            alert = connection.execute(
                text("""
                INSERT INTO customer_alert (group_key, channel, card_token, alert_day, model_version, status)
                VALUES (:key, 'email', 'rv-card', '2090-01-10', 'm', :status) RETURNING id"""),
                {"key": f"rv:{trans_num}", "status": status},
            ).scalar_one()
            connection.execute(
                text("INSERT INTO customer_alert_transaction VALUES (:a, :t, 'email')"), {"a": alert, "t": trans_num}
            )

    since, until = recent_window(engine, 7)
    assert until > NEWEST >= since == until - timedelta(days=7)  # the newest transaction is inside [since, until)
    # plain, pending alert, label not known yet: nobody has seen them; rv-old is outside the window
    assert count_unreviewed(engine, since, until) == 3
    assert count_unreviewed(engine, since - timedelta(days=2), until) == 4
