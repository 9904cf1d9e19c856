"""Managing the block and allow lists (fraud/db/lists.py): add, remove, the status at the database's clock, the
audit trail, refusals, concurrent adds, and no card number ever in the tables. The session's database is shared:
every value here is unique to its test, and the card tokens are random, so no other test's transactions hit."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fraud.core.privacy import card_numbers_in
from fraud.db.lists import (
    ListError,
    add_entry,
    audit_trail,
    hits_sql,
    list_entries,
    remove_entry,
)
from fraud.rules.lists import Entity, ListHit, ListKind

TEST_PAN = "4111111111111111"  # the well-known Luhn-valid test card number, never a real card


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid4().hex}"


def token() -> str:
    return secrets.token_hex(32)  # the shape of a card token; random, so it names no test's card


def ids(engine, **filters) -> set[int]:
    return {entry.id for entry in list_entries(engine, **filters)}


def hits(engine, card: str = "", merchant: str = "", category: str = "") -> list[ListHit]:
    query = text(f"SELECT {hits_sql(':card', ':merchant', ':category')}")
    with engine.connect() as connection:
        found = connection.execute(query, {"card": card, "merchant": merchant, "category": category}).scalar()
    return [ListHit.parse(hit) for hit in found or ()]


def backdate(engine, entry_id: int) -> None:
    """Make an entry one that expired an hour ago (added two hours ago), without sleeping."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE list_entry SET added_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' "
                "WHERE id = :id"
            ),
            {"id": entry_id},
        )


def test_add_show_remove_round_trip_with_its_audit_rows(engine):
    merchant = unique()
    expires = datetime.now(UTC) + timedelta(days=3)
    added = add_entry(engine, "block", "merchant", f"  {merchant} ", "chargeback ring", "alice", expires_at=expires)
    assert (added.kind, added.entity, added.value, added.last4) == (ListKind.BLOCK, Entity.MERCHANT, merchant, None)
    assert (added.reason, added.added_by, added.expires_at, added.status) == (
        "chargeback ring",
        "alice",
        expires,
        "in force",
    )
    assert added.removed_at is None and added.removed_by is None and added.ref == f"block-list#{added.id}"
    assert added.id in ids(engine) and added.id in ids(engine, kind="block", entity=Entity.MERCHANT)
    assert added.id not in ids(engine, kind=ListKind.ALLOW) | ids(engine, entity="card")
    assert hits(engine, merchant=merchant) == [ListHit(ListKind.BLOCK, added.id, Entity.MERCHANT)]

    removed = remove_entry(engine, added.id, "bob", "cleared by the acquirer")
    assert (removed.status, removed.removed_by) == ("removed", "bob") and removed.removed_at >= added.added_at
    assert added.id not in ids(engine) and hits(engine, merchant=merchant) == []
    kept = next(entry for entry in list_entries(engine, include_inactive=True) if entry.id == added.id)
    assert kept == removed

    add_row, remove_row = audit_trail(engine, added.id)
    assert (add_row.entry_id, add_row.action, add_row.actor) == (added.id, "add", "alice")
    assert add_row.detail == {
        "kind": "block",
        "entity": "merchant",
        "value": merchant,
        "last4": None,
        "reason": "chargeback ring",
        "expires_at": expires.isoformat(),
    }
    assert (remove_row.action, remove_row.actor, remove_row.detail["reason"]) == (
        "remove",
        "bob",
        "cleared by the acquirer",
    )
    assert remove_row.at >= add_row.at and remove_row.id > add_row.id
    newest = audit_trail(engine, limit=1)
    assert len(newest) == 1 and newest[0].id >= remove_row.id

    with pytest.raises(ListError, match=rf"block-list#{added.id} was already removed at .* by bob"):
        remove_entry(engine, added.id, "bob", "again")
    assert len(audit_trail(engine, added.id)) == 2


def test_removing_an_unknown_entry_is_refused(engine):
    with pytest.raises(ListError, match="no list entry #987654321"):
        remove_entry(engine, 987654321, "bob", "typo")


def test_a_second_entry_in_force_for_the_same_value_is_refused(engine):
    category = unique("c")
    first = add_entry(engine, ListKind.BLOCK, Entity.CATEGORY, category, "first", "alice")
    with pytest.raises(ListError, match=rf"block-list#{first.id} is already in force"):
        add_entry(engine, ListKind.BLOCK, Entity.CATEGORY, category, "second", "bob")
    # the other list is another entry: both in force, and block decides (fraud/rules/lists.py)
    allowed = add_entry(engine, ListKind.ALLOW, Entity.CATEGORY, category, "also", "bob")
    assert {hit.entry_id for hit in hits(engine, category=category)} == {first.id, allowed.id}
    # the same value as a merchant is another entity
    merchant = add_entry(engine, ListKind.BLOCK, Entity.MERCHANT, category, "a merchant of that name", "bob")
    assert merchant.status == "in force"
    # once removed, the value can be listed again
    remove_entry(engine, first.id, "alice", "replaced")
    again = add_entry(engine, ListKind.BLOCK, Entity.CATEGORY, category, "second", "bob")
    assert again.id > first.id and again.status == "in force"


