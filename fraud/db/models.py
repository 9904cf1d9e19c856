"""The star schema (fixes the seed's sql.sql: card tokens instead of card numbers, the holder's address on
the card dimension instead of the merchant). Alembic migrations in `migrations/` create exactly this."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utc_day(column: str) -> str:
    """SQL for a timestamptz column's UTC day: the day partition a transaction and its features belong to."""
    return f"({column} AT TIME ZONE 'UTC')::date"


class DimCard(Base):
    __tablename__ = "dim_card"
    card_token: Mapped[str] = mapped_column(String(64), primary_key=True, comment="HMAC-SHA256 of the card number")
    last4: Mapped[str] = mapped_column(String(4))
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(1))
    dob: Mapped[date | None] = mapped_column(Date)
    street: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(2))
    zip: Mapped[str | None] = mapped_column(String(10))
    home_lat: Mapped[float | None] = mapped_column(Float)
    home_long: Mapped[float | None] = mapped_column(Float)
    city_pop: Mapped[int | None] = mapped_column(Integer)
    job: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    alerts_opt_out: Mapped[bool] = mapped_column(Boolean, server_default="false")


class DimMerchant(Base):
    __tablename__ = "dim_merchant"
    merchant: Mapped[str] = mapped_column(Text, primary_key=True)
    merch_lat: Mapped[float | None] = mapped_column(Float)
    merch_long: Mapped[float | None] = mapped_column(Float)


class DimCategory(Base):
    __tablename__ = "dim_category"
    category: Mapped[str] = mapped_column(String(50), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)


class FactTransaction(Base):
    """One transaction, in its UTC day's partition (migration 0009). The primary key must hold the partition key;
    trans_num's uniqueness on every day is transaction_key's. The card, merchant and category references are
    checked once per statement by 0009's triggers (for the load: once per batch), not per row."""

    __tablename__ = "fact_transaction"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, index=True)
    card_token: Mapped[str] = mapped_column(String(64))
    merchant: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50))
    amount: Mapped[float] = mapped_column(Numeric(12, 2))
    merch_lat: Mapped[float | None] = mapped_column(Float)
    merch_long: Mapped[float | None] = mapped_column(Float)
    batch_id: Mapped[str] = mapped_column(Text, index=True)

    # a card's / a merchant's history in a time range, straight from the index (migration 0003)
    __table_args__ = (
        Index("ix_fact_transaction_card_token_event_time", "card_token", "event_time"),
        Index("ix_fact_transaction_merchant_event_time", "merchant", "event_time"),
        {"postgresql_partition_by": "RANGE (event_time)"},
    )


class TransactionKey(Base):
    """One row per transaction: keeps trans_num unique across fact_transaction's day partitions, and is what the
    reference checks of features, scores and alerts probe (one index instead of one per partition)."""

    __tablename__ = "transaction_key"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecentTransaction(Base):
    """fact_transaction's rows from `RecentHorizon.since` on, unpartitioned, written by fact_transaction's triggers:
    what the real-time read looks a card's and a merchant's history up in (migration 0011 says why)."""

    __tablename__ = "recent_transaction"
    card_token: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50))
    amount: Mapped[float] = mapped_column(Numeric(12, 2))

    __table_args__ = (Index("ix_recent_transaction_merchant_event_time", "merchant", "event_time"),)


class RecentHorizon(Base):
    """One row: the time from which recent_transaction holds every transaction (`fraud_trim_recent` moves it)."""

    __tablename__ = "recent_horizon"
    one: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    since: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), comment="recent_transaction holds every transaction from here on"
    )

    __table_args__ = (CheckConstraint("one", name="recent_horizon_one_check"),)


class TransactionFeatures(Base):
    """A transaction's feature vector, in the transaction's day's partition (event_day); its reference to the
    transaction is checked per statement (migration 0009)."""

    __tablename__ = "transaction_features"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature_version: Mapped[str] = mapped_column(String(16), primary_key=True)
    values: Mapped[list[float]] = mapped_column(
        ARRAY(Float), comment="in the order of fraud.features.catalog for the version"
    )
    event_day: Mapped[date] = mapped_column(
        Date, primary_key=True, comment="the transaction's UTC day: the partition key"
    )

    __table_args__ = ({"postgresql_partition_by": "RANGE (event_day)"},)


