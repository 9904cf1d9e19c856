"""`fraud review` (the analyst review app, docs/review.md) and `fraud users` (who may sign in to it).

A password is never an argument (it would stay in the shell's history and in the process list): `fraud users add`
asks for it twice at a hidden prompt, or reads one line from stdin when stdin is not a terminal
(`printf '%s\\n' "$PASSWORD" | fraud users add ana --role analyst`)."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fraud.core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

PIPED_WIDTH = 1_000  # as fraud.app.cli: piped output has no screen to fit


class RoleChoice(StrEnum):  # fraud.db.users.Role's values; that module (SQLAlchemy, argon2) loads only when used
    ANALYST = "analyst"
    ADMIN = "admin"


users_app = typer.Typer(
    help="The review app's users: analysts (the queue, verdicts) and admins (also the users and the latest verdicts). "
    "Example: fraud users add ana --role analyst",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Adds `fraud review` and `fraud users` to the `fraud` command."""
    app.command("review")(review)
    app.add_typer(users_app, name="users")


def review(
    port: int = typer.Option(8100, min=1, max=65535, help="Port on 127.0.0.1."),
    trust_header: str = typer.Option(
        None,
        "--trust-header",
        metavar="HEADER",
        help="Take the user from this request header, set by an authenticating proxy in front (e.g. "
        "x-amzn-oidc-identity behind an ALB with OIDC); no password sign-in. Off by default: only behind a proxy "
        "that always sets it. See docs/review.md.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request (uvicorn's access log)."),
) -> None:
    """Serve the analyst review app on http://127.0.0.1:PORT: the queue of open cases (risk, then age), each case's
    evidence and verdict form, customers' answer links (/answer), the admin's view. Sign in as a user of
    `fraud users add`."""
    from fraud.app.review.app import serve

    console = Console()
    serve(Settings(), port, trusted_header=trust_header, verbose=verbose, say=console.print)


def _engine() -> Engine:
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.roles import DbRole

    engine = get_engine(Settings(), role=DbRole.REVIEW)
    upgrade(engine)  # a fresh home: no users, rather than "relation does not exist"
    return engine


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise fail("the two passwords differ; nothing was changed")
    return first


@users_app.command("add")
def add(
    name: str = typer.Argument(..., metavar="NAME", help="The username (an e-mail address or an IdP subject fits)."),
    role: RoleChoice = typer.Option(..., "--role", case_sensitive=False, help="analyst or admin."),
) -> None:
    """Add a user. The password (12 characters or more) comes from a hidden prompt, or from the first line of stdin
    when it is not a terminal; it is stored as an argon2id hash only."""
    from fraud.db.users import UserError, add_user, check_password, check_username

    try:
        check_username(name)
        password = check_password(_password())
        user = add_user(_engine(), name, password, role.value)
    except UserError as error:
        raise fail(str(error)) from None
    typer.echo(f"added {user.username} ({user.role.value})")


@users_app.command("list")
def list_(
    show_all: bool = typer.Option(True, "--all/--active", help="Disabled users too (default), or only active ones."),
) -> None:
    """The users, their role, when they were added and whether they are disabled."""
    from fraud.db.users import list_users

    users = [u for u in list_users(_engine()) if show_all or u.active]
    if not users:
        typer.echo("no users yet: fraud users add NAME --role analyst", err=True)
        return
    table = Table()
    for title in ("username", "role", "created (UTC)", "disabled (UTC)"):
        table.add_column(title, no_wrap=True)
    for u in users:
        table.add_row(
            Text(u.username),
            u.role.value,
            u.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            u.disabled_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if u.disabled_at else "",
        )
    console = Console()
    (console if console.is_terminal else Console(width=PIPED_WIDTH)).print(table)


@users_app.command("disable")
def disable(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Disable a user: their access ends at once, sessions included. Their verdicts keep their name."""
    from fraud.db.users import UserError, disable_user

    try:
        user = disable_user(_engine(), name)
    except UserError as error:
        raise fail(str(error)) from None
    typer.echo(f"disabled {user.username} (since {user.disabled_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
