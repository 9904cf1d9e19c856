"""The real-time API benchmark's building blocks on tiny sizes (bench/api.py), so `make bench` cannot rot:
correctness (an open loop at the rate asked, every request a new decision, the figures' shape), not timings."""

import numpy as np
from sqlalchemy import text

from bench.api import SATURATION_P99_MS, STEPS, bench_api, fresh_bodies, saturation
from bench.scoring import load_world, mlp, publish
from tests.helpers.homes import free_port


def decisions(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM realtime_decision")).scalar_one()


def test_fresh_bodies_never_repeat_a_trans_num():
    pool = [{"trans_num": "rt-0", "amt": 1.0}, {"trans_num": "rt-1", "amt": 2.0}]
    bodies = fresh_bodies(pool, 5)
    assert len({b["trans_num"] for b in bodies}) == 5 and [b["amt"] for b in bodies] == [1.0, 2.0, 1.0, 2.0, 1.0]


def test_api_benchmark_runs_small(settings, engine):
    mine = settings.model_copy(update={"model_name": "bench-api-test-mlp"})
    frame = load_world(engine, mine, 400, "bench-api-test", seed=33, features="computed")
    publish(mine, "bench-api-test-v1", mlp(np.stack(frame["features"].to_numpy()).astype(np.float32)))
    before = decisions(engine)

    api = bench_api(
        mine, frame, free_port(), steady_rate=20, steady_seconds=3, rates=(20,), step_seconds=2, costs_repeat=30
    )

    steady = api.steady
    assert steady.errors == {} and steady.offered_per_s == 20 and steady.connections >= 40
    assert 0 < steady.p50_ms <= steady.p99_ms
    # open loop: about the offered rate, whatever the latency (a closed loop of 40 connections would go far above)
    assert 20 * 0.7 <= steady.requests_per_s <= 20 * 1.3, steady
    # whether the one step passes depends on the machine's load (a timing): check that the verdict follows it
    [step] = api.steps
    assert step.offered_per_s == 20
    passed = step.passes(SATURATION_P99_MS)
    assert (api.saturation_per_s, api.failing) == ((20, None) if passed else (None, step))
    assert set(api.costs) == {*STEPS, "total"}
    assert all(0 < c["p50_ms"] <= c["p99_ms"] for c in api.costs.values())
    # every request a new decision, none a replay: 3 s of warm-up at 20/s, the steady run, the step, the costs
    recorded = decisions(engine) - before
    assert recorded >= 30 + 50 + steady.requests + api.steps[0].requests
    figures = api.figures()
    for load in (figures["steady"], *figures["saturation_steps"]):
        assert {"p50_ms", "p99_ms", "requests_per_s", "offered_per_s", "sustained"} <= set(load)
    assert figures["saturation_per_s"] == api.saturation_per_s and set(figures["step_costs_ms"]) == {*STEPS, "total"}


def test_saturation_stops_at_the_first_failing_step(settings, engine, monkeypatch):
    import bench.api

    calls = []

    def fake(url, token, pool, rate, seconds):
        calls.append(rate)
        p99 = 10.0 if rate < 600 else 80.0
        return bench.api.Load(rate, 40, seconds, int(rate * seconds), float(rate), 1.0, p99, {})

    monkeypatch.setattr(bench.api, "paced_load", fake)
    passed, steps = saturation("url", "token", [], (200, 400, 600, 800), 1)
    assert passed == 400 and calls == [200, 400, 600] and steps[-1].p99_ms == 80.0
