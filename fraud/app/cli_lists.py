"""`fraud lists`: the block and allow lists on the command line (add, remove, show, audit; docs/lists.md).

A card is listed by its token: a card number given to `add` is tokenised here with the platform's keyed HMAC
(fraud/core/privacy.py, the key from Settings) and only the token and the last 4 digits go further; the number is
never stored, printed or logged. `-` as the value reads it from stdin, out of the shell's history."""

from __future__ import annotations

import getpass
import json
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fraud.core.settings import Settings
from fraud.rules.lists import Entity, ListKind

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fraud.db.lists import AuditRow, ListEntryRow

lists_app = typer.Typer(
    help="The block and allow lists: entries on a card, a merchant or a category that decide before the rules "
    "(a block entry blocks, an allow entry approves, block wins). Every add and remove is audited. "
    "Example: fraud lists add block merchant 'fraud_Kirlin and Sons' --reason 'chargeback ring' --for 30d",
    no_args_is_help=True,
)

PIPED_WIDTH = 1_000  # as fraud.app.cli: piped output has no screen to fit, so no table cell wraps
_DURATION = re.compile(r"([0-9]+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_TOKEN = re.compile(r"[0-9a-fA-F]{64}")
_CARD_NUMBER = re.compile(r"[0-9]{8,19}")  # fraud/core/privacy.py normalize_card_number's range
SHOWN = 12  # a token's first characters on a screen, never the whole token


def output() -> Console:
    """stdout's console; piped, one wide enough that a table keeps each cell on one line (as fraud.app.cli)."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _engine() -> Engine:
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.roles import DbRole

    engine = get_engine(Settings(), role=DbRole.WRITER)
    upgrade(engine)  # a fresh home: empty lists, rather than "relation does not exist"
    return engine


def _actor(by: str | None) -> str:
    if by is not None:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        raise typer.BadParameter("cannot tell who you are: give --by NAME", param_hint="--by") from None


def _expiry(expires: str | None, duration: str | None) -> datetime | None:
    """--expires (a date: the end of that day, UTC; a datetime: UTC unless it has an offset) or --for (7d, 12h, 30m
    from now), as an aware datetime."""
    if expires is not None and duration is not None:
        raise typer.BadParameter("give --expires or --for, not both", param_hint="--expires/--for")
    if duration is not None:
        found = _DURATION.fullmatch(duration.strip())
        if found is None or int(found[1]) == 0:
            raise typer.BadParameter(
                f"not a duration such as 7d, 12h or 30m: {duration!r}", param_hint="--for"
            ) from None
        return datetime.now(UTC).replace(microsecond=0) + timedelta(**{_UNITS[found[2]]: int(found[1])})
    if expires is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(expires) + timedelta(days=1), time(), tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(expires)
    except ValueError:
        raise typer.BadParameter(
            f"not an ISO date or datetime (2026-12-31, 2026-12-31T12:00Z, 2026-12-31T12:00+01:00): {expires!r}",
            param_hint="--expires",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _card(value: str) -> tuple[str, str | None]:
    """A card VALUE as (token, last4): a token as given (last4 unknown), a card number tokenised. The number
    itself is never part of a message."""
    if _TOKEN.fullmatch(value):
        return value.lower(), None
    from fraud.core.privacy import card_token, normalize_card_number

    grouped = value.replace(" ", "").replace("-", "")  # "4111 1111 …", "4111-1111-…"
    digits = normalize_card_number(grouped) if _CARD_NUMBER.fullmatch(grouped) else None
    if digits is None:
        raise typer.BadParameter(
            "a card is a card number (8 to 19 digits, spaces or dashes allowed) or its token (64 hex characters)",
            param_hint="VALUE",
        )
    return card_token(digits, Settings().token_key()), digits[-4:]


def _utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _shown(entity: str, value: str, last4: str | None, prefix: str = "card ") -> str:
    """An entry's value for a screen: a card as `card …1234 3fa85f64a1b2…`, never its whole token."""
    if entity != Entity.CARD:
        return value
    return prefix + (f"…{last4} " if last4 else "") + value[:SHOWN] + "…"


def _described(entry: ListEntryRow) -> str:
    if entry.removed_at is not None:
        until = f"by {entry.removed_by}"
    else:
        until = f"until {_utc(entry.expires_at)} UTC" if entry.expires_at else "until removed"
    shown = _shown(entry.entity, entry.value, entry.last4, prefix="")
    return f"{entry.ref}: {entry.kind.value} {entry.entity.value} {shown}, {until}"


def _read_stdin(entity: Entity) -> str:
    """VALUE `-`: a line of stdin; at a terminal, asked for (a card without echoing it)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    if entity is Entity.CARD:
        return getpass.getpass("card number or token (not echoed): ").strip()
    return input(f"{entity.value}: ").strip()


@lists_app.command("add")
def add(
    kind: ListKind = typer.Argument(..., metavar="KIND", help="block or allow.", show_default=False),
    entity: Entity = typer.Argument(..., metavar="ENTITY", help="card, merchant or category.", show_default=False),
    value: str = typer.Argument(
        ...,
        metavar="VALUE",
        help="The merchant or category as transactions name it; for a card, its number, its token (64 hex), "
        "or - to read either from stdin (keeps a card number out of shell history).",
        show_default=False,
    ),
    reason: str = typer.Option(..., "--reason", help="Why: kept with the entry and in the audit trail."),
    expires: str = typer.Option(
        None, "--expires", metavar="WHEN", help="Expiry: a date (in force through that day, UTC) or a datetime."
    ),
    duration: str = typer.Option(None, "--for", metavar="DURATION", help="Expiry from now: 7d, 12h or 30m."),
    by: str = typer.Option(None, "--by", metavar="NAME", help="Who adds it (default: your user name)."),
) -> None:
    """Add a block or allow entry, in force from now until its expiry (none: until removed).

    A card number is tokenised with the platform's key and only its token and last 4 digits are kept; it is
    never stored or printed. Refused when an entry in force already lists the same value on the same list.

    Examples: fraud lists add block merchant 'fraud_Kirlin and Sons' --reason 'chargeback ring' --for 30d;
    fraud lists add allow card - --reason 'travel, confirmed by phone' --expires 2026-12-31 (asks for the card
    number without echoing it; or pipe it in from a file or a password manager: never with echo, which leaves it
    in the shell's history)."""
    from fraud.db.lists import ListError, add_entry

    expires_at = _expiry(expires, duration)
    actor = _actor(by)
    last4 = None
    from_stdin = value == "-"
    if from_stdin:
        value = _read_stdin(entity)
        if not value:
            raise typer.BadParameter("nothing on stdin", param_hint="VALUE")
    if entity is Entity.CARD:
        value, last4 = _card(value)
        if last4 is not None and not from_stdin:
            typer.echo("note: that card number is now in your shell's history; `-` reads it from stdin", err=True)
    try:
        entry = add_entry(_engine(), kind, entity, value, reason, actor, expires_at=expires_at, last4=last4)
    except ListError as error:
        raise fail(str(error)) from None
    print(f"added {_described(entry)}")


@lists_app.command("remove")
def remove(
    entry_id: int = typer.Argument(..., metavar="ID", help="The entry's id (fraud lists show).", show_default=False),
    reason: str = typer.Option(..., "--reason", help="Why: kept in the audit trail."),
    by: str = typer.Option(None, "--by", metavar="NAME", help="Who removes it (default: your user name)."),
) -> None:
    """Remove an entry: it stops applying now; the entry and its audit trail stay.

    Example: fraud lists remove 12 --reason 'merchant cleared by the acquirer'"""
    from fraud.db.lists import ListError, remove_entry

    actor = _actor(by)
    try:
        entry = remove_entry(_engine(), entry_id, actor, reason)
    except ListError as error:
        raise fail(str(error)) from None
    print(f"removed {_described(entry)}")


def _entry_json(entry: ListEntryRow) -> dict[str, Any]:
    times = ("added_at", "expires_at", "removed_at")
    return {
        **entry.__dict__,
        "ref": entry.ref,
        **{name: getattr(entry, name) and getattr(entry, name).astimezone(UTC).isoformat() for name in times},
    }


@lists_app.command("show")
def show(
    kind: ListKind = typer.Option(None, "--kind", help="Only block or only allow entries."),
    entity: Entity = typer.Option(None, "--entity", help="Only card, merchant or category entries."),
    everything: bool = typer.Option(False, "--all", help="Also the expired and removed entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line (full card token), no table."),
) -> None:
    """Show the entries in force (--all: every entry), oldest first; times in UTC.

    A card shows as `card …1234` (its last 4 digits) and its token's first 12 characters.

    Examples: fraud lists show; fraud lists show --kind block --entity card --all --json"""
    from fraud.db.lists import list_entries

    found = list_entries(_engine(), kind=kind, entity=entity, include_inactive=everything)
    if as_json:
        for entry in found:
            print(json.dumps(_entry_json(entry), separators=(",", ":")))
        return
    if not found:
        typer.echo("no list entries" + ("" if everything else " in force (--all: expired and removed too)"), err=True)
        return
    table = Table()
    for title in ("id", "kind", "entity", "value", "reason", "added by", "added (UTC)", "expires (UTC)", "status"):
        table.add_column(title, justify="right" if title == "id" else "left", no_wrap=title not in ("value", "reason"))
    for entry in found:
        table.add_row(
            str(entry.id),
            entry.kind.value,
            entry.entity.value,
            Text(_shown(entry.entity, entry.value, entry.last4)),  # Text: data, never rich markup
            Text(entry.reason),
            Text(entry.added_by),
            _utc(entry.added_at),
            _utc(entry.expires_at),
            entry.status,
        )
    output().print(table)


_DETAIL_ORDER = ("kind", "entity", "value", "reason", "expires_at")


def _detail(row: AuditRow) -> str:
    """An audit row's detail on one line, in a fixed order (JSONB keeps its own), a card's token shortened."""
    detail = dict(row.detail)
    if "value" in detail:
        detail["value"] = _shown(detail.get("entity", ""), detail["value"], detail.pop("last4", None), prefix="")
    keys = [key for key in _DETAIL_ORDER if key in detail] + sorted(set(detail) - set(_DETAIL_ORDER))
    return ", ".join(f"{key}: {detail[key]}" for key in keys if detail[key] is not None)


@lists_app.command("audit")
def audit(
    entry_id: int = typer.Argument(None, metavar="[ID]", help="Only this entry's trail.", show_default=False),
    limit: int = typer.Option(100, "--limit", min=1, metavar="N", help="At most the newest N rows."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, no table."),
) -> None:
    """The audit trail of the lists: every add and remove, who and when, oldest first (the newest N).

    Examples: fraud lists audit; fraud lists audit 12"""
    from fraud.db.lists import audit_trail

    found = audit_trail(_engine(), entry_id, limit)
    if as_json:
        for row in found:
            print(json.dumps({**row.__dict__, "at": row.at.astimezone(UTC).isoformat()}, separators=(",", ":")))
        return
    if not found:
        typer.echo("no audit rows" + (f" for entry #{entry_id}" if entry_id is not None else ""), err=True)
        return
    table = Table()
    for title in ("at (UTC)", "entry", "action", "by", "detail"):
        table.add_column(title, justify="right" if title == "entry" else "left", no_wrap=title != "detail")
    for row in found:
        table.add_row(_utc(row.at), str(row.entry_id), row.action, Text(row.actor), Text(_detail(row)))
    output().print(table)
    if len(found) == limit:
        typer.echo(f"the newest {limit}; there may be more (--limit)", err=True)
