"""Scoring benchmarks (issue 7), in the benchmark's own FRAUD_HOME:

- batch: PostgreSQL → LiteRT → `fraud_score` end to end (`fraud.serving.batch.score_selection`: read the feature
  vectors, score each transaction with its top-3 reasons, write the rows), against the same path with the
  same model run by Keras `model.predict`; plus the LiteRT scoring call alone;
- real-time: `fraud serve` in a subprocess on loopback, 32 concurrent connections (wrk) posting raw
  transactions of known cards for 30 s (each sends its next request when the previous answer arrives);
  p50/p99 latency and errors, beside the in-process latency of the LiteRT call alone and of the online-feature
  query alone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fraud.core.settings import Settings
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION

REPO = Path(__file__).resolve().parents[1]
REQUEST_FIELDS = ("cc_num", "merchant", "category", "amt", "lat", "long", "city_pop", "dob", "merch_lat", "merch_long")


def load_world(
    engine: Engine, settings: Settings, rows: int, batch_id: str, seed: int = 1, features: str = "random"
) -> pd.DataFrame:
    """Simulated transactions loaded like the ETL loads them (cards tokenized with the settings' key). Their
    feature vectors are random (`features="random"`: the tests' default; the model's quality is not measured) or
    the transactions' own, computed by the pandas implementation of the ETL's features (`"computed"`: the
    benchmark's, because the attribution's cost depends on how many features sit at their baseline). Returns the
    loaded rows with their raw card numbers, for real-time requests on known cards."""
    from fraud.core.privacy import card_token, normalize_card_number
    from fraud.db.load import load_processed
    from fraud.ingest.simulate import build_world, simulate_days

    world = build_world(max(200, rows // 40), seed=seed)
    days = simulate_days(world, date(2026, 1, 1), 20, 0.01, 2.0)
    frame = pd.concat([d.transactions for d in days]).head(rows).reset_index(drop=True)
    key = settings.token_key()
    digits = frame["cc_num"].map(normalize_card_number)
    frame = frame.assign(
        trans_num=batch_id + "-" + frame["trans_num"],
        event_time=pd.to_datetime(frame["trans_date_trans_time"], utc=True),
        card_token=digits.map(lambda d: card_token(d, key)),
        last4=digits.str[-4:],
        batch_id=batch_id,
    )
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


def publish(settings: Settings, version: str, keras_model) -> None:
    import json

    from fraud.core.storage import object_store
    from fraud.model import registry
    from fraud.model.network import export

    files = export(keras_model)
    files["metadata.json"] = json.dumps(
        {"version": version, "threshold": 0.5, "feature_names": list(FEATURE_NAMES), "feature_version": FEATURE_VERSION}
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
    from fraud.serving.batch import PAGE_ROWS, ModelCache, score_selection

    model = ModelCache().get(settings)
    model.baseline(engine)
    selection = Selection(batch_id=batch_id)
    started = time.perf_counter()
    litert = score_selection(engine, model, selection)
    litert_seconds = time.perf_counter() - started

    as_keras = replace(model, version=model.version + "-keras")
    started = time.perf_counter()
    keras = score_selection(
        engine,
        as_keras,
        selection,
        chunk=PAGE_ROWS,
        predict=lambda x: keras_model.predict(x, batch_size=len(x), verbose=0).reshape(-1),
    )
    keras_seconds = time.perf_counter() - started
    assert litert.scored == keras.scored == litert.pending, (litert, keras)

    def keras_call(x: np.ndarray) -> np.ndarray:
        return np.asarray(keras_model.predict_on_batch(x)).reshape(-1)

    baseline = model.baseline(engine)
    calls = []
    for predict, chunk in ((model.scorer.predict, CHUNK_TRANSACTIONS), (keras_call, PAGE_ROWS)):
        started = time.perf_counter()
        for start in range(0, len(features), PAGE_ROWS):  # page by page, as the scorer calls it
            score_and_attribute(predict, features[start : start + PAGE_ROWS], baseline, chunk)
        calls.append(time.perf_counter() - started)
    return BatchFigures(litert.pending, litert_seconds, keras_seconds, *calls)


def requests_for(frame: pd.DataFrame, count: int, seed: int = 2) -> list[dict]:
    """Raw transactions of known cards at known merchants, after the loaded history (new trans_nums)."""
    rng = np.random.default_rng(seed)
    picks = frame.iloc[rng.integers(0, len(frame), count)]
    start = frame["event_time"].max() + pd.Timedelta(hours=1)
    out = []
    for i, row in enumerate(picks.to_dict("records")):
        when = start + pd.Timedelta(seconds=int(rng.integers(0, 86_400)))
        body = {k: row[k] for k in REQUEST_FIELDS if row.get(k) is not None and row[k] == row[k]}
        out.append(
            {
                **body,
                "trans_num": f"rt-{i}",
                "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                "amt": round(float(rng.gamma(2.0, 40.0)), 2),
            }
        )
    return out


def percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies) * 1000, q)) if latencies else float("nan")


@dataclass(frozen=True)
class Load:
    """What a closed-loop load run measured: requests answered 2xx, their latency percentiles, and errors by kind."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]


# wrk's Lua hooks: each request posts the next body of the file (the token from the environment, not argv), and
# done() prints the figures as one JSON line, latencies in microseconds.
_WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/score", headers, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def load_test(url: str, token: str, bodies: list[dict], clients: int, seconds: int) -> Load:
    """`clients` concurrent connections for `seconds`, each posting its next body as soon as the previous answer
    arrived, driven by wrk (Debian's package): a C load generator costs the 2 cores it shares with the server
    about nothing, where a Python one (httpx) took 5.8 ms of CPU a request, more than the server itself."""
    import json
    import shutil
    import tempfile

    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="fraud-wrk-") as folder:
        script, lines = Path(folder) / "post.lua", Path(folder) / "bodies.jsonl"
        script.write_text(_WRK_SCRIPT)
        lines.write_text("".join(json.dumps(body) + "\n" for body in bodies))
        done = subprocess.run(
            [wrk, "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(script), url],
            env={**os.environ, "WRK_BODIES": str(lines), "WRK_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    found = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
    result = json.loads(found[0].split(" ", 1)[1])
    errors = {kind: result[kind] for kind in ("connect", "read", "write", "status", "timeout") if result[kind]}
    return Load(
        result["requests"] - result["status"],
        result["duration_us"] / 1e6,
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        errors,
    )


def wait_healthy(
    url: str,
    process: subprocess.Popen,
    timeout: float = 60.0,
    path: str = "/health",
    interval: float = 0.2,
    log: Path | None = None,
) -> None:
    """Poll `url + path` until it answers 200; fail at once (with the tail of `log`) if the server exits."""
    import httpx

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args[2:4]))} exited with {process.returncode}\n{tail()}")
        try:
            if httpx.get(f"{url}{path}", timeout=max(1.0, interval)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url}{path} did not answer within {timeout:.0f} s\n{tail()}")


