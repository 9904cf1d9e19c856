"""Review cases: what an analyst works through in the review app (fraud/app/review/) and what the report's review
section counts.

A **case** is a card's transactions of one UTC day that the promoted model's decisions sent to review or blocked
(`fraud_score.outcome`, fraud/rules/), the same grouping as a customer alert's (fraud/outreach/alerts.py), under
the same key: `<card token>:<YYYY-MM-DD>`. It is **open** while one of its transactions has no label known at the
platform's clock (fraud/db/labels.py: an analyst's verdict, a customer's answer or a label file), and closed once
all have one. Open cases are worked in order of risk (the highest score among its transactions), then age (the
oldest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, text

from fraud.db.labels import PLATFORM_NOW

_CASES = f"""
WITH clock AS (SELECT {PLATFORM_NOW} AS now),
decided AS (
    SELECT s.trans_num, s.score, t.card_token, (t.event_time AT TIME ZONE 'UTC')::date AS day, t.event_time, t.amount
    FROM fraud_score s JOIN fact_transaction t USING (trans_num)
    WHERE s.model_version = :model AND s.outcome <> 'approve'
)
SELECT d.card_token || ':' || d.day AS case_id, d.card_token, d.day, count(*) AS transactions, max(d.score) AS risk,
       min(d.event_time) AS first_seen, sum(d.amount)::float8 AS amount, count(l.trans_num) AS labelled,
       count(l.trans_num) = count(*) AS closed, (SELECT now FROM clock) AS now
FROM decided d
LEFT JOIN transaction_label l ON l.trans_num = d.trans_num AND l.labelled_at <= (SELECT now FROM clock)
GROUP BY d.card_token, d.day"""


@dataclass(frozen=True)
class CaseSummary:
    case_id: str
    card_token: str
    day: date
    transactions: int
    risk: float
    first_seen: datetime
    amount: float
    labelled: int
    closed: bool
    now: datetime  # the platform's clock when read

    @property
    def age_hours(self) -> float:
        return max(0.0, (self.now - self.first_seen).total_seconds() / 3600)


def cases(engine: Engine, model_version: str, *, open_only: bool = True, limit: int | None = 100) -> list[CaseSummary]:
    """The model's cases, open ones only by default, in working order (risk, then age)."""
    query = f"SELECT * FROM ({_CASES}) c {'WHERE NOT c.closed' if open_only else ''} ORDER BY risk DESC, first_seen"
    query += " LIMIT :limit" if limit is not None else ""
    with engine.connect() as connection:
        rows = connection.execute(text(query), {"model": model_version, "limit": limit}).mappings().all()
    return [CaseSummary(**row) for row in rows]


def case_of(engine: Engine, model_version: str, case_id: str) -> CaseSummary | None:
    """A case's summary (None: no such case, or not a case id)."""
    with engine.connect() as connection:
        return case_in(connection, model_version, case_id)


def case_transactions(engine: Engine, model_version: str, case_id: str) -> list[str]:
    """The trans_nums of a case (the ones a verdict on the case labels)."""
    with engine.connect() as connection:
        return case_transactions_in(connection, model_version, case_id)


# --- the review app's reads (fraud/app/review/) ---------------------------------------------------------------

HISTORY_DAYS = 30  # the card's recent history and the merchant's figures on a case page
HISTORY_ROWS = 200  # at most this many of the card's transactions on a case page


def _case_key(case_id: str) -> tuple[str, date] | None:
    card_token, _, day = case_id.rpartition(":")
    try:
        return (card_token, date.fromisoformat(day)) if card_token else None
    except ValueError:
        return None


def _summary(row) -> CaseSummary:
    return CaseSummary(**{name: row[name] for name in CaseSummary.__dataclass_fields__})


@dataclass(frozen=True)
class QueueRow:
    case: CaseSummary
    last4: str
    review: int  # the case's transactions sent to review
    block: int  # and blocked


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int  # open cases in all
    offset: int
    limit: int


