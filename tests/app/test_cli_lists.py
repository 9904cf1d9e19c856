"""`fraud lists`: add (with --for and a card number on stdin), show (table and --json), remove, audit, and the
refusals of bad input. The session's database is shared: merchants are unique to the test, and the card entries
made here are removed before the test ends, so no other test's transactions hit them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fraud.app.cli import app
from fraud.core.privacy import card_numbers_in, card_token
from fraud.db.lists import list_entries, remove_entry

TEST_PAN = "4012888888881881"  # a well-known Luhn-valid test card number; given only on stdin


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, ["lists", *args], input=stdin)


def said(result) -> str:
    """All the command wrote, on one line: rich's error panel wraps long messages inside its box."""
    return " ".join(result.output.replace("│", " ").split())


def added_id(result) -> int:
    assert result.exit_code == 0, result.output
    return int(re.search(r"^added (?:block|allow)-list#(\d+): ", result.stdout).group(1))


def shown(*args: str) -> dict[int, dict]:
    result = run("show", "--json", *args)
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in map(json.loads, result.stdout.splitlines())}


def test_add_show_remove_audit(engine):
    merchant = f"m-{uuid4().hex}"
    before = datetime.now(UTC)
    result = run("add", "block", "merchant", merchant, "--reason", "chargeback ring", "--for", "1h", "--by", "alice")
    entry_id = added_id(result)
    assert f"block merchant {merchant}, until " in result.stdout and result.stderr == ""

    row = shown("--kind", "block", "--entity", "merchant")[entry_id]
    expires = datetime.fromisoformat(row["expires_at"])
    assert before.replace(microsecond=0) + timedelta(hours=1) <= expires <= datetime.now(UTC) + timedelta(hours=1)
    assert (row["value"], row["reason"], row["added_by"], row["status"], row["ref"]) == (
        merchant,
        "chargeback ring",
        "alice",
        "in force",
        f"block-list#{entry_id}",
    )
    assert entry_id not in shown("--kind", "allow")

    table = run("show", "--entity", "merchant")
    assert table.exit_code == 0, table.output
    line = next(line for line in table.stdout.splitlines() if merchant in line)
    assert "chargeback ring" in line and "alice" in line and "in force" in line and str(entry_id) in line
    assert expires.strftime("%Y-%m-%d %H:%M:%S") in line
    for column in ("id", "kind", "entity", "value", "reason", "added by", "added (UTC)", "expires (UTC)", "status"):
        assert column in table.stdout

    removed = run("remove", str(entry_id), "--reason", "cleared", "--by", "bob")
    assert (
        removed.exit_code == 0 and f"removed block-list#{entry_id}: block merchant {merchant}, by bob" in removed.stdout
    )
    assert entry_id not in shown()
    assert shown("--all")[entry_id]["status"] == "removed" and shown("--all")[entry_id]["removed_by"] == "bob"
    assert merchant not in run("show").stdout and "removed" in run("show", "--all").stdout

    again = run("remove", str(entry_id), "--reason", "cleared", "--by", "bob")
    assert again.exit_code == 1 and f"error: block-list#{entry_id} was already removed at" in again.stderr

    trail = run("audit", str(entry_id))
    assert trail.exit_code == 0, trail.output
    add_line, remove_line = [line for line in trail.stdout.splitlines() if re.search(r"\b(add|remove)\b", line)]
    assert "alice" in add_line and f"value: {merchant}" in add_line and "reason: chargeback ring" in add_line
    assert "bob" in remove_line and "reason: cleared" in remove_line
    rows = [json.loads(line) for line in run("audit", str(entry_id), "--json").stdout.splitlines()]
    assert [(r["action"], r["actor"], r["entry_id"]) for r in rows] == [
        ("add", "alice", entry_id),
        ("remove", "bob", entry_id),
    ]
    assert rows[0]["detail"]["value"] == merchant and rows[1]["detail"]["reason"] == "cleared"
    assert len(run("audit", "--limit", "1", "--json").stdout.splitlines()) == 1


