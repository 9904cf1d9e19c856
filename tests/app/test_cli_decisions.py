"""`fraud decisions`: the decision log on the command line, its filters, --json, the shortened card token and
its errors. Rows are recorded with RECORD_SQL into the session's database with their own trans_num prefix and
received_at in 2032 (every listing here is bounded to that year), and removed afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from fraud.app.cli import app
from tests.db.test_decisions import decision, forget, record

PREFIX = "tcd-"
TOKEN = "0123abcd" + "9" * 56
OTHER = "fedc3210" + "8" * 56
START = datetime(2032, 5, 1, 8, tzinfo=UTC)
IN_2032 = ["--since", "2032-01-01", "--until", "2032-12-31"]

ROWS = [
    {**decision(n, START + timedelta(hours=n)), "trans_num": f"{PREFIX}{n}", **changes}
    for n, changes in enumerate(
        [
            {"card_token": TOKEN, "last4": "4242"},
            {"card_token": TOKEN, "last4": "4242", "flagged": True, "score": 0.97, "new_card": True},
            {"card_token": OTHER, "last4": "1881", "model_version": "m-two", "latency_ms": 12.25},
            # a day later, and a merchant name that is rich markup
            {
                "card_token": OTHER,
                "last4": "1881",
                "merchant": "[bold]Shop[/bold]",
                "received_at": START + timedelta(days=1),
            },
        ]
    )
]


@pytest.fixture(scope="module")
def logged(engine):
    forget(engine, PREFIX)
    record(engine, ROWS)
    yield
    forget(engine, PREFIX)


def run(*args: str):
    return CliRunner().invoke(app, ["decisions", *args])


def listed(*args: str) -> list[str]:
    """The trans_nums of --json lines, in order."""
    result = run(*IN_2032, "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["trans_num"] for line in result.stdout.splitlines()]


def test_table_newest_first_with_a_shortened_token(logged):
    result = run(*IN_2032)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if PREFIX in line]
    assert [next(w for w in line.split() if w.startswith(PREFIX)) for line in lines] == [
        "tcd-3",
        "tcd-2",
        "tcd-1",
        "tcd-0",
    ]
    assert TOKEN not in result.output and OTHER not in result.output
    assert "0123abcd…" in result.output and "fedc3210…" in result.output
    for column in ("received_at", "trans_num", "last4", "merchant", "amount", "score", "flagged", "model"):
        assert column in result.stdout
    assert "latency ms" in result.stdout and "new card" in result.stdout
    second = next(line for line in lines if "tcd-1" in line)
    assert "2032-05-01 09:00:00" in second and "0.970" in second and "4242" in second and "13.50" in second
    assert "12.2" in next(line for line in lines if "tcd-2" in line)  # latency ms, one decimal
    assert "[bold]Shop[/bold]" in result.stdout  # data, not markup


def test_filters(logged):
    assert listed() == ["tcd-3", "tcd-2", "tcd-1", "tcd-0"]
    assert listed("--card", TOKEN) == ["tcd-1", "tcd-0"]
    assert listed("--card", "fedc3210") == ["tcd-3", "tcd-2"]  # the prefix the table shows
    assert listed("--last4", "1881") == ["tcd-3", "tcd-2"]
    assert listed("--flagged") == ["tcd-1"]
    assert "tcd-1" not in listed("--not-flagged")
    assert listed("--model", "m-two") == ["tcd-2"]
    assert listed("--limit", "2") == ["tcd-3", "tcd-2"]
    assert listed("--since", "2032-05-02") == ["tcd-3"]
    assert listed("--until", "2032-05-01") == ["tcd-2", "tcd-1", "tcd-0"]  # a date: up to the end of that day
    assert listed("--until", "2032-05-01T09:00") == ["tcd-0"]  # a datetime: before it
    assert listed("--since", "2032-05-01T10:30:00+02:00", "--until", "2032-05-01T10:00Z") == ["tcd-1"]


def test_json_lines_for_scripts(logged):
    result = run(*IN_2032, "--json", "--flagged")
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    row = json.loads(line)
    assert row["card_token"] == TOKEN and row["received_at"] == "2032-05-01T09:00:00+00:00"
    assert (row["score"], row["flagged"], row["new_card"], row["channel"]) == (0.97, True, True, "api")
    assert row["reasons"] == [{"feature": "amt_log", "contribution": 0.25}] and "features" not in row


def test_nothing_matches(logged):
    result = run(*IN_2032, "--model", "no-such-model")
    assert result.exit_code == 0 and "no real-time decisions match" in result.output
    assert PREFIX not in result.output
    assert run(*IN_2032, "--model", "no-such-model", "--json").stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "not an ISO date or datetime"),
        (["--until", "2032-13-01"], "not an ISO date or datetime"),
        (["--since", "2032-05-02", "--until", "2032-05-01"], "is not before"),
        (["--last4", "12a4"], "not 4 digits"),
        (["--card", "4111111111111111"], "that is a card number"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(fraud_env, args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_help():
    result = CliRunner().invoke(app, ["decisions", "--help"])
    assert result.exit_code == 0
    for option in ("--card", "--last4", "--flagged", "--not-flagged", "--model", "--since", "--until", "--json"):
        assert option in result.output
