"""Shared fixtures: an isolated FRAUD_HOME with its own embedded PostgreSQL, and a moto S3 server."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers.figures import FIGURES
from tests.helpers.homes import cleanup_homes, free_port, make_home

# Fuzz tests take their number of examples from the profile: HYPOTHESIS_PROFILE=soak in `make soak`
hypothesis_settings.register_profile("ci", max_examples=300, deadline=None)
hypothesis_settings.register_profile("soak", max_examples=10_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The modules `make test-fast` leaves out: they start Spark, a browser, the whole asset graph, train networks, or
# build real Lambda zips (each over about 40 s of the suite on 2 cores). `make test` and CI run them all.
SLOW = (
    "tests/glue/",
    "tests/e2e/",
    "tests/reliability/",
    "tests/security/test_hostile_input.py",
    "tests/app/test_evaluate_cli.py",
    "tests/model/test_model.py",
    "tests/assets/test_model_gate.py",
    "tests/bench/test_bench_robustness.py",
    "tests/lambdas/test_package.py",
    "tests/ingest/test_validation.py",
    "tests/deploy/test_image.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = item.nodeid.split("::")[0]
        if path.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # under pytest-xdist (`make test` runs two workers) each worker hands its figures over as it ends (see below)
    FIGURES.extend(tuple(figure) for figure in getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures (reliability, security, soak)")
        for test, text in sorted(FIGURES, key=lambda figure: figure[0]):
            terminalreporter.line(f"{test}: {text}")


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: the controller prints the figures
        session.config.workeroutput["figures"] = list(FIGURES)
    cleanup_homes()


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
    from fraud.core.settings import Settings

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

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def spark():
    """The Glue job's local Spark session (about 10 s to start), shared by the tests of this process that run Spark."""
    from glue.process_transactions import spark_session

    return spark_session()


@pytest.fixture()
def aws_credentials(monkeypatch):
    # moto accepts any credentials; these never leave the machine
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
