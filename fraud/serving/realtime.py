"""The real-time path, one implementation behind both doors (`fraud serve`'s POST /v1/score and the scorer
Lambda's real-time event): one raw Sparkov transaction → the ETL's rules (fraud/ingest/validation.py) → online
features from the card's and merchant's history in PostgreSQL, settled and recently decided
(fraud/features/online.py) → score, flag and top reasons from the promoted model → the decision: the block and
allow lists, then the rules (fraud/rules/decision.py, the same as batch scoring's) → recorded in the decision log
(`realtime_decision`, fraud/db/decisions.py) → answered. `score_async` is that path; `score` runs it for a
caller without an event loop (the Lambda handler) on a loop of its own, kept across warm invocations.

**Every answer is recorded before it leaves**, by one autocommit INSERT, so a crash anywhere leaves either the
decision recorded (the retry gets it back) or nothing at all (the retry scores afresh): never an answer sent
that the log does not hold. A retry with the same trans_num and the same transaction gets the recorded answer and
adds nothing; the same trans_num with another transaction is refused (`DecisionConflict`, HTTP 409). Of two
concurrent requests for one trans_num exactly one records, and both answer with its decision.

**New cards and merchants are scored.** "First time seen" (no stored record, no earlier decision) is part of
the answer (`new_card`, `new_merchant`) and of the log, not a refusal. The model sees it through the features
as they stand (30-day count 0, seconds since the previous transaction at its 30-day cap). A known card's holder
fields (dob, city_pop, home) are its stored record's (`dim_card`), never the request's; for a card not yet
loaded by the batch path the request's are used, and one left out is unknown (its `*_known` feature is 0 and
the value's feature 0: fraud/features/rows.py). Merchant coordinates: the request's, else the stored ones,
else unknown.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import Engine

from fraud.core.settings import Settings
from fraud.db.decisions import DECISION_SQL, PRIOR, PRIOR_SQL, RECORD_SQL, SETTLED_DECISION_SQL
from fraud.db.engine import conninfo, get_engine
from fraud.db.roles import DbRole
from fraud.features.catalog import FEATURE_NAMES
from fraud.features.online import (
    History,
    Transaction,
    feature_vector,
    history_from_row,
    history_parameters,
    parse_transaction,
)
from fraud.model.attribution import score_and_attribute, top_reasons
from fraud.rules import ListHit, RuleSet, live_rules, parse_hits, rule_fields
from fraud.rules import decide as decide_outcome
from fraud.serving.batch import ModelCache, PromotedModel

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

APPLICATION_NAME = "fraud-realtime"  # how the real-time connections show in pg_stat_activity
MODEL_RECHECK_SECONDS = 30.0  # how stale the real-time view of LATEST may get (a check is an object-store read)
CONNECTIONS = 8  # per process: more would only queue inside PostgreSQL on 2 cores
CHECKOUT_SECONDS = 5.0  # with the database down, a request fails after this long instead of queueing


class DecisionConflict(ValueError):
    """The trans_num was already decided for a different transaction."""

    def __init__(self, trans_num: str):
        super().__init__(
            f"trans_num {trans_num} was already decided for a different transaction: a retry must send the same "
            "transaction, a new transaction needs a new trans_num"
        )
        self.trans_num = trans_num


@dataclass(frozen=True)
class Decision:
    """What the real-time path answers, and records."""

    trans_num: str
    score: float
    flagged: bool
    threshold: float
    model_version: str
    feature_version: str
    reasons: list[dict]
    new_card: bool
    new_merchant: bool
    outcome: str  # approve, review or block: the lists', then the rules' decision (fraud/rules/decision.py)
    decided_by: str | None  # the deciding rule id or list entry (`block-list#12`); None: approved, no rule fired
    rules_fired: list[str]
    ruleset_version: str

    def answer(self) -> dict:
        return asdict(self)


# last4 is part of the card, which the token already stands for
DIGESTED = tuple(f.name for f in fields(Transaction) if f.name != "last4")


def request_digest(tx: Transaction) -> str:
    """SHA-256 of the validated transaction (its card as the token): what makes a retry the same request. The
    repr of its values in field order (of str, float, int, date and datetime: stable across runs); not
    `dataclasses.asdict` + JSON, which cost 4% of the server's CPU."""
    return hashlib.sha256(repr(tuple(getattr(tx, name) for name in DIGESTED)).encode()).hexdigest()