def queue_page(engine: Engine, model_version: str, offset: int = 0, limit: int = 25) -> QueuePage:
    """One page of the open cases in working order (risk, then age, then case id so that pages never overlap),
    with each card's last 4 digits and the case's outcome mix."""
    query = f"""
    WITH page AS (
        SELECT c.*, count(*) OVER () AS total FROM ({_CASES}) c WHERE NOT c.closed
        ORDER BY c.risk DESC, c.first_seen, c.case_id OFFSET :offset LIMIT :limit
    )
    SELECT p.*, k.last4, m.review, m.block
    FROM page p JOIN dim_card k USING (card_token)
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.outcome = 'review') AS review,
               count(*) FILTER (WHERE s.outcome = 'block') AS block
        FROM fact_transaction t JOIN fraud_score s ON s.trans_num = t.trans_num AND s.model_version = :model
        WHERE t.card_token = p.card_token AND t.event_time >= p.day::timestamp AT TIME ZONE 'UTC'
          AND t.event_time < (p.day + 1)::timestamp AT TIME ZONE 'UTC' AND s.outcome <> 'approve'
    ) m
    ORDER BY p.risk DESC, p.first_seen, p.case_id"""
    with engine.connect() as connection:
        rows = (
            connection.execute(text(query), {"model": model_version, "offset": offset, "limit": limit}).mappings().all()
        )
        total = rows[0]["total"] if rows else _open_count(connection, model_version)
    return QueuePage(
        [QueueRow(_summary(row), row["last4"], row["review"], row["block"]) for row in rows], total, offset, limit
    )


def _open_count(connection: Connection, model_version: str) -> int:
    return connection.execute(
        text(f"SELECT count(*) FROM ({_CASES}) c WHERE NOT c.closed"), {"model": model_version}
    ).scalar_one()


def case_in(connection: Connection, model_version: str, case_id: str) -> CaseSummary | None:
    """A case's summary inside the caller's database transaction (a verdict checks the case is still open in the
    transaction that records it)."""
    key = _case_key(case_id)
    if key is None:
        return None
    query = f"SELECT * FROM ({_CASES}) c WHERE c.card_token = :card AND c.day = :day"
    row = (
        connection.execute(text(query), {"model": model_version, "card": key[0], "day": key[1]})
        .mappings()
        .one_or_none()
    )
    return _summary(row) if row is not None else None


def case_transactions_in(connection: Connection, model_version: str, case_id: str) -> list[str]:
    """A case's trans_nums inside the caller's database transaction."""
    key = _case_key(case_id)
    if key is None:
        return []
    start = datetime.combine(key[1], time(), tzinfo=UTC)
    return list(
        connection.execute(
            text("""
            SELECT s.trans_num FROM fraud_score s JOIN fact_transaction t USING (trans_num)
            WHERE s.model_version = :model AND s.outcome <> 'approve' AND t.card_token = :card
              AND t.event_time >= :start AND t.event_time < :end
            ORDER BY t.event_time, s.trans_num"""),
            {"model": model_version, "card": key[0], "start": start, "end": start + timedelta(days=1)},
        ).scalars()
    )


@dataclass(frozen=True)
class Label:
    """The label that counts for a transaction at the platform's clock (fraud/db/labels.py)."""

    is_fraud: bool
    source: str  # file, analyst or customer
    actor: str | None
    labelled_at: datetime

    @property
    def verdict(self) -> str:
        return "fraud" if self.is_fraud else "genuine"


@dataclass(frozen=True)
class CaseTransaction:
    trans_num: str
    event_time: datetime
    merchant: str
    category: str | None
    amount: float
    score: float
    outcome: str
    decided_by: str | None
    rules_fired: list[str]
    top_reasons: list[dict]  # [{"feature": ..., "contribution": ...}], largest first
    features: list[float] | None  # the vector the model scored, when stored
    feature_version: str | None
    label: Label | None


