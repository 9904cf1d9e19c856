"""The real-time path: one raw Sparkov transaction, at the till → validated (the ETL's rules) → online features
from the card's and merchant's history in PostgreSQL (`fraud.features.online`) → score, flag and top reasons
from the promoted model. Nothing is written: the transaction reaches `fact_transaction` through the batch
path, like every other. Used by the scorer Lambda's real-time event and by `fraud serve`.

A card with no cardholder record (`dim_card`) is refused (`unknown_card`): the issuer could not reach its
holder about a flag, and a card number nobody issued is more likely a typo or a probe than a customer. For a
known card the holder's fields (dob, city_pop, home) are its stored record's, never the request's
(fraud/features/online.py `row_inputs`): a caller cannot change a holder's age to move the score.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from fraud.core.settings import Settings
from fraud.db.engine import database_url, get_engine
from fraud.features.catalog import FEATURE_NAMES
from fraud.features.online import (
    History,
    InvalidTransaction,
    Transaction,
    feature_vector,
    fetch_history_async,
    online_features,
    parse_transaction,
)
from fraud.model.attribution import score_and_attribute, top_reasons
from fraud.serving.batch import ModelCache, PromotedModel

if TYPE_CHECKING:  # the asyncio side is the API's; the scorer Lambda ships without psycopg_pool and anyio
    from psycopg_pool import AsyncConnectionPool

APPLICATION_NAME = "fraud-realtime"  # how the read connections show in pg_stat_activity
MODEL_RECHECK_SECONDS = 30.0  # how stale the real-time view of LATEST may get (a check is an object-store read)
READ_CONNECTIONS = 8  # per process: more would only queue inside PostgreSQL on 2 cores


class ReadPool:
    """A few autocommit connections for single-statement reads. A request costs one round trip: no liveness ping
    at checkout, no BEGIN, no ROLLBACK at checkin (SQLAlchemy's pool does all three, which tripled the time of a
    real-time request). A connection that fails is dropped; the next request opens a new one. Not psycopg_pool's
    ConnectionPool (the API's asyncio side uses its async twin): with the database down, its `getconn` waits out
    its timeout while workers retry in the background, where this one fails at once, so a Lambda invocation or a
    health check answers in milliseconds instead of tens of seconds."""

    def __init__(self, conninfo: str, size: int = READ_CONNECTIONS):
        self._conninfo = conninfo
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._slots:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = psycopg.connect(self._conninfo, autocommit=True, application_name=APPLICATION_NAME)
            try:
                yield connection
            finally:
                if connection.broken or connection.closed:
                    connection.close()
                else:
                    self._idle.put(connection)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


class RealtimeScorer:
    """Holds what one process reuses across requests: the read connections, the card-token key and the model
    cache. `score` is the blocking path (the Lambda handler); `score_async` the asyncio one (`fraud serve`), for
    the lifetime of `async with scorer.serving()`."""

    def __init__(
        self, settings: Settings, models: ModelCache | None = None, recheck_seconds: float = MODEL_RECHECK_SECONDS
    ):
        self.settings = settings
        self.models = models or ModelCache()
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._conninfo: str | None = None
        self._pool: ReadPool | None = None
        self._async_pool: AsyncConnectionPool | None = None
        self._engine: Engine | None = None
        self._token_key: bytes | None = None

    def _resources(self) -> tuple[ReadPool, bytes]:
        with self._lock:  # resolved once: the database URL (and in aws mode its secret) and the key
            if self._pool is None:
                url = database_url(self.settings)
                self._engine = get_engine(self.settings)  # for the attribution baseline, computed once per model
                self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
                self._pool = ReadPool(self._conninfo)
                self._token_key = self.settings.token_key()
            return self._pool, self._token_key

    def _read(self, work):
        """Run `work(connection)`; once more on a fresh connection when a pooled one turns out to be dead."""
        pool, _ = self._resources()
        for attempt in (1, 2):
            try:
                with pool.connection() as connection:
                    return work(connection)
            except psycopg.OperationalError:
                if attempt == 2:
                    raise

    def model(self):
        return self.models.get(self.settings, self.recheck_seconds)

    def _model_and_baseline(self) -> tuple[PromotedModel, np.ndarray]:
        model = self.model()
        self._resources()
        return model, model.baseline(self._engine)

    def check(self) -> str:
        """Raise unless the database answers and a model is promoted; returns the model version."""
        self._read(lambda connection: connection.execute("SELECT 1").fetchone())
        return self.model().version

    def warm_up(self) -> str:
        """Load the model and its attribution baseline before the first request; returns the model version."""
        return self._model_and_baseline()[0].version

    def score(self, raw: Mapping[str, object]) -> dict:
        """Score one raw transaction. Raises InvalidTransaction (with a reason code) for what the ETL would
        quarantine, and for an unknown card."""
        _, key = self._resources()
        tx = parse_transaction(raw, key)
        model, baseline = self._model_and_baseline()
        features, history = self._read(lambda connection: online_features(connection, tx))
        return self._answer(tx, model, baseline, features, history)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[RealtimeScorer]:
        """A pool of asyncio read connections on the running event loop, for `score_async`. Opening does not
        wait for the database: requests fail (and /health says so) until it answers."""
        from psycopg_pool import AsyncConnectionPool

        self._resources()
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=READ_CONNECTIONS,
            open=False,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
        )
        await pool.open()
        self._async_pool = pool
        try:
            yield self
        finally:
            self._async_pool = None
            await pool.close()

    async def score_async(self, raw: Mapping[str, object]) -> dict:
        """`score` without blocking the event loop: the history query on an asyncio connection; the model cache,
        when its `LATEST` check is due (an object-store read) or a new model needs its baseline, in a thread."""
        pool = self._async_pool
        if pool is None:
            raise RuntimeError("score_async needs `async with scorer.serving()`")
        tx = parse_transaction(raw, self._token_key)
        model = self.models.fresh(self.settings, self.recheck_seconds)
        if model is not None and model.has_baseline:
            baseline = model.baseline(self._engine)
        else:
            import anyio

            model, baseline = await anyio.to_thread.run_sync(self._model_and_baseline)
        for attempt in (1, 2):  # once more on a fresh connection when a pooled one turns out to be dead
            try:
                async with pool.connection() as connection:
                    history = await fetch_history_async(connection, tx)
                break
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                await (
                    pool.check()
                )  # drop every dead idle connection (a database restart kills them all), not just this one
        return self._answer(tx, model, baseline, feature_vector(tx, history), history)

    def _answer(
        self, tx: Transaction, model: PromotedModel, baseline: np.ndarray, features: np.ndarray, history: History
    ) -> dict:
        if not history.known_card:
            raise InvalidTransaction(
                "unknown_card",
                "cc_num",
                f"no cardholder record for the card ending {tx.last4}: cards become known "
                "through the batch path (fraud ingest / the ETL)",
            )
        scores, contributions = score_and_attribute(model.scorer.predict, features[None, :], baseline)
        score = float(scores[0])
        return {
            "trans_num": tx.trans_num,
            "score": score,
            "flagged": score >= model.threshold,
            "threshold": model.threshold,
            "model_version": model.version,
            "feature_version": model.feature_version,
            "reasons": top_reasons(contributions, FEATURE_NAMES)[0],
        }