def _prior(row: Mapping[str, object], trans_num: str, digest: str) -> Decision | None:
    """The decision already recorded for `trans_num` (the `prior` JSON object of `row`), or None."""
    prior = row["prior"]
    if prior is None:
        return None
    if prior["request_digest"] != digest:
        raise DecisionConflict(trans_num)
    return Decision(trans_num=trans_num, **{column: prior[column] for column in PRIOR if column != "request_digest"})


class RealtimeScorer:
    """Holds what one process reuses across requests: the connection pool, the card-token key and the model
    cache. `score_async` on the caller's event loop, for the lifetime of `async with scorer.serving()`; `score`
    for a caller without one."""

    def __init__(
        self, settings: Settings, models: ModelCache | None = None, recheck_seconds: float = MODEL_RECHECK_SECONDS
    ):
        self.settings = settings
        self.models = models or ModelCache()
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._own_lock = threading.Lock()  # one `score` at a time on the scorer's own loop
        self._conninfo: str | Callable[[], str] | None = None
        self._engine: Engine | None = None
        self._token_key: bytes | None = None
        self._pool: AsyncConnectionPool | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None  # `score`'s: its loop, its pool
        self._own_pool: AsyncConnectionPool | None = None

    def _resources(self) -> bytes:
        with self._lock:  # resolved once: the database URL (and in aws mode its secret) and the key
            if self._conninfo is None:
                self._engine = get_engine(self.settings, role=DbRole.REALTIME)  # for the attribution baseline
                self._conninfo = conninfo(self.settings, DbRole.REALTIME)  # aws mode: a fresh IAM token per connection
                self._token_key = self.settings.token_key()
            return self._token_key

    def model(self) -> PromotedModel:
        return self.models.get(self.settings, self.recheck_seconds)

    def rules(self) -> RuleSet:
        return live_rules(self.settings.rules_path)

    def _model_and_baseline(self) -> tuple[PromotedModel, np.ndarray]:
        model = self.model()
        self._resources()
        return model, model.baseline(self._engine)

    def warm_up(self) -> str:
        """Load the model and its attribution baseline before the first request; returns the model version."""
        return self._model_and_baseline()[0].version

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[RealtimeScorer]:
        """A pool of asyncio connections on the running event loop, for `score_async`. Opening does not wait
        for the database: requests fail (and /health says so) until it answers."""
        pool = await self._open_pool(CONNECTIONS)
        self._pool = pool
        try:
            yield self
        finally:
            self._pool = None
            await pool.close()

    async def _open_pool(self, size: int) -> AsyncConnectionPool:
        """`size` connections, opened in the background (a request waits for the first) and kept: a pool that
        grows under a burst makes the burst's requests wait for new connections."""
        from psycopg_pool import AsyncConnectionPool

        self._resources()
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=size,
            max_size=size,
            open=False,
            timeout=CHECKOUT_SECONDS,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
        )
        await pool.open()
        return pool

    async def _on_connection(self, work):
        """`await work(connection)`; once more on a fresh connection when a pooled one turns out to be dead."""
        own = self._own_loop is not None and asyncio.get_running_loop() is self._own_loop
        pool = self._own_pool if own else self._pool
        if pool is None:
            raise RuntimeError("score_async needs `async with scorer.serving()`")
        for attempt in (1, 2):
            try:
                async with pool.connection() as connection:
                    return await work(connection)
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                await pool.check()  # drop every dead idle connection (a database restart kills them all)

    async def check_async(self) -> str:
        """Raise unless the database answers and a model is promoted; returns the model version."""
        await self._on_connection(lambda connection: connection.execute("SELECT 1"))
        model = self.models.fresh(self.settings, self.recheck_seconds)
        return model.version if model is not None else (await asyncio.to_thread(self.model)).version

    async def score_async(self, raw: Mapping[str, object], channel: str = "api") -> dict:
        """Decide on one raw transaction, record the decision and return the answer. Raises InvalidTransaction
        (with a reason code) for what the ETL would quarantine, DecisionConflict for a trans_num reused for
        another transaction, NoPromotedModel before a model is promoted."""
        started, received_at = time.perf_counter(), datetime.now(UTC)
        tx = parse_transaction(raw, self._resources())
        digest = request_digest(tx)
        model = self.models.fresh(self.settings, self.recheck_seconds)
        if model is not None and model.has_baseline:
            baseline = model.baseline(self._engine)
        else:  # a LATEST check is an object-store read, a new model's baseline a query: off the event loop
            model, baseline = await asyncio.to_thread(self._model_and_baseline)
        parameters = {**history_parameters(tx), "trans_num": tx.trans_num}

        async def read(connection: psycopg.AsyncConnection) -> dict:
            async with connection.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(DECISION_SQL, parameters, prepare=True)
                row = await cursor.fetchone()
                if not row["complete"]:  # a window older than recent_transaction holds: the day partitions
                    await cursor.execute(SETTLED_DECISION_SQL, parameters)
                    row = await cursor.fetchone()
                return row

        row = await self._on_connection(read)
        prior = _prior(row, tx.trans_num, digest)
        if prior is not None:
            return prior.answer()
        history = history_from_row(row)
        features = feature_vector(tx, history)
        decision = decide(tx, model, baseline, features, history, self.rules(), parse_hits(row["listed"]))
        record = decision_record(tx, decision, features, digest, received_at, channel, started)

        async def write(connection: psycopg.AsyncConnection) -> Decision:
            async with connection.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(RECORD_SQL, record, prepare=True)
                if cursor.rowcount == 1:
                    return decision
                # a concurrent request for the same trans_num recorded first: its decision is the answer
                await cursor.execute(PRIOR_SQL, {"trans_num": tx.trans_num})
                stored = await cursor.fetchone()
            return _prior(stored, tx.trans_num, digest)

        return (await self._on_connection(write)).answer()

    def score(self, raw: Mapping[str, object], channel: str = "lambda") -> dict:
        """`score_async` for a caller without an event loop, on this scorer's own loop and connection pool,
        both kept for the next call (a warm Lambda invocation)."""
        with self._own_lock:
            if self._own_loop is None:
                self._own_loop = asyncio.new_event_loop()
                # one connection: `score` runs one call at a time (a Lambda instance serves one request at a time)
                self._own_pool = self._own_loop.run_until_complete(self._open_pool(1))
                atexit.register(self.close)  # a pool's workers left on an unclosed loop complain at exit
            return self._own_loop.run_until_complete(self.score_async(raw, channel))

    def close(self) -> None:
        """Close what `score` opened (its pool and loop)."""
        with self._own_lock:
            if self._own_loop is not None:
                self._own_loop.run_until_complete(self._own_pool.close())
                self._own_loop.close()
                self._own_loop = self._own_pool = None


