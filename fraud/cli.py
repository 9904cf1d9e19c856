"""`fraud`: the command line of the card-fraud platform."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import typer
from rich.console import Console

from fraud.settings import REPO_ROOT, Settings

app = typer.Typer(help="Card-fraud detection platform: simulate, process, train, score, report and alert.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The PostgreSQL database (embedded locally unless FRAUD_DATABASE_URL is set).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()


@app.command()
def demo() -> None:
    """Run the whole asset graph once on the local default and print the report's path.

    Simulates card traffic into FRAUD_HOME/s3, processes it with PySpark into PostgreSQL, trains the model,
    scores every transaction, writes the HTML report and the alert emails (FRAUD_HOME/outbox)."""
    settings = Settings()
    console.print(f"FRAUD_HOME = {settings.home}")
    # The demo drives the Dagster code location; fraud/ itself stays free of Dagster imports.
    run_demo = importlib.import_module("assets.demo").run_demo
    report = run_demo(settings, console)
    console.print(f"outbox: {settings.outbox_dir}")
    print(f"report: {report}")


@app.command()
def ui(port: int = typer.Option(3000, help="Port of the Dagster webserver on 127.0.0.1.")) -> None:
    """Start the Dagster UI (dagster dev) on http://127.0.0.1:PORT with the persistent instance in FRAUD_HOME."""
    settings = Settings()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    (settings.dagster_home / "dagster.yaml").touch()
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home)}
    console.print(f"Dagster UI: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    try:
        subprocess.run(command, env=env, check=False)
    except KeyboardInterrupt:
        pass


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to head."""
    from fraud.db.engine import get_engine
    from fraud.db.migrate import current_revision, upgrade

    engine = get_engine(Settings())
    upgrade(engine)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (it otherwise stays up between runs)."""
    from fraud.db.engine import stop_embedded

    stopped = stop_embedded(Settings().pg_dir)
    console.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("counts")
def db_counts() -> None:
    """Row counts of the star schema's tables."""
    from fraud.db.engine import get_engine
    from fraud.db.queries import table_counts

    tables = ("dim_card", "dim_merchant", "dim_category", "fact_transaction", "transaction_features",
              "transaction_label", "fraud_score", "customer_alert", "batch_load")
    for table, count in table_counts(get_engine(Settings()), tables).items():
        console.print(f"{table:22} {count:>10,}")


if __name__ == "__main__":
    app()
