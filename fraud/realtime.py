"""The real-time path: one raw Sparkov transaction, at the till → validated (the ETL's rules) → online features
from the card's and merchant's history in PostgreSQL (`fraud.online_features`) → score, flag and top reasons
from the promoted model. Nothing is written: the transaction reaches `fact_transaction` through the batch
path, like every other. Used by the scorer Lambda's real-time event and by `fraud serve`.

A card with no cardholder record (`dim_card`) is refused (`unknown_card`): the issuer could not reach its
holder about a flag, and a card number nobody issued is more likely a typo or a probe than a customer.
"""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping

import numpy as np
import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from fraud.attribution import score_and_attribute, top_reasons
from fraud.db.engine import database_url, get_engine
from fraud.features import FEATURE_NAMES
from fraud.online_features import InvalidTransaction, online_features, parse_transaction
from fraud.scoring import ModelCache
from fraud.settings import Settings

APPLICATION_NAME = "fraud-realtime"  # how the read connections show in pg_stat_activity
MODEL_RECHECK_SECONDS = 30.0  # how stale the real-time view of LATEST may get (a check is an object-store read)


class ReadPool:
    """A few autocommit connections for single-statement reads. A request costs one round trip: no liveness ping
    at checkout, no BEGIN, no ROLLBACK at checkin (SQLAlchemy's pool does all three, which tripled the time of a
    real-time request). A connection that fails is dropped; the next request opens a new one."""

    def __init__(self, conninfo: str, size: int = 8):
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
    """Holds what one process reuses across requests: the read connections, the card-token key and the model cache."""

    def __init__(self, settings: Settings, models: ModelCache | None = None, recheck_seconds: float = MODEL_RECHECK_SECONDS):
        self.settings = settings
        self.models = models or ModelCache()
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._pool: ReadPool | None = None
        self._engine: Engine | None = None
        self._token_key: bytes | None = None

    def _resources(self) -> tuple[ReadPool, bytes]:
        with self._lock:  # resolved once: the database URL (and in aws mode its secret) and the key
            if self._pool is None:
                url = database_url(self.settings)
                self._engine = get_engine(self.settings)  # for the attribution baseline, computed once per model
                self._pool = ReadPool(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
                self._token_key = self.settings.token_key()
            return self._pool, self._token_key

    def _baseline(self, model) -> np.ndarray:
        self._resources()
        return model.baseline(self._engine)

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

    def check(self) -> str:
        """Raise unless the database answers and a model is promoted; returns the model version."""
        self._read(lambda connection: connection.execute("SELECT 1").fetchone())
        return self.model().version

    def warm_up(self) -> str:
        """Load the model and its attribution baseline before the first request; returns the model version."""
        model = self.model()
        self._baseline(model)
        return model.version

    def score(self, raw: Mapping[str, object]) -> dict:
        """Score one raw transaction. Raises InvalidTransaction (with a reason code) for what the ETL would
        quarantine, and for an unknown card."""
        _, key = self._resources()
        tx = parse_transaction(raw, key)
        model = self.model()
        features, history = self._read(lambda connection: online_features(connection, tx))
        if not history.known_card:
            raise InvalidTransaction("unknown_card", "cc_num",
                                     f"no cardholder record for the card ending {tx.last4}: cards become known "
                                     "through the batch path (fraud ingest / the ETL)")
        scores, contributions = score_and_attribute(model.scorer.predict, features[None, :], self._baseline(model))
        score = float(scores[0])
        return {"trans_num": tx.trans_num, "score": score, "flagged": score >= model.threshold,
                "threshold": model.threshold, "model_version": model.version,
                "feature_version": model.feature_version,
                "reasons": top_reasons(contributions, FEATURE_NAMES)[0]}