def start_server(settings: Settings, port: int, token: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "FRAUD_HOME": str(settings.home),
        "FRAUD_MODEL_NAME": settings.model_name,
        "FRAUD_API_TOKEN": token,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fraud.app.cli", "serve", "--port", str(port), "--rate-limit", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass(frozen=True)
class RealtimeFigures:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    litert_p50_ms: float
    litert_p99_ms: float
    query_p50_ms: float
    query_p99_ms: float


def in_process_latencies(settings: Settings, bodies: list[dict], repeat: int = 2000) -> tuple[list[float], list[float]]:
    """One at a time, in this process: the LiteRT call (a row and its occluded copies), and the online-feature query."""
    from fraud.db.engine import get_engine
    from fraud.features.online import online_features, parse_transaction
    from fraud.model.attribution import score_and_attribute
    from fraud.serving.batch import ModelCache

    engine = get_engine(settings)
    model = ModelCache().get(settings)
    baseline = model.baseline(engine)
    key = settings.token_key()
    transactions = [parse_transaction(b, key) for b in bodies[:repeat]]
    query, litert = [], []
    with engine.connect() as connection:
        for tx in transactions:
            started = time.perf_counter()
            features, _ = online_features(connection.connection.driver_connection, tx)
            query.append(time.perf_counter() - started)
            started = time.perf_counter()
            score_and_attribute(model.scorer.predict, features[None, :], baseline)
            litert.append(time.perf_counter() - started)
    return litert, query


def bench_realtime(
    settings: Settings, frame: pd.DataFrame, port: int, clients: int = 32, seconds: int = 30
) -> RealtimeFigures:
    bodies = requests_for(frame, 5_000)
    litert, query = in_process_latencies(settings, bodies)
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    process = start_server(settings, port, token)
    try:
        wait_healthy(url, process)
        load_test(url, token, bodies[:200], clients, 2)  # warm-up: connections, plans, caches
        load = load_test(url, token, bodies, clients, seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return RealtimeFigures(
        load.requests + sum(load.errors.values()),
        load.seconds,
        load.p50_ms,
        load.p99_ms,
        load.errors,
        percentile_ms(litert, 50),
        percentile_ms(litert, 99),
        percentile_ms(query, 50),
        percentile_ms(query, 99),
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(console, settings: Settings, engine: Engine, rows: int = 100_000) -> list[tuple[str, ...]]:
    """Rows for the benchmark table: (benchmark, rows, baseline, baseline s, measured s, ratio)."""
    with console.status(f"scoring: loading {rows:,} processed transactions"):
        frame = load_world(engine, settings, rows, "bench-scoring", features="computed")
        features = np.stack(frame["features"].to_numpy()).astype(np.float32)
        keras_model = mlp(features[:10_000])
        publish(settings, "bench-mlp", keras_model)
    with console.status("scoring: batch, LiteRT vs Keras, end to end"):
        batch = bench_batch(engine, settings, keras_model, "bench-scoring", features)
    with console.status("scoring: real-time API, 32 clients for 30 s"):
        realtime = bench_realtime(settings, frame, free_port())
    per_second = batch.rows / batch.litert_seconds
    console.print(
        f"batch scoring: the call alone (score + occlusion for {batch.rows:,} rows): "
        f"LiteRT {batch.litert_call_seconds:.2f} s, Keras predict_on_batch {batch.keras_call_seconds:.2f} s; "
        f"end to end {per_second:,.0f} transactions/s (goal 50,000)"
    )
    console.print(
        f"real-time API: {realtime.requests:,} requests in {realtime.seconds:.0f} s "
        f"({realtime.requests / realtime.seconds:,.0f}/s), p50 {realtime.p50_ms:.1f} ms, p99 {realtime.p99_ms:.1f} ms "
        f"(goal 20 ms), errors {realtime.errors or 0}; in process, one at a time: LiteRT call p50 "
        f"{realtime.litert_p50_ms:.2f} / p99 {realtime.litert_p99_ms:.2f} ms, online-feature query p50 "
        f"{realtime.query_p50_ms:.2f} / p99 {realtime.query_p99_ms:.2f} ms"
    )
    return [
        (
            "batch scoring DB → LiteRT → fraud_score (with reasons)",
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
            "scoring call alone (score + reasons), no database",
            f"{batch.rows:,}",
            "Keras predict_on_batch",
            f"{batch.keras_call_seconds:.2f}",
            f"{batch.litert_call_seconds:.2f}",
            f"{batch.keras_call_seconds / batch.litert_call_seconds:.1f}x",
        ),
        (
            "real-time API p50 / p99, 32 clients, 30 s",
            f"{realtime.requests:,}",
            "LiteRT call alone p50 / p99",
            f"{realtime.litert_p50_ms:.2f} / {realtime.litert_p99_ms:.2f} ms",
            f"{realtime.p50_ms:.1f} / {realtime.p99_ms:.1f} ms",
            f"errors: {sum(realtime.errors.values())}",
        ),
    ]
