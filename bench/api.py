"""The real-time API benchmark (`python -m bench --only api`), in the benchmark's own FRAUD_HOME: `fraud serve` in
a subprocess on a free loopback port, its own world loaded and model promoted (bench/scoring.py's `load_world`,
`requests_for`, `publish`), then

- **steady load**: 200 requests/s offered for 60 s, open loop: requests leave on a fixed schedule whatever the
  answers do, so the latency is the server's at that rate, not that of a queue the load generator builds itself
  (a closed loop of N connections measures N / throughput, Little's law);
- **saturation**: the offered rate stepped up (10 s a step) until a step fails; the saturation rate is the
  highest offered rate answered with p99 < 50 ms, no error, and at least 97% of it achieved;
- **the in-process cost of each step** of one request (no HTTP, one at a time, in this process): the request
  model, validate + tokenize, the request digest, the read round trip, the feature vector, the model and its
  reasons, the record round trip; the baseline the HTTP figures are read against.

The load comes from wrk (Debian's package) with a Lua pacing script (`PACED_SCRIPT`), not `hey`: every request
must carry its own trans_num (the API records each decision and answers a trans_num already decided with the
recorded answer, a replay), and hey sends one body. Each request posts the next line of a file of raw
transactions, each with a fresh trans_num (uuid hex); the token comes from the environment, never argv.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fraud.core.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STEADY_RATE = 200  # requests/s offered
STEADY_SECONDS = 60
STEADY_P99_GOAL_MS = 15.0
SATURATION_RATES = (200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000)
SATURATION_SECONDS = 10
SATURATION_P99_MS = 50.0  # a step passes with p99 under this, no error, and the offered rate sustained
SATURATION_GOAL = 1000  # requests/s
SUSTAINED = 0.97  # the achieved rate must reach this share of the offered rate
TURN_MS = 200  # each connection's average turn: connections = rate × TURN_MS, far above any latency expected
STEP_COSTS_REPEAT = 2000


# --- the server ---------------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def start_server(settings: Settings, port: int, token: str, workers: int = 1) -> subprocess.Popen:
    """`fraud serve` on 127.0.0.1:`port` without rate limit, the token from the environment."""
    env = {
        **os.environ,
        "FRAUD_HOME": str(settings.home),
        "FRAUD_MODEL_NAME": settings.model_name,
        "FRAUD_API_TOKEN": token,
    }
    command = [sys.executable, "-m", "fraud.app.cli", "serve", "--port", str(port), "--rate-limit", "0"]
    if workers != 1:
        command += ["--workers", str(workers)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


# --- the load -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one wrk run measured. `requests`: answered 2xx; `requests_per_s` their rate over the run; `errors` by
    kind (`status`: non-2xx answers; connect/read/write/timeout: socket errors; `reused`: bodies sent twice, the
    file being too short: replays). `late`: requests that left more than 10 ms after their slot, every
    connection being busy (the server queueing about TURN_MS). `offered_per_s` is None for a closed loop."""

    offered_per_s: float | None
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    late: int = 0

    @property
    def sustained(self) -> bool:
        return self.offered_per_s is None or self.requests_per_s >= SUSTAINED * self.offered_per_s

    def passes(self, p99_ms: float) -> bool:
        return self.p99_ms < p99_ms and not self.errors and self.sustained

    def figures(self) -> dict:
        return {**asdict(self), "sustained": self.sustained}


# wrk's Lua hooks for an open loop. wrk calls delay() before each request of a connection (its first included) and
# waits the milliseconds it returns; it does not say which connection asks, so the schedule is global: the n-th
# call takes slot n, due at start + n × interval, and a connection waits until its slot is due. With rate ×
# TURN_MS connections each one holds about one slot in TURN_MS / interval, so a slot finds a connection free
# unless answers take about TURN_MS: a request that leaves more than 10 ms after its slot counts as `late`.
# request() posts the next body of the file; done() prints the figures as one JSON line, latencies in µs (from
# the request written to the answer read).
PACED_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } timespec;
int clock_gettime(int, timespec *);
]]
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")}
local interval = 1000 / tonumber(os.getenv("WRK_RATE"))
local start, slot, sent = nil, 0, 0
late, reused = 0, 0  -- globals: done() reads them with thread:get

