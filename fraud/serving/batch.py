"""Scoring with LiteRT: the promoted model (`LATEST` in the models bucket) run from its `.tflite` file, and
batch scoring of processed transactions into `fraud_score` with flags, decisions and, for the transactions whose
reasons are read (`needs_reasons`), top reasons (`fraud.model.attribution`).

Never imports TensorFlow (nor pandas): the scorer Lambda ships with LiteRT and NumPy only."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from fraud.core.read_ahead import read_ahead
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.lists import entries_in_force
from fraud.db.scores import Page, Selection, pending_pages, recent_features, write_scores
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model import registry
from fraud.model.attribution import CHUNK_TRANSACTIONS, attribute, reasons_json, scores_of
from fraud.model.litert import TFLiteScorer
from fraud.rules import RuleSet, Verdict, is_list_ref
from fraud.rules.decision import decide_many
from fraud.rules.ruleset import ACTED_ON

# transactions read, scored and written per round trip: small enough that reading the next page and writing the
# last one overlap scoring this one (100,000 rows, median of 3: 14,400 tx/s with pages of 50,000, 19,300 with
# 10,000, 20,700 with 5,000)
PAGE_ROWS = 5_000
# rows per interpreter call when it scores the rows alone (no occluded copies)
SCORE_ROWS = 2_048
DB_ATTEMPTS = 5  # a dropped database connection: the run resumes with what is still unscored, this many times

log = logging.getLogger(__name__)


class NoPromotedModel(RuntimeError):
    pass


class ModelRejected(NoPromotedModel):
    """The promoted version cannot be served (unreadable `.tflite`, wrong inputs, scores that are not
    probabilities) and no earlier version is loaded to fall back on."""


@dataclass
class PromotedModel:
    """A model version as the scorer uses it: metadata (version, threshold, feature_names, feature_version),
    its LiteRT interpreter, and the attribution baseline (computed once, on first use)."""

    version: str
    metadata: dict
    scorer: TFLiteScorer
    _baseline: np.ndarray | None = field(default=None, repr=False)

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def feature_version(self) -> str:
        return str(self.metadata["feature_version"])

    @property
    def has_baseline(self) -> bool:
        return self._baseline is not None

    def baseline(self, engine: Engine) -> np.ndarray:
        if self._baseline is None:
            self._baseline = attribution_baseline(engine, self.metadata)
        return self._baseline


def attribution_baseline(engine: Engine, metadata: dict) -> np.ndarray:
    """The occlusion baseline: `feature_baseline` from the model metadata when training recorded one, else the
    per-feature medians of the latest 20,000 transactions before the end of the training window (all
    transactions when the window is unknown), else zeros (no data at all)."""
    n = len(metadata["feature_names"])
    recorded = metadata.get("feature_baseline")
    if recorded is not None and len(recorded) == n:
        return np.asarray(recorded, dtype=np.float32)
    end = (metadata.get("training_window") or {}).get("end")
    until = datetime.fromisoformat(end) if end else None
    sample = recent_features(engine, metadata["feature_version"], until)
    if not len(sample) and until is not None:
        sample = recent_features(engine, metadata["feature_version"])
    return np.median(sample, axis=0).astype(np.float32) if len(sample) else np.zeros(n, dtype=np.float32)


def load_model(settings: Settings, version: str) -> PromotedModel:
    store = object_store(settings, settings.models_bucket)
    metadata = registry.load_metadata(store, settings.model_name, version)
    if tuple(metadata["feature_names"]) != FEATURE_NAMES or metadata["feature_version"] != FEATURE_VERSION:
        raise RuntimeError(f"model {version} was trained on other features than this scorer computes")
    try:
        scorer = TFLiteScorer(registry.load_tflite(store, settings.model_name, version))
    except ValueError as error:  # LiteRT's verifier: truncated, empty or not a flatbuffer at all
        raise ModelRejected(f"model {version}: model.tflite is not a loadable TFLite model ({error})") from None
    if scorer.n_features != len(FEATURE_NAMES):
        raise ModelRejected(f"model {version} takes {scorer.n_features} inputs, not {len(FEATURE_NAMES)}")
    # a smoke inference before the version is swapped in: a file that loads can still hold broken weights
    smoke = scorer.predict(np.zeros((2, scorer.n_features), dtype=np.float32))
    if smoke.shape != (2,) or not np.isfinite(smoke).all() or (smoke < 0).any() or (smoke > 1).any():
        raise ModelRejected(f"model {version}: a smoke inference gave {smoke.tolist()}, not two probabilities")
    return PromotedModel(version, metadata, scorer)


class ModelCache:
    """The promoted model, loaded once per version and kept across warm invocations / requests. `LATEST` is
    re-read when the last check is older than `max_age` seconds (0: on every call). A newly promoted version
    that cannot be served is refused (logged, kept in `rejected`, not retried) and the loaded one stays in
    service; with none loaded yet, `ModelRejected` is raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[PromotedModel, float]] = {}
        self.rejected: dict[str, str] = {}  # version -> why it was refused

    @staticmethod
    def _key(settings: Settings) -> tuple:
        return (
            settings.mode,
            str(settings.store_root),
            settings.s3_endpoint_url,
            settings.models_bucket,
            settings.model_name,
        )

    def fresh(self, settings: Settings, max_age: float) -> PromotedModel | None:
        """The loaded model if `LATEST` was checked less than `max_age` seconds ago, else None (no I/O)."""
        with self._lock:
            cached = self._entries.get(self._key(settings))
        return cached[0] if cached is not None and time.monotonic() - cached[1] < max_age else None

    def get(self, settings: Settings, max_age: float = 0.0) -> PromotedModel:
        key = self._key(settings)
        with self._lock:
            cached = self._entries.get(key)
            now = time.monotonic()
            if cached is not None and now - cached[1] < max_age:
                return cached[0]
            version = registry.latest_version(object_store(settings, settings.models_bucket), settings.model_name)
            if version is None:
                raise NoPromotedModel(
                    f"no promoted model: {settings.models_bucket}/{settings.model_name}/LATEST is missing"
                )
            if cached is not None and (cached[0].version == version or version in self.rejected):
                model = cached[0]
            else:
                try:
                    model = load_model(settings, version)
                except ModelRejected as error:
                    self.rejected[version] = str(error)
                    if cached is None:
                        raise
                    log.error("refused promoted %s; still serving model %s", error, cached[0].version)
                    model = cached[0]
            self._entries[key] = (model, now)
            return model


