import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fraud.app.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "ui", "db"):
        assert command in result.output


def test_db_upgrade_and_counts(fraud_env):
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and "revision 0" in upgraded.output
    counts = runner.invoke(app, ["db", "counts"])
    assert counts.exit_code == 0 and "fact_transaction" in counts.output


def test_dagster_definitions_validate():
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location fraud" in result.stderr + result.stdout


def test_simulate_writes_daily_batches(fraud_env):
    from fraud.core.settings import Settings
    from fraud.core.storage import object_store

    result = CliRunner().invoke(app, ["simulate", "--start-day", "2027-02-27", "--days", "3", "--customers", "80"])
    assert result.exit_code == 0, result.output
    assert "3 daily batches" in result.output
    keys = object_store(Settings(), Settings().raw_bucket).list_keys("transactions/dt=2027-0")
    assert [k.split("/")[1] for k in keys] == ["dt=2027-02-27", "dt=2027-02-28", "dt=2027-03-01"]
    bad = CliRunner().invoke(app, ["simulate", "--start-day", "yesterday"])
    assert bad.exit_code == 2 and "not a date" in bad.output
