"""The benchmarks' own building blocks, on tiny sizes, so `make bench` cannot rot unnoticed."""

import json
import os
import subprocess
import sys
from numbers import Real
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.__main__ import PHASES, bench_load, naive_faker_transactions, parse_args, processed_frame, selected_phases
from fraud.features.catalog import FEATURE_NAMES


def test_processed_frame_is_loadable(engine):
    frame = processed_frame(300)
    assert len(frame) == 300 and len(frame["features"][0]) == len(FEATURE_NAMES)
    baseline, measured = bench_load(engine, 300)
    assert baseline > 0 and measured > 0


def test_naive_generator_makes_sparkov_rows():
    rows = naive_faker_transactions(20, [{"cc_num": "4111111111111111", "lat": 40.0, "long": -75.0}])
    assert len(rows) == 20 and len({r["trans_num"] for r in rows}) == 20


def test_raw_to_pandas_reads_and_tokenizes(tmp_path):
    from datetime import datetime

    import pandas as pd

    from bench.__main__ import raw_to_pandas
    from fraud.core.storage import LocalObjectStore
    from fraud.ingest.raw_zone import write_transactions

    store = LocalObjectStore(tmp_path, "raw")
    row = {
        "trans_num": "t1",
        "cc_num": "4111111111111111",
        "trans_date_trans_time": "2026-01-01 10:00:00",
        "amt": "5.5",
        "lat": "1",
        "long": "2",
        "merch_lat": "1",
        "merch_long": "2",
        "city_pop": "10",
        "merchant": "m",
    }
    key = write_transactions(store, "b1", pd.DataFrame([row]), datetime(2026, 1, 1))
    frame = raw_to_pandas(store, [key], b"k")
    assert frame["card_token"][0] != "4111111111111111" and len(frame["card_token"][0]) == 64
    assert frame["amt"][0] == 5.5 and str(frame["event_time"][0]) == "2026-01-01 10:00:00+00:00"


def test_only_names_phases_in_run_order_and_rejects_unknown_ones(capsys):
    assert [p.name for p in selected_phases("training, load", PHASES)] == ["load", "training"]
    assert [p.name for p in parse_args([]).phases] == [p.name for p in PHASES]
    for bad, says in (("load,nope", "unknown phase nope"), (",", "no phase named")):
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--only", bad])
        error = capsys.readouterr().err
        assert exit_.value.code == 2 and says in error
        assert "valid phases: load, simulator, etl, scoring, api, training, robustness" in error


def test_json_holds_every_phase_row_and_figure(tmp_path, monkeypatch, capsys):
    """A cheap stand-in phase through main(): progress lines, the table, and --json with rows and raw figures."""
    row = ("stand-in", "10", "baseline", "2.00", "1.00", "2.0x")
    phase = bench_main.Phase("fake", "a stand-in phase", lambda work: bench_main.Outcome([row], {"ratio": 2.0}))
    monkeypatch.setattr(bench_main, "PHASES", (phase,))
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))  # main points FRAUD_HOME at its own folder; restored after
    out = tmp_path / "bench.json"
    assert bench_main.main(["--only", "fake", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/1] fake: a stand-in phase" in printed and "[1/1] fake done in 0 s" in printed and "2.0x" in printed
    report = json.loads(out.read_text())
    assert report["complete"] is True and report["columns"][-1] == "ratio"
    fake = report["phases"]["fake"]
    assert fake["table"] == [dict(zip(report["columns"], row, strict=True))]
    assert fake["ratio"] == 2.0 and fake["phase_seconds"] >= 0 and set(fake) == {"ratio", "table", "phase_seconds"}


def test_help_prints_the_options_and_phases_and_runs_nothing(tmp_path):
    """`python -m bench --help` as `make bench` users type it: exits at once, before the run's temporary home."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--only NAMES" in done.stdout and "--json FILE" in done.stdout
    assert all(f"{phase.name} " in done.stdout and phase.title[:30] in done.stdout for phase in PHASES)
    assert list(scratch.iterdir()) == []  # no FRAUD_HOME made: nothing ran


def number(value, kind=Real) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool) and value > 0


@pytest.mark.slow  # Spark, a model export and the API server: about a minute on 2 cores
def test_json_of_etl_scoring_and_api_on_tiny_sizes(tmp_path, monkeypatch):
    """The real phases through main() at tiny sizes: the figures a script reads from --json (issue 24 item 5)."""
    sizes = bench_main.Sizes(
        etl_cards=200,
        etl_days=3,
        scoring_rows=400,
        api_rows=400,
        api_load=dict(steady_rate=20, steady_seconds=2, rates=(20, 40), step_seconds=1, costs_repeat=20),
    )
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))  # main points FRAUD_HOME at its own folder; restored after
    out = tmp_path / "bench.json"
    assert bench_main.main(["--only", "etl,scoring,api", "--json", str(out)], sizes=sizes) == 0
    report = json.loads(out.read_text())
    assert report["complete"] is True and list(report["phases"]) == ["etl", "scoring", "api"]
    etl, scoring, api = (report["phases"][name] for name in ("etl", "scoring", "api"))

    assert number(etl["rows"], int) and number(etl["seconds"]) and number(etl["cpu_seconds"])
    # the whole tree: this process (the Spark driver), the JVM it started and its Python workers; PostgreSQL apart
    memory = etl["peak_memory_by_process_gib"]
    assert number(memory["driver"]) and number(memory["jvm"]) and memory["workers"] >= 0
    assert etl["peak_memory_gib"] == pytest.approx(sum(memory.values()))
    assert number(etl["database_cpu_seconds"])
    assert etl["disagreeing_values"] == 0

    assert scoring["rows"] == 400 and number(scoring["transactions_per_s"]) and number(scoring["ratio_vs_keras"])

    loads = [api["steady"], *api["saturation_steps"]]
    assert api["steady"]["offered_per_s"] == 20 and 1 <= len(api["saturation_steps"]) <= 2
    for load in loads:
        assert number(load["offered_per_s"]) and number(load["requests_per_s"])
        assert number(load["p50_ms"]) and load["p99_ms"] >= load["p50_ms"]