@dataclass(frozen=True)
class BatchResult:
    scored: int  # fraud_score rows written (rows another run wrote first are not counted)
    flagged: int  # flagged among the pending transactions
    pending: int  # transactions this model version had not scored when read
    reasons: int = 0  # rows written with top reasons (needs_reasons); the others have none (NULL)
    review: int = 0  # decisions among the pending transactions, by outcome
    block: int = 0
    listed: int = 0  # decided by a block or allow list entry
    rule_errors: int = 0  # rule evaluations that failed (the rule did not fire)
    ruleset_version: str = ""


Predict = Callable[[np.ndarray], np.ndarray]


def score_selection(
    engine: Engine,
    model: PromotedModel,
    selection: Selection,
    ruleset: RuleSet,
    predict: Predict | None = None,
    page_rows: int = PAGE_ROWS,
    chunk: int = CHUNK_TRANSACTIONS,
    reasons_top_share: float = 0.0,
) -> BatchResult:
    """Score every selected transaction the model has not scored yet: stream their feature vectors, and per
    page score them, decide on them (the lists, then `ruleset`: fraud/rules/decision.py, as the real-time path
    does), compute the top reasons of those whose reasons are read (`needs_reasons`) and write them all (the
    others with no reasons: NULL). A thread reads the next page meanwhile, and another writes the previous one
    while this one is scored and decided (PostgreSQL's side of a write is most of its time).
    `predict` swaps in another runner of the same model (the benchmark's Keras baseline), with the `chunk` of
    transactions per call that suits it; its reasons then run every occluded copy through it. With the model's
    own runner, the copies are computed by `model.scorer.network` (the linear first layer) when it reads the
    graph."""
    network = model.scorer.network if predict is None else None
    score_rows = SCORE_ROWS if predict is None else chunk
    predict = predict or model.scorer.predict
    totals = dict.fromkeys(("scored", "flagged", "pending", "reasons", "review", "block", "listed", "rule_errors"), 0)

    def settle(write: tuple[Future, int, int, dict[str, int]]) -> None:  # totals: pages whose scores are committed
        future, flagged, rows, decided = write
        written = future.result()  # raises what the write raised
        totals["scored"] += written
        totals["flagged"] += flagged
        totals["pending"] += rows
        for name, count in decided.items():
            totals[name] += count

    def score_pages() -> None:
        baseline = model.baseline(engine)

        def reasons_for(features: np.ndarray) -> np.ndarray:
            return attribute(predict, features, baseline, network, chunk)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraud-score-writer") as writer:
            last = None
            try:
                for page in read_ahead(
                    pending_pages(engine, model.feature_version, model.version, selection, page_rows)
                ):
                    scores = scores_of(predict, page.features, score_rows)
                    flags = scores >= model.threshold
                    # decided while PostgreSQL takes the previous page's rows (the writer waits on it, GIL released)
                    verdicts, reasons, decided = decide_page(
                        engine, model, ruleset, page, scores, flags, reasons_top_share, reasons_for
                    )
                    if last is not None:
                        settle(last)  # at most one page waiting: bounded memory, and errors surface early
                        last = None
                    last = (
                        writer.submit(
                            write_scores,
                            engine,
                            model.version,
                            model.threshold,
                            page.trans_nums,
                            scores,
                            flags,
                            reasons,
                            verdicts,
                        ),
                        int(flags.sum()),
                        len(page.trans_nums),
                        decided,
                    )
            except BaseException:
                if last is not None and last[0].exception() is None:  # committed before the read failed
                    settle(last)
                raise
            if last is not None:
                settle(last)

    # a dropped connection (failover, restart, killed backend) restarts the read: it returns only what is still
    # unscored, and committed pages stay written once (ON CONFLICT DO NOTHING), so a retry never doubles a score
    for attempt in Retrying(
        retry=retry_if_exception(connection_lost),
        stop=stop_after_attempt(DB_ATTEMPTS),
        wait=wait_exponential(multiplier=0.2, max=5),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "scoring: database connection lost (%s); retrying", state.outcome.exception()
        ),
    ):
        with attempt:
            score_pages()
    return BatchResult(**totals, ruleset_version=ruleset.version)


