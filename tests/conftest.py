"""Shared fixtures: an isolated FRAUD_HOME with its own embedded PostgreSQL, and a moto S3 server."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.figures import FIGURES

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed"


# Fuzz tests take their number of examples from the profile: HYPOTHESIS_PROFILE=soak in `make soak`
hypothesis_settings.register_profile("ci", max_examples=300, deadline=None)
hypothesis_settings.register_profile("soak", max_examples=10_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # under pytest-xdist (`make test` runs two workers) each worker hands its figures over as it ends (see below)
    FIGURES.extend(tuple(figure) for figure in getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures (reliability, security, soak)")
        for test, text in sorted(FIGURES, key=lambda figure: figure[0]):
            terminalreporter.line(f"{test}: {text}")


def _free_port() -> int:
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


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: the controller prints the figures
        session.config.workeroutput["figures"] = list(FIGURES)
    # Each home holds a database, a raw zone and models (up to gigabytes in the soak): left behind, a few runs
    # fill a CI disk.
    if os.environ.get("FRAUD_KEEP_TEST_HOMES"):
        return
    from fraud.db.engine import stop_embedded

    for home in _HOMES:
        stop_embedded(home / "pg")
        shutil.rmtree(home, ignore_errors=True)


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
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.settings import Settings

    with own_fraud_home(prefix):
        settings = Settings()
        engine = get_engine(settings)
        upgrade(engine)
        yield settings, engine
        engine.dispose()


@pytest.fixture(scope="session")
def fraud_env():
    """Point Settings at a fresh FRAUD_HOME for the session; stop its database at the end."""
    from fraud.db.engine import stop_embedded

    home = make_home("fraud-test-")
    saved = {k: v for k, v in os.environ.items() if k.startswith("FRAUD_")}
    for key in saved:
        del os.environ[key]
    os.environ["FRAUD_HOME"] = str(home)
    yield home
    stop_embedded(home / "pg")
    for key in [k for k in os.environ if k.startswith("FRAUD_")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def settings(fraud_env):
    from fraud.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def engine(settings):
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade

    engine = get_engine(settings)
    upgrade(engine)
    return engine


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def aws_credentials(monkeypatch):
    # moto accepts any credentials; these never leave the machine
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def table_dumps(engine) -> dict[str, str]:
    """Every public table's rows as text (COPY ... TO STDOUT), for leak scans."""
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        tables = [
            r[0] for r in cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        ]
        dumps = {}
        for table in tables:
            with cursor.copy(f"COPY {table} TO STDOUT") as copy:
                dumps[table] = b"".join(bytes(block) for block in copy).decode()
        return dumps