@dataclass(frozen=True)
class HistoryRow:
    trans_num: str
    event_time: datetime
    merchant: str
    category: str | None
    amount: float
    score: float | None  # this model's, when it scored the transaction
    outcome: str | None
    label: Label | None
    in_case: bool


@dataclass(frozen=True)
class MerchantFigures:
    merchant: str
    transactions: int  # in the last HISTORY_DAYS days up to the platform's clock
    labelled: int  # of them, with a label known now
    frauds: int  # of them, labelled fraud

    @property
    def fraud_rate(self) -> float | None:
        return self.frauds / self.labelled if self.labelled else None


@dataclass(frozen=True)
class VerdictEvent:
    """One verdict given on (some of) the case's transactions, from `label_event` (the verdicts' audit)."""

    recorded_at: datetime  # wall clock
    at: datetime  # the platform's clock it counts from
    verdict: str
    source: str
    actor: str
    note: str | None
    transactions: int


@dataclass(frozen=True)
class Holder:
    last4: str
    first_name: str | None
    last_name: str | None
    city: str | None
    state: str | None


@dataclass(frozen=True)
class CaseDetail:
    case: CaseSummary
    holder: Holder
    transactions: list[CaseTransaction]
    history: list[HistoryRow]
    merchants: list[MerchantFigures]
    verdicts: list[VerdictEvent]

    @property
    def closed_by(self) -> list[tuple[str, str | None, str, int]]:
        """(source, actor, verdict, transactions) of the labels that close the case, most transactions first."""
        groups: dict[tuple[str, str | None, str], int] = {}
        for t in self.transactions:
            if t.label is not None:
                key = (t.label.source, t.label.actor, t.label.verdict)
                groups[key] = groups.get(key, 0) + 1
        return sorted(((*key, n) for key, n in groups.items()), key=lambda g: -g[3])


_LABEL_COLUMNS = "l.is_fraud, l.source AS label_source, l.actor AS label_actor, l.labelled_at"
_KNOWN_LABEL = "LEFT JOIN transaction_label l ON l.trans_num = t.trans_num AND l.labelled_at <= :now"


def _label(row) -> Label | None:
    if row["is_fraud"] is None:
        return None
    return Label(bool(row["is_fraud"]), row["label_source"], row["label_actor"], row["labelled_at"])


def _reasons(value) -> list[dict]:
    reasons = []
    for reason in value or []:  # dicts from the scorer; a plain feature name from older writers
        reasons.append(reason if isinstance(reason, dict) else {"feature": str(reason)})
    return reasons