class TransactionLabel(Base):
    """The label that counts for a transaction (fraud/db/labels.py says which): from a label file (chargebacks), an
    analyst's verdict or a customer's answer. A label may arrive before the transaction is processed, hence no
    foreign key."""

    __tablename__ = "transaction_label"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    is_fraud: Mapped[bool] = mapped_column(Boolean)
    labelled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(16), server_default="file", comment="file, analyst or customer")
    actor: Mapped[str | None] = mapped_column(Text, comment="the analyst, or the alert answered")

    __table_args__ = (CheckConstraint("source IN ('file', 'analyst', 'customer')", name="ck_transaction_label_source"),)


class FraudScore(Base):
    """A model version's score of a transaction. Its reference to fact_transaction is enforced per statement by
    triggers (migration 0004) instead of a per-row foreign key: the batch scorer writes rows by the hundred
    thousand, and a foreign key looks up and locks each referenced transaction."""

    __tablename__ = "fraud_score"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[float] = mapped_column(Float)
    top_reasons: Mapped[list | None] = mapped_column(JSONB)
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    outcome: Mapped[str] = mapped_column(String(8), comment="approve, review or block")
    decided_by: Mapped[str | None] = mapped_column(Text, comment="the deciding rule id or list entry")
    rules_fired: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    ruleset_version: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("outcome IN ('approve', 'review', 'block')", name="ck_fraud_score_outcome"),
        Index("ix_fraud_score_actionable", "trans_num", postgresql_where=text("outcome <> 'approve'")),
        # one model's flagged rows, what the report reads (0010)
        Index("ix_fraud_score_flagged_by_model", "model_version", postgresql_where=text("flagged")),
    )


class RealtimeDecision(Base):
    """One answer of the real-time path, recorded before it is sent (migration 0005): the transaction as scored,
    the score, flag and reasons, the model and feature versions, the feature vector and the time it took. No
    foreign keys: a decision may be the first the platform sees of a card or a merchant."""

    __tablename__ = "realtime_decision"
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the validated transaction")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    card_token: Mapped[str] = mapped_column(String(64))
    last4: Mapped[str] = mapped_column(String(4))
    merchant: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(50))
    amount: Mapped[float] = mapped_column(Numeric(12, 2))
    merch_lat: Mapped[float | None] = mapped_column(Float)
    merch_long: Mapped[float | None] = mapped_column(Float)
    new_card: Mapped[bool] = mapped_column(Boolean)
    new_merchant: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSONB)
    model_version: Mapped[str] = mapped_column(String(64))
    feature_version: Mapped[str] = mapped_column(String(16))
    features: Mapped[list[float]] = mapped_column(ARRAY(Float))
    latency_ms: Mapped[float] = mapped_column(Float, comment="request received to decision made")
    channel: Mapped[str] = mapped_column(String(16), comment="api or lambda")
    outcome: Mapped[str] = mapped_column(String(8), comment="approve, review or block")
    decided_by: Mapped[str | None] = mapped_column(Text, comment="the deciding rule id or list entry")
    rules_fired: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    ruleset_version: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_realtime_decision_card_token_event_time", "card_token", "event_time"),
        Index("ix_realtime_decision_merchant_event_time", "merchant", "event_time"),
        CheckConstraint("outcome IN ('approve', 'review', 'block')", name="ck_realtime_decision_outcome"),
    )


