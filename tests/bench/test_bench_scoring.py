"""The batch scoring benchmark's building blocks on tiny sizes (bench/scoring.py), so `make bench` cannot rot."""

import numpy as np

from bench.scoring import bench_batch, load_world, mlp, publish, requests_for


def test_batch_benchmark_runs_small(settings, engine):
    mine = settings.model_copy(update={"model_name": "bench-test-mlp"})
    frame = load_world(engine, mine, 400, "bench-test", seed=31, features="computed")  # as `make bench` loads it
    features = np.stack(frame["features"].to_numpy()).astype(np.float32)
    keras_model = mlp(features)
    publish(mine, "bench-test-v1", keras_model)

    batch = bench_batch(engine, mine, keras_model, "bench-test", features)
    assert (
        batch.rows == 400
        and batch.litert_seconds > 0
        and batch.keras_seconds > 0
        and batch.litert_call_seconds > 0
        and batch.keras_call_seconds > 0
    )

    bodies = requests_for(frame, 10)
    assert len({b["trans_num"] for b in bodies}) == 10 and all(
        b["trans_date_trans_time"] > str(frame["event_time"].max())[:19] for b in bodies
    )
