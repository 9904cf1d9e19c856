"""The local Dagster instance: run, event-log and schedule storage in the embedded PostgreSQL (database
`dagster`, beside the platform's own), so that runs launched at the same time never hit SQLite's
"database is locked", and a run queue sized for a 2-core laptop.

`fraud demo`, `fraud ui` (`make ui`) and the browser test all use this one instance, so the UI shows the
demo's materializations. In AWS the team's own Dagster deployment brings its instance."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from dagster import DagsterInstance

from fraud.core.settings import Settings
from fraud.core.storage import private_dir, write_private
from fraud.db.engine import sibling_database

DAGSTER_DATABASE = "dagster"
# Runs are heavy (Spark, TensorFlow): two at a time on two cores; assets in a pool (the Spark ETL is in pool
# "spark") run one at a time across all runs.
MAX_CONCURRENT_RUNS = 2
POOL_LIMIT = 1
TAG_LIMITS = [{"key": "fraud/engine", "value": "spark", "limit": 1}]  # the sensor's per-batch runs, in arrival order


# A URL holding a password is never written into dagster.yaml: the file names this variable ({"env": ...}) and
# prepare_instance sets it in this process, so the processes it starts (webserver, daemon, runs) inherit it. A
# process of its own reading the instance (`dagster sensor start`) then needs it in its environment too. The
# embedded server's URL has no password and is written as it is.
DATABASE_URL_VARIABLE = "FRAUD_DAGSTER_DATABASE_URL"


def _postgres_url(settings: Settings) -> str | dict:
    """The instance database on the platform's server (created on first use), as dagster.yaml's postgres_url."""
    # dagster-postgres speaks psycopg2 (SQLAlchemy 2.1 would otherwise pick psycopg 3 for "postgresql://")
    url = sibling_database(settings, DAGSTER_DATABASE).set(drivername="postgresql+psycopg2")
    if not url.password:
        return url.render_as_string(hide_password=False)
    os.environ[DATABASE_URL_VARIABLE] = url.render_as_string(hide_password=False)
    return {"env": DATABASE_URL_VARIABLE}


def instance_config(settings: Settings) -> dict:
    return {
        "storage": {"postgres": {"postgres_url": _postgres_url(settings)}},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": {
            "runs": {"max_concurrent_runs": MAX_CONCURRENT_RUNS, "tag_concurrency_limits": TAG_LIMITS},
            "pools": {"default_limit": POOL_LIMIT},
        },
        "run_monitoring": {"enabled": True},
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},  # no "join the community" pop-up over the operator's first page
    }


def prepare_instance(settings: Settings) -> Path:
    """Write FRAUD_HOME/dagster/dagster.yaml (mode 0600 in a 0700 folder; no password: see DATABASE_URL_VARIABLE)
    and return DAGSTER_HOME."""
    home = private_dir(settings.dagster_home)
    path = home / "dagster.yaml"
    content = yaml.safe_dump(instance_config(settings), sort_keys=False)
    if not path.exists() or path.read_text() != content:
        write_private(path, content.encode())
    return home


def local_instance(settings: Settings) -> DagsterInstance:
    return DagsterInstance.from_config(str(prepare_instance(settings)))
