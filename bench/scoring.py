"""Batch scoring benchmark (issue 7), in the benchmark's own FRAUD_HOME: PostgreSQL → LiteRT → `fraud_score` end
to end (`fraud.serving.batch.score_selection`: read the feature vectors, score each transaction with its top-3
reasons, write the rows), against the same path with the same model run by Keras `model.predict`; plus the LiteRT
scoring call alone. Also the worlds and requests the real-time API's benchmark (bench/api.py) and the tests load.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fraud.core.settings import Settings
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION

FLAGGED_SHARE = 0.01  # the share of the batch the benchmark's model flags (issue 24: "the ~1% that are flagged")
REQUEST_FIELDS = ("cc_num", "merchant", "category", "amt", "lat", "long", "city_pop", "dob", "merch_lat", "merch_long")


def as_loaded(raw: pd.DataFrame, key: bytes, batch_id: str) -> pd.DataFrame:
    """Simulated raw rows as the ETL loads them: trans_nums of the batch, UTC event times, tokenized cards."""
    from fraud.core.privacy import card_token, normalize_card_number

    digits = raw["cc_num"].map(normalize_card_number)
    return raw.assign(
        trans_num=batch_id + "-" + raw["trans_num"],
        event_time=pd.to_datetime(raw["trans_date_trans_time"], utc=True),
        card_token=digits.map(lambda d: card_token(d, key)),
        last4=digits.str[-4:],
        batch_id=batch_id,
    )


def load_world(
    engine: Engine, settings: Settings, rows: int, batch_id: str, seed: int = 1, features: str = "random"
) -> pd.DataFrame:
    """Simulated transactions loaded like the ETL loads them (cards tokenized with the settings' key). Their
    feature vectors are random (`features="random"`: the tests' default; the model's quality is not measured) or
    the transactions' own, computed by the pandas implementation of the ETL's features (`"computed"`: the
    benchmark's, because the attribution's cost depends on how many features sit at their baseline). Returns the
    loaded rows with their raw card numbers, for real-time requests on known cards."""
    from fraud.db.load import load_processed
    from fraud.ingest.simulate import build_world, simulate_days

    world = build_world(max(200, rows // 40), seed=seed)
    days = simulate_days(world, date(2026, 1, 1), 20, 0.01, 2.0)
    frame = pd.concat([d.transactions for d in days]).head(rows).reset_index(drop=True)
    frame = as_loaded(frame, settings.token_key(), batch_id)
    if features == "computed":
        from bench.pandas_features import pandas_features

        labels = pd.concat([d.labels for d in days]).assign(trans_num=lambda f: batch_id + "-" + f["trans_num"])
        computed = pandas_features(frame, labels[labels["trans_num"].isin(frame["trans_num"])]).set_index("trans_num")
        vectors = computed.loc[frame["trans_num"], list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    else:
        vectors = np.random.default_rng(seed).random((len(frame), len(FEATURE_NAMES)))
    frame = frame.assign(features=list(vectors))
    load_processed(engine, frame, pd.DataFrame(columns=["trans_num", "is_fraud", "labelled_at"]), [])
    with engine.begin() as connection:  # what autovacuum does within a minute of a load this size: planner statistics
        connection.exec_driver_sql(
            "ANALYZE fact_transaction, transaction_features, dim_card, dim_merchant, transaction_label"
        )
    return frame


def mlp(features: np.ndarray):
    """The training code's network (normalisation inside), untrained: speed does not depend on the weights."""
    from fraud.model.network import _build

    return _build(features)


def publish(settings: Settings, version: str, keras_model, threshold: float = 0.5) -> None:
    import json

    from fraud.core.storage import object_store
    from fraud.model import registry
    from fraud.model.network import export

    files = export(keras_model)
    files["metadata.json"] = json.dumps(
        {
            "version": version,
            "threshold": threshold,
            "feature_names": list(FEATURE_NAMES),
            "feature_version": FEATURE_VERSION,
        }
    ).encode()
    store = object_store(settings, settings.models_bucket)
    registry.publish(store, settings.model_name, version, files)
    registry.promote(store, settings.model_name, version)


@dataclass(frozen=True)
class BatchFigures:
    rows: int
    litert_seconds: float
    keras_seconds: float
    litert_call_seconds: float  # the scoring call alone (rows and their occluded copies), no database
    keras_call_seconds: float  # the same with the Keras model called directly (`predict_on_batch`), no database
    undecided_seconds: float  # the LiteRT path end to end with an empty rule set: what the decisions cost
    reasons_share: float  # the share of the transactions the LiteRT path gave top reasons (flagged, reviewed, blocked)
    # the scorer process's CPU (all its threads) during the LiteRT run: steadier than the wall time on a shared
    # machine (PostgreSQL's CPU is not in it)
    litert_cpu_seconds: float


def bench_batch(engine: Engine, settings: Settings, keras_model, batch_id: str, features: np.ndarray) -> BatchFigures:
    """The same batch scored twice end to end, by two model versions of the same network: LiteRT, then Keras;
    then the scoring call alone on the batch's feature vectors (`features`), by LiteRT and by the Keras model
    called directly (`predict_on_batch`, the fastest way Keras offers).

    Each runner gets the call size that suits it best (measured on 100,000 transactions, 2026-11-26): LiteRT
    chunks of 512 transactions; Keras a whole page (5,000 transactions and their copies) per call, and
    `model.predict` in one batch, since each call costs it a data pipeline and a loop: with chunks of 2,048 and
    batches of 4,096, as this benchmark ran until then, its calls took 9.7-11.2 s against 3.1-4.5 s."""
    from fraud.db.scores import Selection
    from fraud.model.attribution import CHUNK_TRANSACTIONS, score_and_attribute
    from fraud.rules import RuleSet, live_rules
    from fraud.serving.batch import PAGE_ROWS, ModelCache, score_selection

    no_rules = RuleSet("none", ())  # the baseline of what the decisions cost

    model = ModelCache().get(settings)
    model.baseline(engine)
    selection = Selection(batch_id=batch_id)
    rules = live_rules(settings.rules_path)
    started, cpu = time.perf_counter(), time.process_time()
    litert = score_selection(engine, model, selection, rules)
    litert_seconds, litert_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    undecided = score_selection(engine, replace(model, version=model.version + "-norules"), selection, no_rules)
    undecided_seconds = time.perf_counter() - started

    as_keras = replace(model, version=model.version + "-keras")
    started = time.perf_counter()
    keras = score_selection(
        engine,
        as_keras,
        selection,
        rules,
        chunk=PAGE_ROWS,
        predict=lambda x: keras_model.predict(x, batch_size=len(x), verbose=0).reshape(-1),
    )
    keras_seconds = time.perf_counter() - started
    assert litert.scored == keras.scored == undecided.scored == litert.pending, (litert, keras, undecided)

    def keras_call(x: np.ndarray) -> np.ndarray:
        return np.asarray(keras_model.predict_on_batch(x)).reshape(-1)

    baseline = model.baseline(engine)
    calls = []
    for predict, chunk in ((model.scorer.predict, CHUNK_TRANSACTIONS), (keras_call, PAGE_ROWS)):
        started = time.perf_counter()
        for start in range(0, len(features), PAGE_ROWS):  # page by page, as the scorer calls it
            score_and_attribute(predict, features[start : start + PAGE_ROWS], baseline, chunk)
        calls.append(time.perf_counter() - started)
    return BatchFigures(
        litert.pending,
        litert_seconds,
        keras_seconds,
        *calls,
        undecided_seconds,
        litert.reasons / litert.pending,
        litert_cpu,
    )


def run(console, settings: Settings, engine: Engine, rows: int = 100_000) -> tuple[list[tuple[str, ...]], dict]:
    """Rows for the benchmark table (benchmark, rows, baseline, baseline s, measured s, ratio) and the figures."""
    with console.status(f"scoring: loading {rows:,} processed transactions"):
        frame = load_world(engine, settings, rows, "bench-scoring", features="computed")
        features = np.stack(frame["features"].to_numpy()).astype(np.float32)
        keras_model = mlp(features[:10_000])
        # the untrained network's scores sit anywhere around 0.5 (4% to 88% of them over 0.5 in two runs): the
        # threshold flags FLAGGED_SHARE of them, as a trained model's alert budget does, so the share of
        # transactions given reasons is a production one
        scores = keras_model.predict(features, batch_size=8192, verbose=0).reshape(-1)
        publish(settings, "bench-mlp", keras_model, float(np.quantile(scores, 1 - FLAGGED_SHARE)))
    with console.status("scoring: batch, LiteRT vs Keras vs no rules, end to end"):
        batch = bench_batch(engine, settings, keras_model, "bench-scoring", features)
    per_second = batch.rows / batch.litert_seconds
    table = [
        (
            "batch scoring DB → LiteRT → decisions → fraud_score",
            f"{batch.rows:,}",
            "same path, Keras predict",
            f"{batch.keras_seconds:.2f}",
            f"{batch.litert_seconds:.2f}",
            f"{batch.keras_seconds / batch.litert_seconds:.1f}x",
        ),
        (
            "batch scoring end to end throughput",
            f"{batch.rows:,}",
            "(goal: 50,000 tx/s)",
            "",
            f"{batch.litert_seconds:.2f}",
            f"{per_second:,.0f} tx/s",
        ),
        (
            "decisions' cost: live rules + lists",
            f"{batch.rows:,}",
            "same LiteRT path, no rules",
            f"{batch.undecided_seconds:.2f}",
            f"{batch.litert_seconds:.2f}",
            f"{batch.litert_seconds / batch.undecided_seconds:.2f}x time",
        ),
        (
            "scoring call alone (score + reasons), no database",
            f"{batch.rows:,}",
            "Keras predict_on_batch",
            f"{batch.keras_call_seconds:.2f}",
            f"{batch.litert_call_seconds:.2f}",
            f"{batch.keras_call_seconds / batch.litert_call_seconds:.1f}x",
        ),
    ]
    figures = asdict(batch) | {
        "transactions_per_s": per_second,
        "ratio_vs_keras": batch.keras_seconds / batch.litert_seconds,
        "decisions_time_ratio": batch.litert_seconds / batch.undecided_seconds,
    }
    return table, figures


def requests_for(frame: pd.DataFrame, count: int, seed: int = 2) -> list[dict]:
    """Raw transactions of known cards at known merchants, after the loaded history (new trans_nums)."""
    rng = np.random.default_rng(seed)
    picks = frame.iloc[rng.integers(0, len(frame), count)]
    start = frame["event_time"].max() + pd.Timedelta(hours=1)
    out = []
    for row in picks.to_dict("records"):
        when = start + pd.Timedelta(seconds=int(rng.integers(0, 86_400)))
        body = {k: row[k] for k in REQUEST_FIELDS if row.get(k) is not None and row[k] == row[k]}
        out.append(
            {
                **body,
                "trans_num": f"rt-{uuid.uuid4().hex}",  # decisions are recorded by trans_num: never reuse one
                "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                "amt": round(float(rng.gamma(2.0, 40.0)), 2),
            }
        )
    return out