def decide_page(
    engine: Engine,
    model: PromotedModel,
    ruleset: RuleSet,
    page: Page,
    scores: np.ndarray,
    flags: np.ndarray,
    top_share: float,
    reasons_for: Callable[[np.ndarray], np.ndarray],
) -> tuple[list[Verdict], list[str | None], dict[str, int]]:
    """A scored page's decisions and the reasons' JSON of the transactions that need them (None for the others),
    with the counts (decisions, transactions given reasons)."""
    verdicts = decide_many(
        ruleset,
        page.features,
        page.amounts,
        page.categories,
        page.merchants,
        page.card_tokens,
        scores,
        model.threshold,
        entries_in_force(engine),
    )
    counts = Counter(v.outcome.value for v in verdicts)
    decided = {
        "review": counts["review"],
        "block": counts["block"],
        "listed": sum(is_list_ref(v.rule) for v in verdicts),
        "rule_errors": sum(len(v.errors) for v in verdicts),
    }
    chosen = np.flatnonzero(needs_reasons(scores, flags, verdicts, top_share))
    reasons: list[str | None] = [None] * len(scores)
    if len(chosen):
        texts = reasons_json(reasons_for(page.features[chosen]), FEATURE_NAMES)
        for row, text in zip(chosen.tolist(), texts, strict=True):
            reasons[row] = text
    decided["reasons"] = len(chosen)
    return verdicts, reasons, decided


def needs_reasons(scores: np.ndarray, flags: np.ndarray, verdicts: Sequence[Verdict], top_share: float) -> np.ndarray:
    """Which transactions get top reasons: the ones their readers show (the flagged: the report, customer alerts;
    a review or block decision: review cases), and the `top_share` of the page with the highest scores (at least
    one transaction when the share is above 0; ties at the cut are all in)."""
    chosen = flags | np.fromiter((v.outcome in ACTED_ON for v in verdicts), dtype=bool, count=len(verdicts))
    if top_share > 0 and len(scores):
        keep = min(len(scores), math.ceil(top_share * len(scores)))
        cut = np.partition(scores, len(scores) - keep)[len(scores) - keep]
        chosen |= scores >= cut
    return chosen


def connection_lost(error: BaseException) -> bool:
    """A dropped or refused database connection, worth a retry (not a bad query or a constraint)."""
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error.orig, psycopg.OperationalError)
    return isinstance(error, psycopg.OperationalError)
