"""The block and allow lists in PostgreSQL (`list_entry`, `list_audit`: migration 0006; what they mean:
fraud/rules/lists.py).

`IN_FORCE` is the one definition of an entry that applies: not removed, not past its expiry at the moment of the
decision (the database's clock, `now()`: the same for the API, the Lambda and batch scoring). `hits_sql` gives the SQL
expression the real-time read selects with its transaction: the entries in force naming its card token, merchant or
category, as `kind:entity:id` texts (fraud.rules.lists.ListHit.parse), or NULL; the batch scorer reads every entry
in force once per page instead (`entries_in_force`) and matches in memory.

Managing the lists (`fraud lists`, docs/lists.md): `add_entry` and `remove_entry` change an entry and write its
audit row in one transaction; `list_entries` and `audit_trail` read them back as frozen dataclasses (no pandas).
An entry's `status` is computed from `IN_FORCE` by the database, never by a second definition here."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from fraud.core.privacy import card_numbers_in
from fraud.rules.lists import Entity, ListHit, ListKind

IN_FORCE = "e.removed_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())"


def entries_in_force(engine: Engine) -> dict[tuple[str, str], list[ListHit]]:
    """Every entry in force, by (entity, value): the batch scorer reads them once per page (a few hundred rows,
    where a lookup per transaction in the page's query cost 1-2 s per 100,000) and matches in memory
    (fraud.rules.lists.hits_for)."""
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT e.kind, e.entity, e.value, e.id FROM list_entry e WHERE {IN_FORCE}"))
        index: dict[tuple[str, str], list[ListHit]] = {}
        for kind, entity, value, entry_id in rows:
            index.setdefault((entity, value), []).append(ListHit(ListKind(kind), int(entry_id), Entity(entity)))
    return index


def hits_sql(card_token: str, merchant: str, category: str) -> str:
    """The HITS expression for a row whose card token, merchant and category are the given SQL expressions
    (compact: the real-time read it is part of must stay under psycopg's 4,096-character parse cache)."""
    return (
        "(SELECT array_agg(e.kind||':'||e.entity||':'||e.id) FROM list_entry e WHERE "
        f"{IN_FORCE} AND (e.entity,e.value) IN (('card',{card_token}),('merchant',{merchant}),"
        f"('category',{category})))"
    )


# --- managing the lists: `fraud lists` ---

IN_FORCE_STATUS = "in force"
EXPIRED = "expired"
REMOVED = "removed"

_TOKEN = re.compile(r"[0-9a-f]{64}")  # a card token: SHA-256 HMAC in hex (fraud/core/privacy.py card_token)
_LAST4 = re.compile(r"[0-9]{4}")
# every add of one kind+entity+value takes this transaction-level lock first (keyed by the value's hash, so adds
# of different values rarely wait on each other): of two concurrent adds of one value, the second sees the first
_ADD_LOCK = 0x6C697374  # "list"

_STATUS = (
    f"CASE WHEN {IN_FORCE} THEN '{IN_FORCE_STATUS}' WHEN e.removed_at IS NOT NULL THEN '{REMOVED}' ELSE '{EXPIRED}' END"
)
_SELECT = (
    "SELECT e.id, e.kind, e.entity, e.value, e.last4, e.reason, e.added_by, e.added_at, e.expires_at, "
    f"e.removed_at, e.removed_by, {_STATUS} AS status FROM list_entry e"
)


class ListError(ValueError):
    """A change to the lists that is refused; the message says why, for the person who asked."""


@dataclass(frozen=True)
class ListEntryRow:
    """A list entry as stored, with its status at the database's clock: 'in force', 'expired' or 'removed'."""

    id: int
    kind: ListKind
    entity: Entity
    value: str
    last4: str | None
    reason: str
    added_by: str
    added_at: datetime
    expires_at: datetime | None
    removed_at: datetime | None
    removed_by: str | None
    status: str

    @property
    def ref(self) -> str:
        """How a decision names the entry, e.g. `block-list#12` (fraud.rules.lists.ListHit.ref)."""
        return ListHit(self.kind, self.id, self.entity).ref


@dataclass(frozen=True)
class AuditRow:
    """One add or remove of an entry: who, when, and what (`detail`, as written then)."""

    id: int
    entry_id: int
    action: str
    actor: str
    at: datetime
    detail: dict[str, Any]


def _row(mapping: Any) -> ListEntryRow:
    return ListEntryRow(**{**mapping, "kind": ListKind(mapping["kind"]), "entity": Entity(mapping["entity"])})


def _fetch(connection: Connection, entry_id: int, lock: bool = False) -> ListEntryRow | None:
    query = f"{_SELECT} WHERE e.id = :id" + (" FOR UPDATE" if lock else "")
    found = connection.execute(text(query), {"id": entry_id}).mappings().first()
    return None if found is None else _row(found)


def _one_of(enum: type[ListKind] | type[Entity], value: object, what: str):
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ListError(f"unknown {what} {value!r}: one of {choices}") from None


def _required(value: str | None, what: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise ListError(f"{what} is required and cannot be empty")
    if card_numbers_in(cleaned):  # free text is stored and shown as written: a card number never is
        raise ListError(f"the {what} contains a card number: it would be stored in clear; leave it out")
    return cleaned


def _checked_value(entity: Entity, value: str, last4: str | None) -> str:
    if entity is Entity.CARD:
        token = value.strip().lower()
        if not _TOKEN.fullmatch(token):
            raise ListError("a card entry takes the card's token (64 hex characters), never a card number")
        if last4 is not None and not _LAST4.fullmatch(last4):
            raise ListError(f"last4 is not 4 digits: {last4!r}")
        return token
    if last4 is not None:
        raise ListError(f"last4 is for card entries, not {entity.value} entries")
    cleaned = value.strip()  # as ingestion stores a merchant or category: without surrounding whitespace
    if not cleaned:
        raise ListError(f"the {entity.value} is empty")
    if card_numbers_in(cleaned):
        raise ListError(f"that {entity.value} contains a card number: a card is listed by its token")
    return cleaned


def add_entry(
    engine: Engine,
    kind: ListKind | str,
    entity: Entity | str,
    value: str,
    reason: str,
    actor: str,
    expires_at: datetime | None = None,
    last4: str | None = None,
) -> ListEntryRow:
    """Add an entry in force from now until `expires_at` (None: until removed), with its `add` audit row, in one
    transaction. Refused (ListError) when an entry in force for the same kind, entity and value exists, when the
    expiry is not in the future (the database's clock), when the reason or actor is empty, when a card's value is
    not a card token or a text contains a card number."""
    kind = _one_of(ListKind, kind, "list kind")
    entity = _one_of(Entity, entity, "entity")
    value = _checked_value(entity, value, last4)
    reason = _required(reason, "reason")
    actor = _required(actor, "actor")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ListError("the expiry needs a time zone (a naive datetime is ambiguous)")
    with engine.begin() as connection:
        connection.execute(
            text(f"SELECT pg_advisory_xact_lock({_ADD_LOCK}, hashtext(:key))"),
            {"key": f"{kind.value}:{entity.value}:{value}"},
        )
        now = connection.execute(text("SELECT now()")).scalar_one()
        if expires_at is not None and expires_at <= now:
            raise ListError(f"the expiry {_utc(expires_at)} is not in the future (now: {_utc(now)})")
        existing = connection.execute(
            text(
                f"SELECT e.id FROM list_entry e WHERE {IN_FORCE} AND e.kind = :kind AND e.entity = :entity "
                "AND e.value = :value ORDER BY e.id LIMIT 1"
            ),
            {"kind": kind.value, "entity": entity.value, "value": value},
        ).scalar()
        if existing is not None:
            raise ListError(
                f"{kind.value}-list#{existing} is already in force for this {entity.value}: "
                f"remove it first (fraud lists remove {existing}) to change it"
            )
        entry_id = connection.execute(
            text(
                "INSERT INTO list_entry (kind, entity, value, last4, reason, added_by, expires_at) "
                "VALUES (:kind, :entity, :value, :last4, :reason, :actor, :expires_at) RETURNING id"
            ),
            {
                "kind": kind.value,
                "entity": entity.value,
                "value": value,
                "last4": last4,
                "reason": reason,
                "actor": actor,
                "expires_at": expires_at,
            },
        ).scalar_one()
        detail = {
            "kind": kind.value,
            "entity": entity.value,
            "value": value,
            "last4": last4,
            "reason": reason,
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        }
        _audit(connection, entry_id, "add", actor, detail)
        added = _fetch(connection, entry_id)
    assert added is not None
    return added


def remove_entry(engine: Engine, entry_id: int, actor: str, reason: str) -> ListEntryRow:
    """Stamp an entry removed (now, by `actor`) with its `remove` audit row, in one transaction; the row stays.
    Refused (ListError) when there is no such entry or it was removed already. An expired entry can be removed."""
    actor = _required(actor, "actor")
    reason = _required(reason, "reason")
    with engine.begin() as connection:
        entry = _fetch(connection, entry_id, lock=True)  # of two concurrent removes, the second sees the first
        if entry is None:
            raise ListError(f"no list entry #{entry_id}")
        if entry.removed_at is not None:
            raise ListError(f"{entry.ref} was already removed at {_utc(entry.removed_at)} by {entry.removed_by}")
        connection.execute(
            text("UPDATE list_entry SET removed_at = now(), removed_by = :actor WHERE id = :id"),
            {"actor": actor, "id": entry_id},
        )
        _audit(connection, entry_id, "remove", actor, {"reason": reason, "status_before": entry.status})
        removed = _fetch(connection, entry_id)
    assert removed is not None
    return removed


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _audit(connection: Connection, entry_id: int, action: str, actor: str, detail: dict[str, Any]) -> None:
    connection.execute(
        text(
            "INSERT INTO list_audit (entry_id, action, actor, detail) "
            "VALUES (:entry_id, :action, :actor, CAST(:detail AS jsonb))"
        ),
        {"entry_id": entry_id, "action": action, "actor": actor, "detail": json.dumps(detail)},
    )


def list_entries(
    engine: Engine,
    *,
    kind: ListKind | str | None = None,
    entity: Entity | str | None = None,
    include_inactive: bool = False,
) -> list[ListEntryRow]:
    """The entries in force (with `include_inactive`, the expired and removed ones too), oldest first."""
    where = [] if include_inactive else [IN_FORCE]
    params: dict[str, str] = {}
    if kind is not None:
        where.append("e.kind = :kind")
        params["kind"] = _one_of(ListKind, kind, "list kind").value
    if entity is not None:
        where.append("e.entity = :entity")
        params["entity"] = _one_of(Entity, entity, "entity").value
    query = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY e.id"
    with engine.connect() as connection:
        return [_row(found) for found in connection.execute(text(query), params).mappings()]


def audit_trail(engine: Engine, entry_id: int | None = None, limit: int = 100) -> list[AuditRow]:
    """The newest `limit` audit rows (of one entry, or of all), oldest first."""
    if limit < 1:
        raise ListError(f"limit must be at least 1, not {limit}")
    query = (
        "SELECT * FROM (SELECT id, entry_id, action, actor, at, detail FROM list_audit "
        + ("WHERE entry_id = :entry_id " if entry_id is not None else "")
        + "ORDER BY id DESC LIMIT :limit) newest ORDER BY id"
    )
    with engine.connect() as connection:
        found = connection.execute(text(query), {"entry_id": entry_id, "limit": limit}).mappings()
        return [AuditRow(**row) for row in found]