def case_detail(engine: Engine, model_version: str, case_id: str) -> CaseDetail | None:
    """Everything a case page shows: its transactions with their decisions, reasons, features and labels; the
    holder; the card's last HISTORY_DAYS days before the case and since; the case's merchants' figures; and every
    verdict given on its transactions. Labels are the ones known at the platform's clock."""
    from fraud.features.catalog import FEATURE_VERSION

    key = _case_key(case_id)
    if key is None:
        return None
    card_token, day = key
    with engine.connect() as connection:
        summary = case_in(connection, model_version, case_id)
        if summary is None:
            return None
        now = summary.now
        start = datetime.combine(day, time(), tzinfo=UTC)
        window = {"card": card_token, "start": start, "end": start + timedelta(days=1), "now": now}
        holder = (
            connection.execute(
                text("SELECT last4, first_name, last_name, city, state FROM dim_card WHERE card_token = :card"),
                window,
            )
            .mappings()
            .one()
        )
        rows = connection.execute(
            text(f"""
            SELECT t.trans_num, t.event_time, t.merchant, t.category, t.amount::float8 AS amount, s.score, s.outcome,
                   s.decided_by, s.rules_fired, s.top_reasons, f."values" AS features, f.feature_version,
                   {_LABEL_COLUMNS}
            FROM fact_transaction t JOIN fraud_score s ON s.trans_num = t.trans_num AND s.model_version = :model
            LEFT JOIN LATERAL (
                SELECT x."values", x.feature_version FROM transaction_features x WHERE x.trans_num = t.trans_num
                ORDER BY x.feature_version = :fv DESC, x.feature_version DESC LIMIT 1
            ) f ON true
            {_KNOWN_LABEL}
            WHERE t.card_token = :card AND t.event_time >= :start AND t.event_time < :end AND s.outcome <> 'approve'
            ORDER BY t.event_time, t.trans_num"""),
            {**window, "model": model_version, "fv": FEATURE_VERSION},
        ).mappings()
        transactions = [
            CaseTransaction(
                row["trans_num"],
                row["event_time"],
                row["merchant"],
                row["category"],
                row["amount"],
                row["score"],
                row["outcome"],
                row["decided_by"],
                list(row["rules_fired"] or []),
                _reasons(row["top_reasons"]),
                list(row["features"]) if row["features"] is not None else None,
                row["feature_version"],
                _label(row),
            )
            for row in rows
        ]
        in_case = {t.trans_num for t in transactions}
        since = start - timedelta(days=HISTORY_DAYS)
        history = [
            HistoryRow(
                row["trans_num"],
                row["event_time"],
                row["merchant"],
                row["category"],
                row["amount"],
                row["score"],
                row["outcome"],
                _label(row),
                row["trans_num"] in in_case,
            )
            for row in connection.execute(
                text(f"""
                SELECT t.trans_num, t.event_time, t.merchant, t.category, t.amount::float8 AS amount, s.score,
                       s.outcome, {_LABEL_COLUMNS}
                FROM fact_transaction t
                LEFT JOIN fraud_score s ON s.trans_num = t.trans_num AND s.model_version = :model
                {_KNOWN_LABEL}
                WHERE t.card_token = :card AND t.event_time >= :since AND t.event_time <= :now
                ORDER BY t.event_time DESC, t.trans_num LIMIT :limit"""),
                {**window, "model": model_version, "since": since, "limit": HISTORY_ROWS},
            ).mappings()
        ]
        merchants = sorted({t.merchant for t in transactions})
        figures = {
            row["merchant"]: MerchantFigures(row["merchant"], row["transactions"], row["labelled"], row["frauds"])
            for row in connection.execute(
                text(f"""
                SELECT t.merchant, count(*) AS transactions, count(l.trans_num) AS labelled,
                       count(*) FILTER (WHERE l.is_fraud) AS frauds
                FROM fact_transaction t {_KNOWN_LABEL}
                WHERE t.merchant = ANY(:merchants) AND t.event_time > :since AND t.event_time <= :now
                GROUP BY t.merchant"""),
                {"merchants": merchants, "now": now, "since": now - timedelta(days=HISTORY_DAYS)},
            ).mappings()
        }
        verdicts = [
            VerdictEvent(**row)
            for row in connection.execute(
                text("""
                SELECT recorded_at, at, verdict, source, actor, note, count(*) AS transactions FROM label_event
                WHERE trans_num = ANY(:trans_nums)
                GROUP BY recorded_at, at, verdict, source, actor, note ORDER BY min(id)"""),
                {"trans_nums": sorted(in_case)},
            ).mappings()
        ]
    return CaseDetail(
        summary,
        Holder(**holder),
        transactions,
        history,
        [figures.get(m, MerchantFigures(m, 0, 0, 0)) for m in merchants],
        verdicts,
    )


@dataclass(frozen=True)
class RecentVerdict:
    recorded_at: datetime
    verdict: str
    source: str
    actor: str
    note: str | None
    transactions: int
    trans_num: str  # one of them


def recent_verdicts(engine: Engine, limit: int = 50) -> list[RecentVerdict]:
    """The latest verdicts people gave (analysts, customers), newest first: the admin's view of the audit."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("""
            SELECT recorded_at, verdict, source, actor, note, count(*) AS transactions, min(trans_num) AS trans_num
            FROM label_event GROUP BY recorded_at, verdict, source, actor, note
            ORDER BY recorded_at DESC LIMIT :limit"""),
            {"limit": limit},
        ).mappings()
        return [RecentVerdict(**row) for row in rows]
