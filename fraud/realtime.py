"""The real-time path: one raw Sparkov transaction, at the till → validated (the ETL's rules) → online features
from the card's and merchant's history in PostgreSQL (`fraud.online_features`) → score, flag and top reasons
from the promoted model. Nothing is written: the transaction reaches `fact_transaction` through the batch
path, like every other. Used by the scorer Lambda's real-time event and by `fraud serve`.

A card with no cardholder record (`dim_card`) is refused (`unknown_card`): the issuer could not reach its
holder about a flag, and a card number nobody issued is more likely a typo or a probe than a customer.
"""
from __future__ import annotations

import threading
from typing import Mapping

from sqlalchemy import Engine

from fraud.attribution import score_and_attribute, top_reasons
from fraud.db.engine import get_engine
from fraud.features import FEATURE_NAMES
from fraud.online_features import InvalidTransaction, online_features, parse_transaction
from fraud.scoring import ModelCache
from fraud.settings import Settings

MODEL_RECHECK_SECONDS = 30.0  # how stale the real-time view of LATEST may get (a check is an object-store read)


class RealtimeScorer:
    """Holds what one process reuses across requests: the engine, the card-token key and the model cache."""

    def __init__(self, settings: Settings, models: ModelCache | None = None, recheck_seconds: float = MODEL_RECHECK_SECONDS):
        self.settings = settings
        self.models = models or ModelCache()
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._token_key: bytes | None = None

    def _resources(self) -> tuple[Engine, bytes]:
        with self._lock:  # resolved once: the embedded server lookup and the key read cost milliseconds
            if self._engine is None:
                self._engine = get_engine(self.settings)
                self._token_key = self.settings.token_key()
            return self._engine, self._token_key

    def model(self):
        return self.models.get(self.settings, self.recheck_seconds)

    def check(self) -> str:
        """Raise unless the database answers and a model is promoted; returns the model version."""
        engine, _ = self._resources()
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return self.model().version

    def warm_up(self) -> str:
        """Load the model and its attribution baseline before the first request; returns the model version."""
        engine, _ = self._resources()
        model = self.model()
        model.baseline(engine)
        return model.version

    def score(self, raw: Mapping[str, object]) -> dict:
        """Score one raw transaction. Raises InvalidTransaction (with a reason code) for what the ETL would
        quarantine, and for an unknown card."""
        engine, key = self._resources()
        tx = parse_transaction(raw, key)
        model = self.model()
        with engine.connect() as connection:
            features, history = online_features(connection, tx)
        if not history.known_card:
            raise InvalidTransaction("unknown_card", "cc_num",
                                     f"no cardholder record for the card ending {tx.last4}: cards become known "
                                     "through the batch path (fraud ingest / the ETL)")
        scores, contributions = score_and_attribute(model.scorer.predict, features[None, :], model.baseline(engine))
        score = float(scores[0])
        return {"trans_num": tx.trans_num, "score": score, "flagged": score >= model.threshold,
                "threshold": model.threshold, "model_version": model.version,
                "feature_version": model.feature_version,
                "reasons": top_reasons(contributions, FEATURE_NAMES)[0]}
