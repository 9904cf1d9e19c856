"""Where the database is: `FRAUD_DATABASE_URL`, or an embedded PostgreSQL from the pgserver wheel in
`FRAUD_HOME/pg` that stays up between runs and is reused."""

from __future__ import annotations

import os
import signal
import time
import warnings
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from fraud.core.settings import Settings


def _sqlalchemy_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def start_embedded(pg_dir: Path) -> str:
    """Start (or find running) the embedded server; returns its URL (Unix socket in pg_dir, no TCP port)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR on headless machines
        import pgserver

        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pg_dir, cleanup_mode=None)
    return server.get_uri()


def stop_embedded(pg_dir: Path, timeout: float = 30.0) -> bool:
    """Fast shutdown of the embedded server, if it runs. Returns whether one was stopped."""
    pid_file = pg_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise TimeoutError(f"embedded PostgreSQL (pid {pid}) did not stop within {timeout:.0f} s")


def rds_url(settings: Settings) -> str:
    """aws mode: RDS with the credentials of its managed secret (rotated by AWS, so read at connect time)."""
    from fraud.core.aws import secret_json

    if settings.db_host is None:
        raise RuntimeError("aws mode needs FRAUD_DB_HOST (the RDS endpoint; `fraud aws-env` prints it)")
    secret = secret_json(settings, settings.db_secret_arn)
    return URL.create(
        "postgresql+psycopg",
        username=secret["username"],
        password=secret["password"],
        host=settings.db_host,
        port=settings.db_port,
        database=settings.db_name,
        query={"sslmode": "require"},
    ).render_as_string(hide_password=False)


def database_url(settings: Settings) -> str:
    if settings.database_url is not None:
        return _sqlalchemy_url(settings.database_url.get_secret_value())
    if settings.mode == "aws" and settings.db_secret_arn is not None:
        return rds_url(settings)
    return _sqlalchemy_url(start_embedded(settings.pg_dir))


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def get_engine(settings: Settings) -> Engine:
    return _engine_for(database_url(settings))


def create_database_if_missing(server: URL | str, name: str) -> URL:
    """The URL of database `name` on the server `server` connects to, created if it does not exist yet. Safe when
    two processes start at once (Dagster's webserver and daemon): the loser of the race finds the database there."""
    engine = create_engine(server, isolation_level="AUTOCOMMIT")  # CREATE DATABASE: no transaction
    try:
        with engine.connect() as connection:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            if not connection.execute(query, {"name": name}).scalar():
                quoted = connection.dialect.identifier_preparer.quote(name)
                try:
                    connection.execute(text(f"CREATE DATABASE {quoted}"))
                except DBAPIError as error:  # duplicate_database, or the catalog's unique index under a race
                    if not connection.execute(query, {"name": name}).scalar():
                        raise error
        return engine.url.set(database=name)
    finally:
        engine.dispose()


def sibling_database(settings: Settings, name: str) -> URL:
    """The URL of database `name` on the platform's server (created on first use), for a neighbour such as
    Dagster's instance storage."""
    return create_database_if_missing(database_url(settings), name)