class CustomerAlert(Base):
    """One alert per group of flagged transactions (a card's flagged transactions of one day) and channel; the
    unique (group_key, channel) makes a rerun send nothing twice. Status: pending, sent or capped."""

    __tablename__ = "customer_alert"
    __table_args__ = (UniqueConstraint("group_key", "channel", name="uq_customer_alert_group_channel"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(
        Text, comment="card token and day of the grouped transactions (+ #n for follow-ups)"
    )
    channel: Mapped[str] = mapped_column(String(16))
    card_token: Mapped[str] = mapped_column(ForeignKey("dim_card.card_token"))
    alert_day: Mapped[date] = mapped_column(Date)
    model_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerAlertTransaction(Base):
    """The transactions of an alert's group; a transaction is in at most one alert per channel."""

    __tablename__ = "customer_alert_transaction"
    __table_args__ = (UniqueConstraint("trans_num", "channel", name="uq_customer_alert_transaction_trans_channel"),)
    alert_id: Mapped[int] = mapped_column(ForeignKey("customer_alert.id", ondelete="CASCADE"), primary_key=True)
    # its transaction: checked per statement (migration 0009), fact_transaction being partitioned
    trans_num: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))


class BatchLoad(Base):
    """Row accounting per raw batch: rows_in = rows_loaded + rows_quarantined + duplicates_dropped."""

    __tablename__ = "batch_load"
    batch_id: Mapped[str] = mapped_column(Text, primary_key=True)
    source_key: Mapped[str] = mapped_column(Text)
    rows_in: Mapped[int] = mapped_column(Integer)
    rows_loaded: Mapped[int] = mapped_column(Integer)
    rows_quarantined: Mapped[int] = mapped_column(Integer)
    duplicates_dropped: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ListEntry(Base):
    """A block or allow list entry (migration 0006, fraud/db/lists.py): in force from `added_at` until
    `expires_at` or its removal; never deleted."""

    __tablename__ = "list_entry"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8), comment="block or allow")
    entity: Mapped[str] = mapped_column(String(16), comment="card, merchant or category")
    value: Mapped[str] = mapped_column(Text, comment="card token (never a card number), merchant, category")
    last4: Mapped[str | None] = mapped_column(String(4), comment="last four digits of the card, for people reading")
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('block', 'allow')", name="ck_list_entry_kind"),
        CheckConstraint("entity IN ('card', 'merchant', 'category')", name="ck_list_entry_entity"),
        CheckConstraint("expires_at IS NULL OR expires_at > added_at", name="ck_list_entry_expiry"),
        CheckConstraint("(removed_at IS NULL) = (removed_by IS NULL)", name="ck_list_entry_removal"),
        Index("ix_list_entry_in_force", "entity", "value", postgresql_where=text("removed_at IS NULL")),
    )


class ListAudit(Base):
    """Every add and remove of a list entry, append-only (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "list_audit"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("list_entry.id"), index=True)
    action: Mapped[str] = mapped_column(String(8), comment="add or remove")
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    detail: Mapped[dict] = mapped_column(JSONB)

    __table_args__ = (CheckConstraint("action IN ('add', 'remove')", name="ck_list_audit_action"),)


class LabelEvent(Base):
    """Every verdict people gave (analysts, customers), kept whether it counts or not; append-only (migration 0007)."""

    __tablename__ = "label_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    trans_num: Mapped[str] = mapped_column(String(64), index=True)
    verdict: Mapped[str] = mapped_column(String(8), comment="fraud, genuine or unsure")
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), comment="when the platform learnt it")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("verdict IN ('fraud', 'genuine', 'unsure')", name="ck_label_event_verdict"),
        CheckConstraint("source IN ('file', 'analyst', 'customer')", name="ck_label_event_source"),
    )


class AppUser(Base):
    """A user of the review app (`fraud users add`)."""

    __tablename__ = "app_user"
    username: Mapped[str] = mapped_column(Text, primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text, comment="argon2id")
    role: Mapped[str] = mapped_column(String(8), comment="analyst or admin")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("role IN ('analyst', 'admin')", name="ck_app_user_role"),)


class CustomerAnswer(Base):
    """The one answer an alert's signed link may give (its primary key makes a link usable once)."""

    __tablename__ = "customer_answer"
    alert_id: Mapped[int] = mapped_column(ForeignKey("customer_alert.id"), primary_key=True)
    answer: Mapped[str] = mapped_column(String(8), comment="me or not_me")
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("answer IN ('me', 'not_me')", name="ck_customer_answer_answer"),)