delay = function()
  local now = now_ms()
  if start == nil then start = now end
  local wait = start + slot * interval - now
  slot = slot + 1
  if wait < -10 then late = late + 1 end
  if wait <= 0 then return 0 end
  return math.floor(wait + 0.5)
end

request = function()
  sent = sent + 1
  if sent > #bodies then reused = reused + 1 end
  return wrk.format("POST", "/v1/score", headers, bodies[((sent - 1) % #bodies) + 1])
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

done = function(summary, latency, requests)
  local e, l, r = summary.errors, 0, 0
  for _, thread in ipairs(threads) do l = l + thread:get("late"); r = r + thread:get("reused") end
  io.write(string.format('WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "late": %d, "reused": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect, e.read,
    e.write, e.status, e.timeout, l, r))
end
"""

# the same hooks for a closed loop: each connection posts its next body as soon as the previous answer arrived
CLOSED_SCRIPT = """
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
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "late": 0, "reused": 0}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.connect, e.read,
    e.write, e.status, e.timeout))
end
"""


def fresh_bodies(pool: list[dict], count: int) -> list[dict]:
    """`count` raw transactions taken in turn from `pool`, each with a trans_num never sent before (uuid hex)."""
    return [{**pool[i % len(pool)], "trans_num": uuid.uuid4().hex} for i in range(count)]


def run_wrk(
    url: str,
    token: str,
    bodies: list[dict],
    connections: int,
    seconds: float,
    rate: float | None = None,
) -> Load:
    """wrk (one thread, a C event loop: it costs the 2 cores it shares with the server little, where a Python
    generator took more CPU a request than the server) for `seconds` on `connections` connections: open loop at
    `rate` requests/s (`PACED_SCRIPT`), or closed loop when `rate` is None (`CLOSED_SCRIPT`)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="fraud-wrk-") as folder:
        script, lines = Path(folder) / "post.lua", Path(folder) / "bodies.jsonl"
        script.write_text(CLOSED_SCRIPT if rate is None else PACED_SCRIPT)
        lines.write_text("".join(json.dumps(body) + "\n" for body in bodies))
        env = {**os.environ, "WRK_BODIES": str(lines), "WRK_TOKEN": token, "WRK_RATE": str(rate or 0)}
        command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
        done = subprocess.run(
            [*command, "-s", str(script), url], env=env, capture_output=True, text=True, timeout=seconds + 60
        )
    found = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
    result = json.loads(found[0].split(" ", 1)[1])
    kinds = ("connect", "read", "write", "status", "timeout", "reused")
    answered = result["requests"] - result["status"]
    duration = result["duration_us"] / 1e6
    return Load(
        offered_per_s=rate,
        connections=connections,
        seconds=duration,
        requests=answered,
        requests_per_s=answered / duration if duration else 0.0,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors={kind: result[kind] for kind in kinds if result[kind]},
        late=result["late"],
    )


def load_test(url: str, token: str, bodies: list[dict], clients: int, seconds: float) -> Load:
    """Closed loop: `clients` connections for `seconds`, each posting its next body (cycling through `bodies`)
    as soon as the previous answer arrived. Bodies sent twice are replays: give enough distinct trans_nums."""
    return run_wrk(url, token, bodies, clients, seconds)


def connections_for(rate: float) -> int:
    return max(40, min(1000, math.ceil(rate * TURN_MS / 1000)))


