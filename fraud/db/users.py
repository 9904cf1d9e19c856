"""The review app's users (`app_user`, migration 0007): who may sign in to `fraud review` and with which role.

Roles: `analyst` works the queue and gives verdicts; `admin` does too, and also sees the users and the recent
verdicts. Passwords are stored only as argon2id hashes (argon2-cffi's PasswordHasher with its default, RFC 9106
"low memory" parameters); a hash made with older parameters is replaced at the next successful sign-in. A user is
never deleted (their name stays on the verdicts they gave): `disable` ends their access, at once, sessions included
(the app reads the user on every request).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

HASHER = PasswordHasher()
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")  # an e-mail address or an IdP subject fits too
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a sign-in request cheap


class Role(StrEnum):
    ANALYST = "analyst"
    ADMIN = "admin"


class UserError(ValueError):
    """A refused user change, with a message for the person who asked."""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise UserError(
            "a username is 1 to 64 characters: letters, digits and . _ @ + - (not starting with a punctuation mark)"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def add_user(engine: Engine, username: str, password: str, role: Role | str) -> User:
    role = Role(role)
    check_username(username)
    password_hash = HASHER.hash(check_password(password))
    try:
        with engine.begin() as connection:
            row = (
                connection.execute(
                    text("""
                    INSERT INTO app_user (username, password_hash, role) VALUES (:username, :hash, :role)
                    RETURNING username, role, created_at, disabled_at"""),
                    {"username": username, "hash": password_hash, "role": role.value},
                )
                .mappings()
                .one()
            )
    except IntegrityError:
        raise UserError(f"user {username!r} exists already") from None
    return _user(row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT username, role, created_at, disabled_at FROM app_user ORDER BY username")
        ).mappings()
        return [_user(row) for row in rows]


def get_user(engine: Engine, username: str) -> User | None:
    with engine.connect() as connection:
        row = (
            connection.execute(
                text("SELECT username, role, created_at, disabled_at FROM app_user WHERE username = :u"),
                {"u": username},
            )
            .mappings()
            .one_or_none()
        )
    return _user(row) if row is not None else None


def disable_user(engine: Engine, username: str) -> User:
    """Ends the user's access (a second call keeps the first time)."""
    with engine.begin() as connection:
        row = (
            connection.execute(
                text("""
                UPDATE app_user SET disabled_at = coalesce(disabled_at, now()) WHERE username = :u
                RETURNING username, role, created_at, disabled_at"""),
                {"u": username},
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise UserError(f"no user {username!r}")
    return _user(row)


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (unknown name, wrong password, disabled user: one
    answer, in about the same time). Rehashes the password when the hasher's parameters have changed."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text("SELECT username, password_hash, role, created_at, disabled_at FROM app_user WHERE username = :u"),
                {"u": username},
            )
            .mappings()
            .one_or_none()
        )
    if len(password) > MAX_PASSWORD:
        return None
    try:
        HASHER.verify(row["password_hash"] if row is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled_at"] is not None:
        return None
    if HASHER.check_needs_rehash(row["password_hash"]):
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE app_user SET password_hash = :hash WHERE username = :u AND password_hash = :old"),
                {"hash": HASHER.hash(password), "u": username, "old": row["password_hash"]},
            )
    return _user(row)


@cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so that a wrong name takes as long as a wrong password (no user
    enumeration by time)."""
    return HASHER.hash("not a password anyone has")


def _user(row) -> User:
    return User(row["username"], Role(row["role"]), row["created_at"], row["disabled_at"])
