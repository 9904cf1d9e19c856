"""Homes, ports and seed data for tests: a fresh FRAUD_HOME with its own embedded PostgreSQL, removed at the end
of the session (see `cleanup_homes`, called from tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

SEED_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "seed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_HOMES: list[Path] = []


def make_home(prefix: str) -> Path:
    """A fresh FRAUD_HOME folder, removed when the test session ends (FRAUD_KEEP_TEST_HOMES=1 keeps them)."""
    # mkdtemp + 0755: the embedded server runs as an unprivileged user that must reach its data folder
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    _HOMES.append(home)
    return home


# A world big enough for the model to pass its quality gate, small enough for a test: the e2e tests' default.
SMALL_WORLD = {
    "FRAUD_SIM_CUSTOMERS": "400",
    "FRAUD_SIM_DAYS": "8",
    "FRAUD_SIM_FRAUD_RATE": "0.03",
    "FRAUD_TEST_DAYS": "2",
    "FRAUD_ALERT_BUDGET_PER_DAY": "15",
}


@contextmanager
def own_fraud_home(prefix: str, **overrides: str):
    """A fresh FRAUD_HOME (own embedded PostgreSQL) with FRAUD_* overrides in the environment for the block; the
    database is stopped and the environment restored afterwards."""
    home = make_home(prefix)
    overrides = {"FRAUD_HOME": str(home), **overrides}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield home
    finally:
        from fraud.db.engine import stop_embedded

        stop_embedded(home / "pg")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def own_migrated_home(prefix: str):
    """own_fraud_home with its database migrated: yields (settings, engine); the engine is disposed afterwards."""
    from fraud.core.settings import Settings
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade

    with own_fraud_home(prefix):
        settings = Settings()
        engine = get_engine(settings)
        upgrade(engine)
        yield settings, engine
        engine.dispose()


def table_dumps(engine) -> dict[str, str]:
    """Every public table's rows as text (COPY ... TO STDOUT), for leak scans."""
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        tables = [
            r[0] for r in cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        ]
        dumps = {}
        for table in tables:
            with cursor.copy(f"COPY (SELECT * FROM {table}) TO STDOUT") as copy:  # a partitioned table too
                dumps[table] = b"".join(bytes(block) for block in copy).decode()
        return dumps


def cleanup_homes() -> None:
    """Stop and remove every home made in this process (FRAUD_KEEP_TEST_HOMES=1 keeps them)."""
    # Each home holds a database, a raw zone and models (up to gigabytes in the soak): left behind, a few runs
    # fill a CI disk.
    if os.environ.get("FRAUD_KEEP_TEST_HOMES"):
        return
    from fraud.db.engine import stop_embedded

    for home in _HOMES:
        stop_embedded(home / "pg")
        shutil.rmtree(home, ignore_errors=True)