def paced_load(url: str, token: str, pool: list[dict], rate: float, seconds: float) -> Load:
    """Open loop: `rate` requests/s for `seconds`, each request a transaction of `pool` with a fresh trans_num."""
    connections = connections_for(rate)
    bodies = fresh_bodies(pool, math.ceil(rate * seconds * 1.05) + connections + 100)
    return run_wrk(url, token, bodies, connections, seconds, rate)


def saturation(
    url: str,
    token: str,
    pool: list[dict],
    rates: tuple[int, ...] = SATURATION_RATES,
    seconds: float = SATURATION_SECONDS,
    p99_ms: float = SATURATION_P99_MS,
) -> tuple[float | None, list[Load]]:
    """Each offered rate of `rates` in turn for `seconds`, stopping at the first step that fails (p99 ≥ `p99_ms`,
    an error, or under 97% of the rate achieved). Returns (the last passing rate, None if the first fails; the
    steps run, the failing one last)."""
    passed, steps = None, []
    for rate in rates:
        step = paced_load(url, token, pool, rate, seconds)
        steps.append(step)
        if not step.passes(p99_ms):
            break
        passed = rate
    return passed, steps


# --- the in-process cost of each step -------------------------------------------------------------------------

STEPS = {
    "request_model": "request body model (pydantic RawTransaction, FastAPI's validation)",
    "parse": "validate + tokenize (parse_transaction)",
    "digest": "request digest (SHA-256 of the validated transaction)",
    "read": "read round trip (DECISION_SQL: history + prior decision, prepared)",
    "features": "feature vector (feature_vector)",
    "decide": "model + top-3 reasons (decide: LiteRT call with occluded copies)",
    "record": "record round trip (RECORD_SQL INSERT, autocommit, prepared)",
}


def step_costs(settings: Settings, bodies: list[dict], warm_up: int = 50) -> dict[str, dict[str, float]]:
    """Each step of `RealtimeScorer.score_async` timed alone, one request at a time, in this process on one
    psycopg connection (autocommit, statements prepared as the server's): p50 and p99 in ms of each over
    `bodies` (each a trans_num never decided, so every record is an INSERT), after `warm_up` untimed ones, and
    of their sum (`total`)."""
    from datetime import UTC, datetime

    import psycopg
    from psycopg.rows import dict_row
    from sqlalchemy.engine import make_url

    from fraud.db.decisions import DECISION_SQL, RECORD_SQL
    from fraud.db.engine import database_url, get_engine
    from fraud.features.online import feature_vector, history_from_row, history_parameters, parse_transaction
    from fraud.rules import live_rules, parse_hits
    from fraud.serving.batch import ModelCache
    from fraud.serving.realtime import decide, decision_record, request_digest
    from fraud.serving.request import RawTransaction

    key = settings.token_key()
    model = ModelCache().get(settings)
    baseline = model.baseline(get_engine(settings))
    rules = live_rules(settings.rules_path)
    conninfo = make_url(database_url(settings)).set(drivername="postgresql").render_as_string(hide_password=False)
    times: dict[str, list[float]] = {name: [] for name in STEPS}
    clock = time.perf_counter
    with psycopg.connect(conninfo, autocommit=True) as connection, connection.cursor(row_factory=dict_row) as cursor:
        for n, body in enumerate(bodies):
            t0 = started = clock()
            received_at = datetime.now(UTC)
            raw = RawTransaction.model_validate(body).model_dump(exclude_none=True)
            t1 = clock()
            tx = parse_transaction(raw, key)
            t2 = clock()
            digest = request_digest(tx)
            t3 = clock()
            cursor.execute(DECISION_SQL, history_parameters(tx) | {"trans_num": tx.trans_num}, prepare=True)
            row = cursor.fetchone()
            t4 = clock()
            history = history_from_row(row)
            features = feature_vector(tx, history)
            t5 = clock()
            decision = decide(tx, model, baseline, features, history, rules, parse_hits(row["listed"]))
            t6 = clock()
            record = decision_record(tx, decision, features, digest, received_at, "bench", started)
            cursor.execute(RECORD_SQL, record, prepare=True)
            t7 = clock()
            if row["prior"] is not None or cursor.rowcount != 1:
                raise RuntimeError(f"trans_num {tx.trans_num} was already decided: the step costs need new ones")
            if n >= warm_up:
                marks = (t0, t1, t2, t3, t4, t5, t6, t7)
                for name, a, b in zip(STEPS, marks[:-1], marks[1:], strict=True):
                    times[name].append(b - a)
    totals = np.sum([times[name] for name in STEPS], axis=0)
    return {
        name: {"p50_ms": float(np.percentile(values, 50) * 1000), "p99_ms": float(np.percentile(values, 99) * 1000)}
        for name, values in {**times, "total": totals}.items()
    }