def test_an_entry_past_its_expiry_is_no_longer_in_force_and_can_be_added_again(engine):
    card = token()
    entry = add_entry(
        engine, "allow", "card", card.upper(), "travel", "alice", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert entry.value == card and hits(engine, card=card) == [ListHit(ListKind.ALLOW, entry.id, Entity.CARD)]
    backdate(engine, entry.id)
    assert hits(engine, card=card) == []
    assert entry.id not in ids(engine)
    (expired,) = [found for found in list_entries(engine, include_inactive=True) if found.id == entry.id]
    assert expired.status == "expired" and expired.removed_at is None

    renewed = add_entry(engine, "allow", "card", card, "travel, extended", "alice", last4="1881")
    assert renewed.status == "in force" and renewed.expires_at is None and renewed.last4 == "1881"
    assert hits(engine, card=card) == [ListHit(ListKind.ALLOW, renewed.id, Entity.CARD)]
    # an expired entry can still be removed (its trail says so); it stays, as removed
    assert remove_entry(engine, expired.id, "bob", "tidy").status == "removed"
    assert audit_trail(engine, expired.id)[-1].detail == {"reason": "tidy", "status_before": "expired"}
    remove_entry(engine, renewed.id, "bob", "trip over")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expires_at": datetime.now(UTC) - timedelta(minutes=1)}, "is not in the future"),
        ({"expires_at": datetime(2099, 1, 1)}, "needs a time zone"),
        ({"reason": "  "}, "reason is required"),
        ({"actor": ""}, "actor is required"),
        ({"kind": "grey"}, "unknown list kind 'grey': one of block, allow"),
        ({"entity": "person"}, "unknown entity 'person': one of card, merchant, category"),
        ({"value": " "}, "the merchant is empty"),
        ({"last4": "1234"}, "last4 is for card entries"),
        ({"entity": "card", "value": "3fa85f64"}, "takes the card's token"),
        ({"entity": "card", "value": token(), "last4": "12a4"}, "last4 is not 4 digits"),
        ({"entity": "card", "value": TEST_PAN}, "takes the card's token"),
        ({"value": f"shop {TEST_PAN}"}, "contains a card number"),
        ({"reason": f"customer called about {TEST_PAN}"}, "reason contains a card number"),
    ],
)
def test_refused_adds_say_why_and_store_nothing(engine, change, message):
    merchant = unique()
    arguments = {
        "kind": "block",
        "entity": "merchant",
        "value": merchant,
        "reason": "r",
        "actor": "alice",
        **change,
    }
    with pytest.raises(ListError, match=message) as refused:
        add_entry(engine, **arguments)
    assert TEST_PAN not in str(refused.value)  # a refusal never repeats a card number
    assert not [entry for entry in list_entries(engine, include_inactive=True) if entry.value == merchant]


def race(engine, merchant: str) -> list[object]:
    """Two threads add one merchant at the same moment: each one's entry, or its ListError."""
    start = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def add(slot: int) -> None:
        start.wait()
        try:
            outcomes[slot] = add_entry(engine, "block", "merchant", merchant, f"racer {slot}", "alice")
        except ListError as error:
            outcomes[slot] = error

    racers = [threading.Thread(target=add, args=(slot,)) for slot in (0, 1)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    return outcomes


def test_concurrent_adds_of_one_value_exactly_one_wins(engine):
    for _ in range(5):
        merchant = unique()
        outcomes = race(engine, merchant)
        refused = [outcome for outcome in outcomes if isinstance(outcome, ListError)]
        assert len(refused) == 1, outcomes
        (winner,) = [outcome for outcome in outcomes if not isinstance(outcome, ListError)]
        assert f"#{winner.id} is already in force" in str(refused[0])
        assert [entry.id for entry in list_entries(engine, include_inactive=True) if entry.value == merchant] == [
            winner.id
        ]
        assert [row.action for row in audit_trail(engine, winner.id)] == ["add"]


def test_the_audit_trail_refuses_update_and_delete(engine):
    entry = add_entry(engine, "block", "merchant", unique(), "r", "alice")
    for statement in (
        "UPDATE list_audit SET actor = 'mallory' WHERE entry_id = :id",
        "DELETE FROM list_audit WHERE entry_id = :id",
    ):
        with pytest.raises(DBAPIError, match="list_audit is append-only"), engine.begin() as connection:
            connection.execute(text(statement), {"id": entry.id})
    (row,) = audit_trail(engine, entry.id)
    assert row.actor == "alice"


def test_no_card_number_ever_reaches_the_tables(engine):
    attempts = [
        {"entity": "card", "value": TEST_PAN},
        {"entity": "card", "value": f"{TEST_PAN[:4]} {TEST_PAN[4:8]} {TEST_PAN[8:12]} {TEST_PAN[12:]}"},
        {"entity": "merchant", "value": TEST_PAN},
        {"entity": "category", "value": f"cat {TEST_PAN}"},
        {"entity": "merchant", "value": unique(), "reason": f"card {TEST_PAN}"},
        {"entity": "merchant", "value": unique(), "actor": TEST_PAN},
    ]
    for attempt in attempts:
        with pytest.raises(ListError):
            add_entry(engine, **{"kind": "block", "reason": "r", "actor": "alice", **attempt})
    entry = add_entry(engine, "block", "card", token(), "stolen", "alice", last4=TEST_PAN[-4:])
    with pytest.raises(ListError):
        remove_entry(engine, entry.id, "alice", f"card {TEST_PAN} found")
    remove_entry(engine, entry.id, "alice", "found")
    with engine.connect() as connection:
        everything = " ".join(
            connection.execute(text(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")).scalar_one()
            for table in ("list_entry", "list_audit")
        )
    assert entry.value in everything  # the scan reads the rows
    assert TEST_PAN not in everything and card_numbers_in(everything) == []


def test_audit_trail_limit_must_be_positive(engine):
    with pytest.raises(ListError, match="limit"):
        audit_trail(engine, limit=0)
