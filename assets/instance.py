"""The local Dagster instance: run, event-log and schedule storage in the embedded PostgreSQL (database
`dagster`, beside the platform's own), so that runs launched at the same time never hit SQLite's
"database is locked", and a run queue sized for a 2-core laptop.

`fraud demo`, `fraud ui` (`make ui`) and the browser test all use this one instance, so the UI shows the
demo's materializations. In AWS the team's own Dagster deployment brings its instance."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import DagsterInstance

from fraud.core.settings import Settings
from fraud.db.engine import sibling_database

DAGSTER_DATABASE = "dagster"
# Runs are heavy (Spark, TensorFlow): two at a time on two cores; assets in a pool (the Spark ETL is in pool
# "spark") run one at a time across all runs.
MAX_CONCURRENT_RUNS = 2
POOL_LIMIT = 1
TAG_LIMITS = [{"key": "fraud/engine", "value": "spark", "limit": 1}]  # the sensor's per-batch runs, in arrival order


def _dagster_database_url(settings: Settings) -> str:
    """The instance database on the platform's server: created on first use."""
    # dagster-postgres speaks psycopg2 (SQLAlchemy 2.1 would otherwise pick psycopg 3 for "postgresql://")
    url = sibling_database(settings, DAGSTER_DATABASE).set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def instance_config(settings: Settings) -> dict:
    return {
        "storage": {"postgres": {"postgres_url": _dagster_database_url(settings)}},
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
    """Write FRAUD_HOME/dagster/dagster.yaml (mode 0600: it names the database) and return DAGSTER_HOME."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    content = yaml.safe_dump(instance_config(settings), sort_keys=False)
    if not path.exists() or path.read_text() != content:
        path.touch(mode=0o600)
        path.write_text(content)
    return home


def local_instance(settings: Settings) -> DagsterInstance:
    return DagsterInstance.from_config(str(prepare_instance(settings)))