def test_a_card_number_on_stdin_is_tokenised_and_never_shown_or_stored(engine, settings):
    digits = TEST_PAN
    expected = card_token(digits, settings.token_key())
    result = run("add", "block", "card", "-", "--reason", "stolen", "--expires", "2099-12-31", stdin=f"{digits}\n")
    entry_id = added_id(result)
    try:
        assert f"block card …{digits[-4:]} {expected[:12]}…, until 2100-01-01 00:00:00 UTC" in result.stdout
        row = shown("--entity", "card")[entry_id]
        assert (row["value"], row["last4"], row["expires_at"]) == (expected, digits[-4:], "2100-01-01T00:00:00+00:00")

        table = run("show", "--entity", "card")
        assert f"card …{digits[-4:]} {expected[:12]}…" in table.stdout and expected not in table.stdout
        audit = run("audit", str(entry_id))
        assert f"value: …{digits[-4:]} {expected[:12]}…" in audit.stdout and expected not in audit.stdout

        # the same card again (as its token, in upper case): refused, naming the entry in force
        dup = run("add", "block", "card", expected.upper(), "--reason", "again")
        assert dup.exit_code == 1 and f"error: block-list#{entry_id} is already in force" in dup.stderr

        everything = "".join(
            r.output for r in (result, table, audit, dup, run("show", "--all", "--json"), run("audit", "--json"))
        )
        assert digits not in everything and not card_numbers_in(everything)
        with engine.connect() as connection:
            stored = " ".join(
                connection.execute(text(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {name} t")).scalar_one()
                for name in ("list_entry", "list_audit")
            )
        assert expected in stored and digits not in stored and not card_numbers_in(stored)
    finally:
        remove_entry(engine, entry_id, "test", "test over")
    assert entry_id not in {entry.id for entry in list_entries(engine)}


def test_a_card_number_as_an_argument_works_with_a_note_about_shell_history(engine, settings):
    short = "12345678"  # the shortest card number the pipeline tokenises (not a real card's)
    result = run("add", "allow", "card", short, "--reason", "travel", "--for", "12h")
    entry_id = added_id(result)
    try:
        assert "shell's history; `-` reads it from stdin" in said(result) and short not in result.output
        assert shown("--entity", "card")[entry_id]["value"] == card_token(short, settings.token_key())
    finally:
        remove_entry(engine, entry_id, "test", "test over")


def test_a_grouped_card_number_on_stdin_is_the_same_card(engine, settings):
    grouped = " ".join(TEST_PAN[i : i + 4] for i in range(0, len(TEST_PAN), 4))
    result = run("add", "block", "card", "-", "--reason", "stolen", stdin=grouped + "\n")
    entry_id = added_id(result)
    try:
        assert "shell's history" not in result.output and TEST_PAN[:12] not in result.output
        assert shown("--entity", "card")[entry_id]["value"] == card_token(TEST_PAN, settings.token_key())
    finally:
        remove_entry(engine, entry_id, "test", "test over")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["add", "grey", "merchant", "x", "--reason", "r"], None, 2, "'grey' is not one of 'block', 'allow'"),
        (["add", "block", "person", "x", "--reason", "r"], None, 2, "'person' is not one of"),
        (["add", "block", "merchant", "x"], None, 2, "Missing option '--reason'"),
        (["add", "block", "merchant", "x", "--reason", "r", "--expires", "tomorrow"], None, 2, "not an ISO date"),
        (["add", "block", "merchant", "x", "--reason", "r", "--for", "3w"], None, 2, "not a duration"),
        (["add", "block", "merchant", "x", "--reason", "r", "--for", "0d"], None, 2, "not a duration"),
        (
            ["add", "block", "merchant", "x", "--reason", "r", "--for", "1d", "--expires", "2099-01-01"],
            None,
            2,
            "give --expires or --for, not both",
        ),
        (
            ["add", "block", "merchant", "x", "--reason", "r", "--expires", "2020-01-01"],
            None,
            1,
            "error: the expiry 2020-01-02 00:00:00 UTC is not in the future",
        ),
        (["add", "block", "merchant", "x", "--reason", " "], None, 1, "error: reason is required"),
        (["add", "block", "card", "1234", "--reason", "r"], None, 2, "a card is a card number (8 to 19 digits"),
        (["add", "block", "card", "-", "--reason", "r"], "4012-8888-abcd\n", 2, "a card is a card number"),
        (["add", "block", "card", "-", "--reason", "r"], "", 2, "nothing on stdin"),
        (["remove", "987654321", "--reason", "typo"], None, 1, "error: no list entry #987654321"),
        (["remove", "1"], None, 2, "Missing option '--reason'"),
        (["show", "--kind", "grey"], None, 2, "'grey' is not one of"),
        (["audit", "--limit", "0"], None, 2, "--limit"),
    ],
)
def test_bad_input_fails_with_a_clear_message(engine, args, stdin, code, message):
    result = run(*args, stdin=stdin)
    assert result.exit_code == code and message in said(result), result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert result.stderr.startswith("error: ") and result.stdout == ""


def test_help_has_examples():
    for command in ("add", "remove", "show", "audit"):
        result = CliRunner().invoke(app, ["lists", command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, result.output
    assert "--expires" in CliRunner().invoke(app, ["lists", "add", "--help"]).output
    listed = CliRunner().invoke(app, ["lists"])
    assert all(command in listed.output for command in ("add", "remove", "show", "audit"))
