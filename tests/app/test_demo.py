"""`fraud demo`'s runner on a toy graph: libraries' output to the log file, one line per asset on the terminal,
runs named `demo` and tagged, a failure reported with its error and the log."""

import io
import os
import subprocess
import sys
import textwrap

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)
from rich.console import Console
from typer.testing import CliRunner

from fraud.app import demo
from fraud.app.cli import app
from fraud.app.demo import DemoFailed, asset_line, demo_job, figures, materialize_in_order, output_to
from fraud.core.settings import REPO_ROOT


@asset
def raw_transactions() -> MaterializeResult:
    os.write(1, b"a library's noise\n")  # as the JVM and TensorFlow's C++ write: to the fd, past sys.stdout
    print("a Python print")
    subprocess.run(["sh", "-c", "echo child output; echo child warning >&2"], check=True)
    return MaterializeResult(metadata={"rows": 31_580, "batches": 10})


@asset(deps=[raw_transactions])
def fraud_model(context: AssetExecutionContext) -> MaterializeResult:
    context.log.debug("a Dagster DEBUG event line")
    return MaterializeResult(metadata={"version": "m-1", "average_precision": MetadataValue.float(0.58123)})


@asset(deps=[fraud_model])
def fraud_flags() -> MaterializeResult:
    raise ValueError("the scorer found no model")


TOY = Definitions(assets=[raw_transactions, fraud_model, fraud_flags])


def test_libraries_go_to_the_log_and_the_terminal_gets_one_line_per_asset(tmp_path):
    """In a child interpreter, as `fraud demo` runs: prints, raw writes to the fds, subprocesses and Dagster's DEBUG
    event lines land in the log; stdout gets the demo's own lines only."""
    log = tmp_path / "logs" / "demo.log"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from dagster import DagsterInstance
        from rich.console import Console
        from fraud.app.demo import demo_job, materialize_in_order, output_to
        from tests.app.test_demo import TOY

        log, job = Path({str(log)!r}), demo_job(TOY)
        with DagsterInstance.ephemeral() as instance, output_to(log) as terminal:
            materialize_in_order(job, ["raw_transactions", "fraud_model"], instance, {{}}, Console(file=terminal), log)
        print("after the block")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["✓", "raw_transactions"], ["✓", "fraud_model"]]
    assert lines[2:] == ["after the block"] and done.stderr == ""
    logged = log.read_text()
    for line in ("a library's noise", "a Python print", "child output", "child warning", "a Dagster DEBUG"):
        assert line in logged, line


def test_runs_are_named_demo_and_tagged_one_line_each(tmp_path):
    terminal, log = io.StringIO(), tmp_path / "demo.log"
    with DagsterInstance.ephemeral() as instance, output_to(log):
        materialize_in_order(
            demo_job(TOY),
            ["raw_transactions", "fraud_model"],
            instance,
            {"fraud/trigger": "demo"},
            Console(file=terminal),
            log,
        )
        runs = instance.get_runs()
    assert [run.job_name for run in runs] == ["demo", "demo"]
    assert all(run.tags.get("fraud/trigger") == "demo" for run in runs)
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("✓ raw_transactions") and lines[1].startswith("✓ fraud_model")
    assert "31,580 transactions in 10 batches" in lines[0] and "model m-1, AP 0.581" in lines[1]


def test_a_failed_asset_raises_with_its_own_error(tmp_path):
    with DagsterInstance.ephemeral() as instance, output_to(tmp_path / "demo.log"):
        with pytest.raises(DemoFailed) as failed:
            materialize_in_order(demo_job(TOY), ["fraud_flags"], instance, {}, Console(file=io.StringIO()), None)
    assert failed.value.asset == "fraud_flags" and "the scorer found no model" in failed.value.error


def test_figures_skip_missing_keys_and_survive_other_types():
    assert figures("fraud_flags", {"scored": 31_580, "flagged": 207}) == "207 of 31,580 flagged"
    assert figures("fraud_model", {"version": "m-2", "roc_auc": "n/a", "promoted": False}) == (
        "model m-2, n/a, not promoted"
    )
    assert figures("processed_transactions", {}) == "" and figures("unknown", {"rows": 1}) == ""
    assert asset_line("fraud_report", 2.94, {"flagged": 3}, []).endswith("2.9 s  3 flagged")


def test_cli_demo_failure_prints_the_error_and_the_log_tail(monkeypatch, tmp_path):
    log = tmp_path / "demo.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))

    def fail(settings, verbose=False):
        raise DemoFailed("processed_transactions", "Spark ran out of memory", log)

    monkeypatch.setattr(demo, "run_demo", fail)
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "error: processed_transactions failed: Spark ran out of memory" in result.stderr
    assert str(log) in result.stderr and "line 99" in result.stderr and "line 79" not in result.stderr


def test_the_demo_runs_every_asset_after_its_dependencies():
    """The real graph's order: the alerts before the report, which counts the emails sent."""
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assert sorted(demo.ORDER) == sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    for done, name in enumerate(demo.ORDER):
        assert {p.to_user_string() for p in graph.get(AssetKey(name)).parent_keys} <= set(demo.ORDER[:done]), name
    assert demo.ORDER[-2:] == ["customer_alerts", "fraud_report"]
