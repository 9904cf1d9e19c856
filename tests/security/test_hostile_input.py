"""Hostile merchant and customer names (SQL and HTML injection, template and CSV-formula strings, COPY and
placeholder syntax) through the whole path: `fraud ingest` → the Glue job → PostgreSQL → scores → `fraud
report` and the alert emails. The strings arrive intact as data, nothing executes, every table still exists.
Then the leak scan of that run: no Luhn-valid card number in the curated Parquet, any table, the report, the
emails or the logs of the commands."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import subprocess
import sys
from pathlib import Path

import markupsafe
import pandas as pd
import pytest
from sqlalchemy import text

from fraud.core.privacy import card_numbers_in
from fraud.core.schema import RAW_COLUMNS
from fraud.core.settings import Settings
from fraud.db.engine import get_engine, stop_embedded
from fraud.db.migrate import upgrade
from fraud.outreach.alerts import AlertPolicy, send_alerts
from fraud.outreach.mailers import OutboxMailer
from lambdas.scorer.handler import handler as scorer
from tests.helpers.etl import glue_job_command
from tests.helpers.figures import figure
from tests.helpers.homes import make_home, table_dumps
from tests.helpers.leak_scan import leaks_after_run
from tests.helpers.litert_models import publish_logistic, weights_for

REPO = Path(__file__).resolve().parents[2]
MERCHANTS = (
    "Robert'); DROP TABLE fact_transaction;--",
    "x' OR '1'='1",
    "<script>alert('merchant')</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(document.cookie)>",
    "{{7*7}} {% raw %}${7*7}",
    '=HYPERLINK("http://evil.example","click")',
    r"back\slash \N \. %s %(amt)s $1",
    "Zoë's Café – 北京 🎉",
)
HOLDERS = (("<b>Mallory</b>", "O'Hara\"; DELETE FROM dim_card;--"), ("Eve", "</td></tr><script>x()</script>"))
CARDS = ("4111111111111111", "5555555555554444")  # Luhn-valid test card numbers


def hostile_csv() -> bytes:
    rows = []
    for n, merchant in enumerate(MERCHANTS):
        for c, (card, (first, last)) in enumerate(zip(CARDS, HOLDERS, strict=False)):
            rows.append(
                {
                    "trans_date_trans_time": f"2026-10-01 {8 + n:02d}:{10 * c:02d}:00",
                    "cc_num": card,
                    "merchant": merchant,
                    "category": "shopping_net",
                    "amt": f"{12.5 + n + c:.2f}",
                    "first": first,
                    "last": last,
                    "gender": "F",
                    "street": "1 Main St",
                    "city": "Springfield",
                    "state": "NY",
                    "zip": "12345",
                    "lat": "40.1",
                    "long": "-74.1",
                    "city_pop": "5000",
                    "job": "Engineer",
                    "dob": "1980-01-01",
                    "trans_num": f"hostile-{n:02d}-{c}",
                    "unix_time": "",
                    "merch_lat": "40.2",
                    "merch_long": "-74.2",
                    "is_fraud": "0",
                }
            )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*RAW_COLUMNS, "is_fraud"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def hostile_run(fraud_env):
    home = make_home("fraud-hostile-")
    settings = Settings(home=home, model_name="hostile-mlp")
    env = {**os.environ, "FRAUD_HOME": str(home), "FRAUD_MODEL_NAME": settings.model_name}
    log = home / "commands.log"
    source = home / "hostile.csv"
    source.write_bytes(hostile_csv())

    def command(*args: str) -> None:
        with open(log, "ab") as output:
            subprocess.run(
                list(args), cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, check=True, timeout=900
            )

    engine = get_engine(settings)
    upgrade(engine)
    try:
        command(sys.executable, "-m", "fraud.app.cli", "ingest", str(source))
        command(*glue_job_command(settings))
        publish_logistic(settings, "hostile-v1", weights_for(amt_log=0.0), 0.0, 0.4)  # every score 0.5: all flagged
        scored = scorer({}, settings=settings)
        command(sys.executable, "-m", "fraud.app.cli", "report")
        send_alerts(
            engine,
            "hostile-v1",
            OutboxMailer(settings.outbox_dir),
            AlertPolicy(sender=settings.mail_from, daily_cap=10),
        )
        yield settings, engine, scored, log
    finally:
        stop_embedded(home / "pg")


def test_names_arrive_intact_as_data_and_nothing_executes(hostile_run):
    settings, engine, scored, _ = hostile_run
    rows = len(MERCHANTS) * len(CARDS)
    assert scored["scored"] == scored["flagged"] == rows
    with engine.connect() as connection:
        merchants = set(connection.execute(text("SELECT merchant FROM dim_merchant")).scalars())
        holders = set(connection.execute(text("SELECT first_name, last_name FROM dim_card")).all())
        facts = connection.execute(text("SELECT count(*) FROM fact_transaction")).scalar_one()
    assert merchants == set(MERCHANTS) and holders == set(HOLDERS) and facts == rows  # byte for byte, no row lost
    tables = set(table_dumps(engine))
    assert {"fact_transaction", "dim_card", "dim_merchant", "fraud_score", "customer_alert", "batch_load"} <= tables


def test_the_report_shows_them_escaped(hostile_run):
    settings, *_ = hostile_run
    reports = settings.store_root / settings.reports_bucket
    html = (reports / "latest.html").read_text()
    for tag in ("<script", "<img src=x", "<svg", "<b>", "</td></tr><script"):  # (the plots are <img class="plot">)
        assert tag not in html
    assert not [m for m in MERCHANTS if set(m) & set("<>\"'&") and m in html]  # none shown unescaped
    shown = [m for m in MERCHANTS if str(markupsafe.escape(m)) in html]
    assert len(shown) >= 5, "the flagged table lists the hostile merchants, escaped"
    assert "{{7*7}}" in html  # shown as it is: no template ran on it
    flagged = pd.read_csv(reports / "latest-flagged.csv", dtype=str)
    formula = flagged[flagged["merchant"].str.contains("HYPERLINK", na=False)]["merchant"]
    assert len(formula) and formula.str.startswith("'=").all()  # a spreadsheet shows it, does not run it


def test_the_emails_show_them_escaped(hostile_run):
    settings, *_ = hostile_run
    messages = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in settings.outbox_dir.glob("*.eml")
    ]
    assert len(messages) == len(CARDS)  # one card-day each
    for message in messages:
        parts = {
            part.get_content_type(): part.get_content()
            for part in message.walk()
            if part.get_content_maintype() == "text"
        }
        for tag in ("<script", "<img", "<svg", "<b>Mallory"):
            assert tag not in parts["text/html"]
        for merchant in MERCHANTS:  # every one of the card's payments, as text in the plain part, escaped in HTML
            assert merchant in parts["text/plain"] and str(markupsafe.escape(merchant)) in parts["text/html"]
    first, last = HOLDERS[0]
    assert any(first in m.get_body(("plain",)).get_content() for m in messages)


def test_no_card_number_past_the_raw_zone_nor_in_the_logs(hostile_run):
    settings, engine, _, log = hostile_run
    raw_csv = (settings.home / "hostile.csv").read_text()
    assert set(card_numbers_in(raw_csv)) == set(CARDS)  # the scan recognises them where they may be
    logs = log.read_text()
    assert "rows read" in logs and "report: " in logs  # the commands did log
    leaks = leaks_after_run(settings, engine, [log], known=CARDS, inputs=[settings.home / "hostile.csv"])
    assert leaks == {}, {place: len(numbers) for place, numbers in leaks.items()}
    tables = len(table_dumps(engine))
    figure(
        "tests/security/test_hostile_input.py::test_no_card_number_past_the_raw_zone_nor_in_the_logs",
        f"{len(MERCHANTS)} hostile merchants x {len(HOLDERS)} hostile holders through ingest, ETL, scoring, report, "
        f"emails: stored byte for byte, all escaped, tables intact; Luhn scan of Parquet, {tables} tables, report, "
        f"{len(list(settings.outbox_dir.glob('*.eml')))} emails and {log.stat().st_size:,} bytes of logs: "
        "0 card numbers",
    )