def decide(
    tx: Transaction,
    model: PromotedModel,
    baseline: np.ndarray,
    features: np.ndarray,
    history: History,
    ruleset: RuleSet,
    listed: list[ListHit],
) -> Decision:
    """Score, flag and top reasons of one transaction's feature vector, and the decision the lists and the rules
    make with them."""
    scores, contributions = score_and_attribute(model.scorer.predict, features[None, :], baseline)
    score = float(scores[0])
    verdict = decide_outcome(
        ruleset,
        rule_fields(
            ruleset, features.astype(np.float32).tolist(), tx.amt, tx.category, tx.merchant, score, model.threshold
        ),
        listed,
    )
    if verdict.errors:
        log.warning(
            "rules failed on %s: %s", tx.trans_num, "; ".join(f"{e.rule_id}: {e.reason}" for e in verdict.errors)
        )
    return Decision(
        trans_num=tx.trans_num,
        score=score,
        flagged=score >= model.threshold,
        threshold=model.threshold,
        model_version=model.version,
        feature_version=model.feature_version,
        reasons=top_reasons(contributions, FEATURE_NAMES)[0],
        new_card=not history.card_seen_before,
        new_merchant=not history.merchant_seen_before,
        outcome=verdict.outcome.value,
        decided_by=verdict.rule,
        rules_fired=list(verdict.fired),
        ruleset_version=verdict.version,
    )


def decision_record(
    tx: Transaction,
    decision: Decision,
    features: np.ndarray,
    digest: str,
    received_at: datetime,
    channel: str,
    started: float,
) -> dict[str, object]:
    """The decision log's row (fraud/db/decisions.py RECORDED) for `decision`."""
    return {
        **decision.answer(),
        "reasons": Jsonb(decision.reasons),
        "request_digest": digest,
        "received_at": received_at,
        "event_time": tx.event_time,
        "card_token": tx.card_token,
        "last4": tx.last4,
        "merchant": tx.merchant,
        "category": tx.category,
        "amount": tx.amt,
        "merch_lat": tx.merch_lat,
        "merch_long": tx.merch_long,
        "features": features.tolist(),
        "latency_ms": (time.perf_counter() - started) * 1000,
        "channel": channel,
    }