# --- the phase ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiFigures:
    steady: Load
    saturation_per_s: float | None  # the last passing offered rate; None when the first step failed
    steps: list[Load]  # the saturation steps run, the failing one last (unless every rate passed)
    costs: dict[str, dict[str, float]]
    workers: int = 1

    @property
    def steady_met(self) -> bool:
        return self.steady.p99_ms <= STEADY_P99_GOAL_MS and not self.steady.errors and self.steady.sustained

    @property
    def saturation_met(self) -> bool:
        return (self.saturation_per_s or 0) >= SATURATION_GOAL

    @property
    def failing(self) -> Load | None:
        return self.steps[-1] if self.steps and not self.steps[-1].passes(SATURATION_P99_MS) else None

    def figures(self) -> dict:
        return {
            "workers": self.workers,
            "steady": self.steady.figures(),
            "steady_goal": {"p99_ms": STEADY_P99_GOAL_MS, "rate_per_s": STEADY_RATE, "met": self.steady_met},
            "saturation_per_s": self.saturation_per_s,
            "saturation_goal": {"rate_per_s": SATURATION_GOAL, "p99_ms": SATURATION_P99_MS, "met": self.saturation_met},
            "saturation_steps": [step.figures() for step in self.steps],
            "saturation_failing_step": self.failing.figures() if self.failing else None,
            "step_costs_ms": self.costs,
        }


def bench_api(
    settings: Settings,
    frame: pd.DataFrame,
    port: int,
    steady_rate: float = STEADY_RATE,
    steady_seconds: float = STEADY_SECONDS,
    rates: tuple[int, ...] = SATURATION_RATES,
    step_seconds: float = SATURATION_SECONDS,
    costs_repeat: int = STEP_COSTS_REPEAT,
    workers: int = 1,
    on_server=None,
) -> ApiFigures:
    """The step costs in process, then `fraud serve` under the steady load and the saturation steps. The model
    promoted in `settings` scores; `frame` is the loaded world (`load_world`) its requests come from.
    `on_server(pid)` is called once the server answers (a hook for a profiler)."""
    from bench.scoring import requests_for

    pool = requests_for(frame, 5_000)
    costs = step_costs(settings, fresh_bodies(pool, costs_repeat + 50))
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{port}"
    process = start_server(settings, port, token, workers)
    try:
        wait_healthy(url, process, timeout=120)
        if on_server is not None:
            on_server(process.pid)
        paced_load(url, token, pool, min(steady_rate, 200), 3)  # warm-up: connections, prepared plans, caches
        steady = paced_load(url, token, pool, steady_rate, steady_seconds)
        passed, steps = saturation(url, token, pool, rates, step_seconds)
    finally:
        stop_server(process)
    return ApiFigures(steady, passed, steps, costs, workers)


def describe(load: Load) -> str:
    rate = f"{load.offered_per_s:,.0f}/s offered, " if load.offered_per_s is not None else ""
    short = "" if load.sustained else f" (NOT sustained: under {SUSTAINED:.0%} of the offered rate)"
    return (
        f"{rate}{load.requests_per_s:,.0f}/s answered{short}, p50 {load.p50_ms:.1f} / p99 {load.p99_ms:.1f} ms, "
        f"errors {load.errors or 0}" + (f", {load.late:,} requests late" if load.late else "")
    )


