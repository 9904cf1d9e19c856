import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from fraud.app.cli import app
from fraud.db.models import Base

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
    assert counts.exit_code == 0
    listed = {line.split()[0] for line in counts.output.splitlines() if line.strip()}
    assert listed == set(Base.metadata.tables)  # every table of the models, the alert links included


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


def _bank_csv(path, amounts: list[str]):
    lines = ["trans_num,cc_num,merchant,amt,trans_date_trans_time,is_fraud"]
    lines += [f"t{n},4111111111111111,shop {n},{amt},2019-01-0{n + 1} 10:00:00,0" for n, amt in enumerate(amounts)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_ingest_piped_table_keeps_each_key_on_one_line(fraud_env, tmp_path):
    result = CliRunner().invoke(app, ["ingest", _bank_csv(tmp_path / "bank.csv", ["5.00", "7.25"])])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("bank.csv → batch csv-")
    keys = [line for line in lines if " key " in line]
    assert len(keys) == 3, lines  # transactions, labels, quarantine: one line each
    assert re.search(r"transactions key +│ fraud-raw/transactions/dt=2019-01-01/hour=10/csv-\w+\.jsonl\.gz │", keys[0])
    assert re.search(r"labels key +│ fraud-raw/labels/dt=[\d-]+/csv-\w+\.jsonl\.gz +│", keys[1])


def test_ingest_exits_1_when_every_row_is_quarantined(fraud_env, tmp_path):
    negative = CliRunner().invoke(app, ["ingest", _bank_csv(tmp_path / "refunds.csv", ["-5.00", "-7.25"])])
    assert negative.exit_code == 1
    assert "every row quarantined, nothing ingested: negative_amount 2" in negative.stderr
    (tmp_path / "semicolons.csv").write_text("trans_num;cc_num;merchant;amt\nt1;4111111111111111;shop;5\n")
    semicolons = CliRunner().invoke(app, ["ingest", str(tmp_path / "semicolons.csv")])
    assert semicolons.exit_code == 1 and "delimiter looks like ';'" in semicolons.stderr
    some_good = CliRunner().invoke(app, ["ingest", _bank_csv(tmp_path / "mixed.csv", ["-5.00", "7.25"])])
    assert some_good.exit_code == 0, some_good.output
    assert "exit status" in CliRunner().invoke(app, ["ingest", "--help"]).output.lower()
