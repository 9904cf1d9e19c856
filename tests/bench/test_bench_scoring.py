"""The batch scoring benchmark's building blocks on tiny sizes (bench/scoring.py), so `make bench` cannot rot."""

from rich.console import Console

from bench.scoring import load_world, requests_for, run


def test_batch_benchmark_runs_small(settings, engine):
    """The phase `make bench` runs (bench.scoring.run), on 400 transactions: every row of its table filled."""
    mine = settings.model_copy(update={"model_name": "bench-test-mlp"})
    table, batch = run(Console(quiet=True), mine, engine, rows=400)
    assert batch["rows"] == 400 and all(
        batch[name] > 0
        for name in (
            "litert_seconds",
            "keras_seconds",
            "undecided_seconds",
            "litert_call_seconds",
            "keras_call_seconds",
        )
    )
    assert len(table) == 4 and all(len(row) == 6 and row[1] == "400" for row in table)
    # what --json gives a script (issue 24 item 5): the throughput and the ratio against Keras, as numbers
    assert batch["transactions_per_s"] == 400 / batch["litert_seconds"]
    assert batch["ratio_vs_keras"] == batch["keras_seconds"] / batch["litert_seconds"]
    # the share of transactions given reasons (issue 24 item 3: only where read) and the scorer's own CPU time
    assert 0 <= batch["reasons_share"] <= 1 and batch["litert_cpu_seconds"] > 0
    frame = load_world(engine, mine, 400, "bench-test", seed=31, features="computed")  # as `make bench` loads it

    bodies = requests_for(frame, 10)
    assert len({b["trans_num"] for b in bodies}) == 10 and all(
        b["trans_date_trans_time"] > str(frame["event_time"].max())[:19] for b in bodies
    )
