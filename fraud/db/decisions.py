"""The real-time decision log (`realtime_decision`, migration 0005): what the real-time path answered, recorded
before the answer leaves.

- `DECISION_SQL` reads, in the request's one read round trip, the transaction's online history
  (fraud/features/online.py), the block and allow list entries in force for it (fraud/db/lists.py) and any
  decision already recorded for its trans_num; `SETTLED_DECISION_SQL` is the same read on the day partitions,
  for the rare request whose history window reaches below recent_transaction's horizon (`complete` false).
- `RECORD_SQL` records a decision: one autocommit INSERT ... ON CONFLICT DO NOTHING, so a decision is either
  wholly there or not at all, and of two concurrent requests for one trans_num exactly one records.
- `recent_decisions` and `daily_decisions` / `channel_decisions` read the log for operators (`fraud decisions`)
  and the stakeholder report: plain rows as frozen dataclasses, no pandas (the scorer Lambda imports this
  module and ships without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, text

from fraud.db.lists import hits_sql
from fraud.features.online import HISTORY_SQL, SETTLED_HISTORY_SQL

RECORDED = (
    "trans_num",
    "request_digest",
    "received_at",
    "event_time",
    "card_token",
    "last4",
    "merchant",
    "category",
    "amount",
    "merch_lat",
    "merch_long",
    "new_card",
    "new_merchant",
    "score",
    "flagged",
    "threshold",
    "reasons",
    "model_version",
    "feature_version",
    "features",
    "latency_ms",
    "channel",
    "outcome",
    "decided_by",
    "rules_fired",
    "ruleset_version",
)
# what a replay answers with: the recorded decision as it was sent
PRIOR = (
    "request_digest",
    "score",
    "flagged",
    "threshold",
    "reasons",
    "model_version",
    "feature_version",
    "new_card",
    "new_merchant",
    "outcome",
    "decided_by",
    "rules_fired",
    "ruleset_version",
)

# the recorded decision as one JSON object (`prior`, NULL when there is none): shorter than a column per value,
# and the read has little room (below)
_PRIOR = "(SELECT to_jsonb(p) FROM realtime_decision p WHERE trans_num = %(trans_num)s) AS prior"


def _decision_sql(history: str) -> str:
    return f"SELECT h.*, {hits_sql('%(card)s', '%(merchant)s', '%(category)s')} AS listed, {_PRIOR} FROM ({history}) h"


# psycopg caches a query's parsing only up to 4,096 characters, and this read is on every request's path
# (tests/serving/test_recorded_decisions.py keeps it under)
DECISION_SQL = _decision_sql(HISTORY_SQL)
# the same read when DECISION_SQL's `complete` is false: the window reaches below recent_transaction's horizon
SETTLED_DECISION_SQL = _decision_sql(SETTLED_HISTORY_SQL)

RECORD_SQL = f"""
INSERT INTO realtime_decision ({", ".join(RECORDED)})
VALUES ({", ".join(f"%({column})s" for column in RECORDED)})
ON CONFLICT (trans_num) DO NOTHING"""

# the same `prior` as DECISION_SQL's, so one reader takes either row
PRIOR_SQL = f"SELECT {_PRIOR}"


# --- reading the log: `fraud decisions` and the report's real-time section ---

TOKEN_LENGTH = 64  # a card token is a SHA-256 HMAC in hex (fraud/core/privacy.py card_token)


@dataclass(frozen=True)
class DecisionFilter:
    """Which decisions `recent_decisions` lists; None leaves a filter out. `card_token` may be a prefix (the CLI's
    table shows the first 8 characters); `since` is inclusive, `until` exclusive, both on received_at."""

    card_token: str | None = None
    last4: str | None = None
    flagged: bool | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


@dataclass(frozen=True)
class LoggedDecision:
    """One recorded answer, without its feature vector and request digest (an operator's view)."""

    trans_num: str
    received_at: datetime
    event_time: datetime
    card_token: str
    last4: str
    merchant: str
    category: str | None
    amount: float
    score: float
    flagged: bool
    threshold: float
    reasons: list
    model_version: str
    feature_version: str
    new_card: bool
    new_merchant: bool
    latency_ms: float
    channel: str


_LISTED = tuple(LoggedDecision.__dataclass_fields__)


def _conditions(where: DecisionFilter) -> tuple[list[str], dict[str, object]]:
    """The WHERE clauses of the filters that are set, with their parameters: only fixed SQL fragments, every
    value bound (and no `:x IS NULL OR ...`, which leaves PostgreSQL unable to type a NULL parameter)."""
    clauses: list[str] = []
    params: dict[str, object] = {}
    if where.card_token is not None:
        # a whole token uses the (card_token, event_time) index; a prefix scans the received_at range instead
        exact = len(where.card_token) >= TOKEN_LENGTH
        clauses.append("card_token = :card" if exact else "starts_with(card_token, :card)")
        params["card"] = where.card_token
    for column, value in (
        ("last4", where.last4),
        ("flagged", where.flagged),
        ("model_version", where.model_version),
    ):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if where.since is not None:
        clauses.append("received_at >= :since")
        params["since"] = where.since
    if where.until is not None:
        clauses.append("received_at < :until")
        params["until"] = where.until
    return clauses, params


def recent_decisions(engine: Engine, where: DecisionFilter = DecisionFilter()) -> list[LoggedDecision]:
    """The recorded decisions that pass `where`, newest first (by received_at, then trans_num), at most
    `where.limit`."""
    clauses, params = _conditions(where)
    query = text(
        f"SELECT {', '.join(_LISTED)} FROM realtime_decision"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        + " ORDER BY received_at DESC, trans_num DESC LIMIT :limit"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {**params, "limit": max(where.limit, 0)}).mappings().all()
    return [LoggedDecision(**{**row, "amount": float(row["amount"])}) for row in rows]


@dataclass(frozen=True)
class DecisionStats:
    """Decisions of one UTC day (`key` a date) or one channel (`key` "api" or "lambda"): how many, how many
    flagged and for a new card, and the latency percentiles in ms (request received to decision made)."""

    key: date | str
    decisions: int
    flagged: int
    new_cards: int
    latency_p50: float
    latency_p95: float
    latency_p99: float

    @property
    def flag_rate(self) -> float:
        return self.flagged / self.decisions if self.decisions else float("nan")


def day_window(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the last `days` whole UTC days, today (of `now`) included."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    end = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    return end - timedelta(days=max(days, 1)), end


def _stats(engine: Engine, key_sql: str, days: int, now: datetime | None) -> list[DecisionStats]:
    # percentile_cont interpolates: a p99 of a day's few decisions is an estimate, not one request's latency
    query = text(f"""
        SELECT {key_sql} AS key, count(*) AS decisions,
               count(*) FILTER (WHERE flagged) AS flagged,
               count(*) FILTER (WHERE new_card) AS new_cards,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99
        FROM realtime_decision
        WHERE received_at >= :since AND received_at < :until
        GROUP BY 1 ORDER BY 1""")
    since, until = day_window(days, now)
    with engine.connect() as connection:
        rows = connection.execute(query, {"since": since, "until": until}).mappings().all()
    return [DecisionStats(**row) for row in rows]


def daily_decisions(engine: Engine, days: int, now: datetime | None = None) -> list[DecisionStats]:
    """Per UTC day of received_at, over the last `days` days (today included), oldest first; days without a
    decision are left out."""
    return _stats(engine, "(received_at AT TIME ZONE 'UTC')::date", days, now)


def channel_decisions(engine: Engine, days: int, now: datetime | None = None) -> list[DecisionStats]:
    """Per channel ("api", "lambda") over the last `days` days, as `daily_decisions`."""
    return _stats(engine, "channel", days, now)