def settle(engine: Engine) -> None:
    """What autovacuum and the checkpointer do within minutes of a bulk load, done before measuring, so the
    figures are the API's and not the load's after-effects: vacuum (visibility map) and a checkpoint."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE) fact_transaction, transaction_features, dim_card, dim_merchant")
        connection.exec_driver_sql("CHECKPOINT")


def run(
    console, settings: Settings, engine: Engine, rows: int = 100_000, workers: int = 1, **load
) -> tuple[list[tuple[str, ...]], dict]:
    """Table rows (benchmark, rows, baseline, baseline s, measured s, ratio) and the figures for --json: for the
    steady load and each saturation step its offered rate, p50, p99 and achieved requests/s (`Load.figures`).
    `load`: `bench_api`'s load arguments (rates, durations, the step costs' repeat), its defaults when absent."""
    from bench.scoring import load_world, mlp, publish

    with console.status(f"api: loading {rows:,} processed transactions and promoting a model"):
        frame = load_world(engine, settings, rows, "bench-api", seed=3, features="computed")
        features = np.stack(frame["features"].to_numpy()).astype(np.float32)
        publish(settings, "bench-api-mlp", mlp(features[:10_000]))
        settle(engine)
    steady_rate, steady_seconds = load.get("steady_rate", STEADY_RATE), load.get("steady_seconds", STEADY_SECONDS)
    with console.status(
        f"api: step costs in process, then {steady_rate:g}/s for {steady_seconds:g} s and saturation steps of "
        f"{load.get('step_seconds', SATURATION_SECONDS):g} s"
    ):
        api = bench_api(settings, frame, free_port(), workers=workers, **load)
    met = {True: "met", False: "NOT met"}
    console.print(
        f"real-time API, steady: {describe(api.steady)} (goal p99 ≤ {STEADY_P99_GOAL_MS:g} ms at {STEADY_RATE}/s: "
        f"{met[api.steady_met]})"
    )
    for step in api.steps:
        console.print(f"  saturation step: {describe(step)}")
    console.print(
        f"real-time API, saturation: {api.saturation_per_s or 0:,.0f} requests/s (p99 < {SATURATION_P99_MS:g} ms, no "
        f"error, sustained; goal {SATURATION_GOAL:,}/s: {met[api.saturation_met]})"
    )
    console.print(
        "in process, one at a time, p50 / p99 ms: "
        + "; ".join(f"{name} {c['p50_ms']:.3f} / {c['p99_ms']:.3f}" for name, c in api.costs.items())
    )
    total = api.costs["total"]
    failing = api.failing
    rows_out = [
        (
            f"real-time API p50 / p99, {steady_rate:g} req/s offered for {steady_seconds:g} s (open loop)",
            f"{api.steady.requests:,}",
            "the request's steps in process, p50 / p99",
            f"{total['p50_ms']:.2f} / {total['p99_ms']:.2f} ms",
            f"{api.steady.p50_ms:.1f} / {api.steady.p99_ms:.1f} ms",
            f"goal p99 {STEADY_P99_GOAL_MS:g} ms: {met[api.steady_met]}; errors {sum(api.steady.errors.values())}",
        ),
        (
            f"real-time API saturation (p99 < {SATURATION_P99_MS:g} ms, no error, ≥ {SUSTAINED:.0%} of the rate)",
            f"{sum(step.requests for step in api.steps):,}",
            "first failing step" if failing else "(every step passed)",
            describe(failing) if failing else "",
            f"{api.saturation_per_s or 0:,.0f} req/s",
            f"goal {SATURATION_GOAL:,}/s: {met[api.saturation_met]}",
        ),
    ]
    return rows_out, api.figures()
