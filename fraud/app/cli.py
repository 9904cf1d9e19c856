"""`fraud`: the command line of the card-fraud platform."""

from __future__ import annotations

import typer
from rich.console import Console

from fraud.app import cli_review
from fraud.app.cli_lists import lists_app
from fraud.app.cli_rules import rules_app
from fraud.core.settings import Settings

app = typer.Typer(
    help="Card-fraud detection platform: simulate, process, train, score, report and alert.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(
    help="The PostgreSQL database (embedded locally unless FRAUD_DATABASE_URL is set).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(lists_app, name="lists")
app.add_typer(rules_app, name="rules")
console = Console()
PIPED_WIDTH = 1_000  # piped output has no screen to fit: wide enough that no table cell wraps mid-word


def output() -> Console:
    """The terminal's console; when stdout is piped or redirected, one without rich's default 80 columns, so
    tables keep each cell (a long object key) on one line for the next program."""
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


@app.command()
def demo(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show Spark's, TensorFlow's and Dagster's own output instead of logging it."
    ),
) -> None:
    """Run the whole asset graph once on the local default and print the report's path.

    Simulates card traffic into FRAUD_HOME/s3, processes it with PySpark into PostgreSQL, trains the model,
    scores every transaction, writes the HTML report and the alert emails (FRAUD_HOME/outbox). Prints one line
    per asset; the libraries' output goes to FRAUD_HOME/logs/demo-<time>.log (its path is printed) unless
    --verbose. Exits 1 when an asset fails, with the error and the log's last lines."""
    from fraud.app.demo import DemoFailed, log_tail, run_demo  # here: Dagster takes seconds to import

    settings = Settings()
    try:
        report = run_demo(settings, verbose=verbose)
    except DemoFailed as failure:
        typer.echo(f"error: {failure}", err=True)
        if failure.log:
            typer.echo(f"log: {failure.log}, its last lines:", err=True)
            typer.echo("\n".join(f"  {line}" for line in log_tail(failure.log)), err=True)
        raise typer.Exit(1) from None
    print(f"outbox: {settings.outbox_dir}")
    print(f"report: {report}")


@app.command()
def simulate(
    start_day: str = typer.Option(None, "--start-day", help="First day, YYYY-MM-DD (default FRAUD_SIM_START)."),
    days: int = typer.Option(None, "--days", min=1, help="Number of daily batches (default FRAUD_SIM_DAYS)."),
    customers: int = typer.Option(
        None, "--customers", min=1, help="Cardholders in the world (default FRAUD_SIM_CUSTOMERS)."
    ),
    seed: int = typer.Option(None, "--seed", help="World and traffic seed (default FRAUD_SIM_SEED)."),
) -> None:
    """Simulate days of card traffic into the raw zone: one transaction batch per day and its labels, under the
    days they become known (deterministic: the same options find the same objects; an existing batch with other
    content is never overwritten). See docs/simulator.md."""
    from datetime import date, timedelta

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fraud.ingest.generator import BatchConflict, generate

    settings = Settings()
    try:
        first = date.fromisoformat(start_day) if start_day else settings.sim_start
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {start_day!r}", param_hint="--start-day") from None
    total = days or settings.sim_days
    event = {"customers": customers or settings.sim_customers, "seed": settings.sim_seed if seed is None else seed}
    rows = frauds = unlabelled = 0
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("simulating days", total=total)
            for offset in range(total):  # one day per call, so the bar moves
                day = (first + timedelta(days=offset)).isoformat()
                result = generate({**event, "start_day": day, "days": 1}, settings)
                for batch in result["batches"]:
                    rows, frauds = rows + batch["rows"], frauds + batch["frauds"]
                    unlabelled += batch["unlabelled_frauds"]
                bar.update(task, advance=1, description=f"simulating {day}")
    except BatchConflict as conflict:  # a refusal, not a crash: say what and why, no traceback
        typer.echo(f"BatchConflict: {conflict}", err=True)
        raise typer.Exit(1) from None
    console.print(
        f"{total} daily batches, {rows:,} transactions, {frauds:,} fraudulent "
        f"({frauds / max(rows, 1):.2%}, {unlabelled:,} of them never labelled) in {settings.raw_bucket}/transactions/",
        soft_wrap=True,  # piped: one line, not rich's 80 columns
    )


@app.command()
def ingest(
    file: str = typer.Argument(
        ...,
        metavar="FILE",
        show_default=False,
        help="A Sparkov-schema CSV (the seed files, the Kaggle files); must exist.",
    ),
    batch_id: str | None = typer.Option(None, "--batch-id", help="Batch id (default: csv-<sha256 of the file>)."),
) -> None:
    """Ingest a CSV of card transactions into the raw zone: accepted rows as one raw batch (and its labels when
    the file has is_fraud), exact duplicates dropped, every other row quarantined with one reason.

    Exit status: 0 when rows were accepted (or the file has none), 1 when every row was quarantined (nothing
    ingested; the quarantine object says why per row), 2 when the file is missing or not a CSV."""
    from pathlib import Path

    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table
    from rich.text import Text

    from fraud.ingest.csv_files import IngestError, ingest_csv

    path = Path(file)
    if not path.is_file():
        typer.echo(f"error: {file}: {'is a folder, not a file' if path.is_dir() else 'no such file'}", err=True)
        raise typer.Exit(2)
    settings = Settings()
    with Progress(
        TextColumn("reading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(escape(path.name), total=path.stat().st_size)
        try:
            summary = ingest_csv(
                path,
                settings,
                batch_id=batch_id,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except IngestError as error:
            bar.stop()
            typer.echo(f"error: {file}: {error}", err=True)
            raise typer.Exit(2) from None

    table = Table(show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", overflow="fold")
    table.add_row("rows read", f"{summary.rows_read:,}")
    table.add_row("accepted", f"{summary.accepted:,}")
    table.add_row("duplicates dropped", f"{summary.duplicates:,}")
    table.add_row("quarantined", f"{summary.quarantined:,}")
    for reason, count in summary.reasons.items():
        table.add_row(f"  {reason}", f"{count:,}")
    if summary.labels_key:
        table.add_row("labels (frauds)", f"{summary.labels:,} ({summary.frauds:,})")
    extra = escape(", ".join(repr(name) for name in summary.extra_columns))
    table.add_row("extra columns dropped", f"{len(summary.extra_columns)}" + (f": {extra}" if extra else ""))
    bucket = settings.raw_bucket
    for name, key in (
        ("transactions", summary.transactions_key),
        ("labels", summary.labels_key),
        ("quarantine", summary.quarantine_key),
    ):
        table.add_row(f"{name} key", Text(f"{bucket}/{key}", justify="left") if key else "-")
    out = output()
    out.print(f"{escape(path.name)} → batch {summary.batch_id}  ({summary.seconds:.2f} s)", highlight=False)
    out.print(table)
    if summary.accepted == 0 and summary.quarantined:
        why = summary.header_problem or ", ".join(f"{reason} {count:,}" for reason, count in summary.reasons.items())
        typer.echo(f"error: {file}: every row quarantined, nothing ingested: {why}", err=True)
        raise typer.Exit(1)


@app.command()
def evaluate(
    csv: str = typer.Option(..., "--csv", metavar="FILE", help="A Sparkov-schema CSV with an is_fraud column."),
    train_start: str = typer.Option(
        None,
        "--train-start",
        help="First training day, YYYY-MM-DD (default: the test window ends on the file's last day).",
    ),
    train_days: int = typer.Option(7, "--train-days", min=1, help="Days of the train window."),
    delay_days: int = typer.Option(
        None,
        "--delay-days",
        min=0,
        show_default=False,
        help="Days between the train and the test window (the protocol's delay window: its transactions set the "
        "alert threshold, their labels are not trained on). Default: the label delay rounded up to whole days, "
        "as the fraud_model asset does, so every train-window label has arrived when the test window starts.",
    ),
    test_days: int = typer.Option(7, "--test-days", min=1, help="Days of the test window."),
    label_delay_days: float = typer.Option(
        None,
        "--label-delay-days",
        min=0,
        metavar="N",
        show_default=False,
        help="The CSV's labels become known N days after each transaction (default: FRAUD_LABEL_DELAY_DAYS, 2). "
        "Not --delay-days: this says when labels arrive, that how far apart the train and test windows are; "
        "train-window rows labelled after the test window starts are not trained on.",
    ),
    json_out: str = typer.Option(None, "--json", metavar="OUT", help="Also write the JSON to this file."),
    scores: str = typer.Option(
        None,
        "--scores",
        metavar="FILE",
        help="Also write every test-window row as CSV: trans_num, event_time, card_token, "
        "is_fraud and one score column per model (the network, each baseline, random).",
    ),
) -> None:
    """Evaluate the model on a labelled CSV: ingest -> ETL -> train -> evaluate in a throwaway FRAUD_HOME, and print
    the test-window metrics of the neural network and of each baseline as JSON. The windows are checked before
    training: when the train or the test window holds no fraud it exits 1, says what each window holds and
    suggests windows that fit the file."""
    from fraud.app.evaluate import evaluate_command

    raise typer.Exit(
        evaluate_command(
            csv,
            train_start,
            train_days,
            delay_days,
            test_days,
            json_out,
            say=lambda message: typer.echo(message, err=True),
            label_delay_days=label_delay_days,
            scores=scores,
        )
    )


@app.command()
def report() -> None:
    """Build the stakeholder report of the promoted model (HTML + CSV of flagged transactions) into the reports
    bucket and print the path of latest.html."""
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.roles import DbRole
    from fraud.outreach.report import publish_report

    settings = Settings()
    engine = get_engine(settings, role=DbRole.REPORTING)
    upgrade(engine)
    try:
        published = publish_report(engine, settings)
    except LookupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    headline = published.report.headline
    console.print(
        f"{headline['transactions']:,} transactions, {headline['flagged']:,} flagged, "
        f"{headline['emails_sent']:,} customer emails sent; CSV: {published.csv}",
        soft_wrap=True,
    )
    print(f"report: {published.latest}")


def _moment(value: str | None, option: str, end_of_day: bool = False):
    """An ISO date or datetime option as an aware UTC datetime (naive means UTC). A bare date is its midnight,
    or with `end_of_day` the next midnight, so `--until 2026-12-05` includes that day."""
    from datetime import UTC, date, datetime, time, timedelta

    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1 if end_of_day else 0), time(), tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"not an ISO date or datetime (2026-12-05, 2026-12-05T14:30, 2026-12-05T14:30:00+01:00): {value!r}",
            param_hint=option,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
def decisions(
    card: str = typer.Option(
        None, "--card", metavar="TOKEN", help="A card token, or its first characters as the table shows them."
    ),
    last4: str = typer.Option(None, "--last4", metavar="NNNN", help="The card's last 4 digits."),
    flagged: bool = typer.Option(
        None, "--flagged/--not-flagged", show_default=False, help="Only flagged, or only not flagged, answers."
    ),
    model: str = typer.Option(None, "--model", metavar="VERSION", help="Only answers of this model version."),
    since: str = typer.Option(
        None, "--since", metavar="WHEN", help="Received at or after: ISO date or datetime, UTC unless it has an offset."
    ),
    until: str = typer.Option(
        None, "--until", metavar="WHEN", help="Received before this datetime, or up to the end of this date (UTC)."
    ),
    limit: int = typer.Option(50, "--limit", min=1, metavar="N", help="At most N answers, the newest."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line (full card token, reasons, channel), no table."
    ),
) -> None:
    """List the real-time path's recorded answers (`fraud serve`, the scorer Lambda), newest first.

    Every answer of POST /v1/score and of the Lambda's real-time event is recorded before it is sent (table
    realtime_decision): the transaction, score, flag, reasons, model and feature versions, latency. The table
    shows a card by its token's first 8 characters and last 4 digits; --json is for scripts.

    Examples: fraud decisions --flagged --since 2026-12-05; fraud decisions --card 3fa85f64 --json."""
    import json
    from datetime import UTC

    from rich.table import Table
    from rich.text import Text

    from fraud.core.privacy import card_numbers_in
    from fraud.db.decisions import DecisionFilter, recent_decisions
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.roles import DbRole

    if card is not None and card_numbers_in(card):  # refused, not searched: a card number is never a token
        raise typer.BadParameter(
            "that is a card number: give its token, or its last 4 digits with --last4", param_hint="--card"
        )
    if last4 is not None and not (len(last4) == 4 and last4.isdigit()):
        raise typer.BadParameter(f"not 4 digits: {last4!r}", param_hint="--last4")
    where = DecisionFilter(
        card_token=card,
        last4=last4,
        flagged=flagged,
        model_version=model,
        since=_moment(since, "--since"),
        until=_moment(until, "--until", end_of_day=True),
        limit=limit,
    )
    if where.since and where.until and where.since >= where.until:
        raise typer.BadParameter(f"--since {since} is not before --until {until}", param_hint="--since/--until")
    engine = get_engine(Settings(), role=DbRole.REPORTING)
    upgrade(engine)  # a fresh home: no decisions, rather than "relation does not exist"
    found = recent_decisions(engine, where)
    if as_json:
        for d in found:
            times = {name: getattr(d, name).astimezone(UTC).isoformat() for name in ("received_at", "event_time")}
            print(json.dumps({**d.__dict__, **times}, separators=(",", ":")))
        return
    if not found:
        typer.echo("no real-time decisions match", err=True)
        return
    table = Table()
    for title, justify in (
        ("received_at (UTC)", "left"),
        ("trans_num", "left"),
        ("card", "left"),
        ("last4", "left"),
        ("merchant", "left"),
        ("amount", "right"),
        ("score", "right"),
        ("flagged", "left"),
        ("model", "left"),
        ("latency ms", "right"),
        ("new card", "left"),
    ):
        table.add_column(title, justify=justify, no_wrap=title != "merchant")
    for d in found:
        table.add_row(
            d.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(d.trans_num),  # Text: data, never rich markup
            d.card_token[:8] + "…",  # never the whole token on a screen
            d.last4,
            Text(d.merchant),
            f"{d.amount:,.2f}",
            f"{d.score:.3f}",
            "yes" if d.flagged else "",
            Text(d.model_version),
            f"{d.latency_ms:.1f}",
            "yes" if d.new_card else "",
        )
    output().print(table)
    if len(found) == limit:
        typer.echo(f"the newest {limit}; more may match (--limit)", err=True)


@app.command()
def serve(
    port: int = typer.Option(8000, min=1, max=65535, help="Port on 127.0.0.1."),
    rate_limit: float = typer.Option(
        200.0, "--rate-limit", min=0, help="Authenticated requests per second (0: no limit)."
    ),
) -> None:
    """Serve the real-time scoring API on http://127.0.0.1:PORT: POST /v1/score (bearer token), GET /health,
    OpenAPI at /docs. Prints where the token is (FRAUD_API_TOKEN, or a file generated once), never the token."""
    from fraud.serving.api import serve as serve_api

    serve_api(Settings(), port, rate_limit, say=console.print)


@app.command()
def ui(port: int = typer.Option(3000, help="Port of the Dagster webserver on 127.0.0.1.")) -> None:
    """Start the Dagster UI and daemon (dg dev) on http://127.0.0.1:PORT.

    The instance lives in FRAUD_HOME/dagster with its storage in the embedded PostgreSQL, so runs launched at
    once do not lock each other; sensors and schedules run while the UI is up. Ctrl-C stops everything within
    about 5 seconds; runs still in progress stop with it."""
    from fraud.app.ui import serve_ui

    raise typer.Exit(serve_ui(Settings(), port, console))


@app.command("aws-env")
def aws_env(
    stack: str = typer.Option(None, "--stack", help="Pulumi stack of infra/ (runs `pulumi stack output --json`)."),
    outputs: str = typer.Option(None, "--outputs", help="A saved `pulumi stack output --json` file."),
    export: bool = typer.Option(False, "--export", help="Prefix each line with `export `."),
) -> None:
    """Print the FRAUD_* settings that point the Dagster code location at a deployed stack (see infra/README.md).
    Names and ARNs only: secrets stay in Secrets Manager."""
    from pathlib import Path

    from fraud.app.aws_env import StackOutputsError, read_outputs_file, read_stack_outputs, settings_lines

    if (stack is None) == (outputs is None):
        raise typer.BadParameter("give exactly one of --stack or --outputs")
    try:
        values = read_outputs_file(Path(outputs)) if outputs else read_stack_outputs(stack)
        lines = settings_lines(values, export=export)
    except StackOutputsError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    print("\n".join(lines))


@app.command()
def package(
    force: bool = typer.Option(False, "--force", help="Rebuild even when nothing changed."),
    target: str = typer.Option(
        "lambda",
        "--target",
        help="lambda: the python3.12 runtime (deployed); host: this interpreter, into dist/host/ (local tests).",
    ),
    dist: str = typer.Option(
        "dist",
        "--dist",
        envvar="FRAUD_DIST_DIR",
        help="Output folder, relative to the repository (the Pulumi program reads the same variable).",
    ),
    wheelhouse: bool = typer.Option(
        False,
        "--wheelhouse",
        help="Build only dist/wheelhouse/: the project's wheel and its pinned runtime dependencies' for this "
        "machine, for `pip install --no-index dist/wheelhouse/*.whl` (container image).",
    ),
) -> None:
    """Build what the stack uploads into dist/: the Lambda zips, the Glue job's fraud/ zip, its script and its
    third-party wheels (dist/glue-wheels/), each with `<name>.manifest.json` beside it. Run before `pulumi
    preview`/`up`, which only read the manifests."""
    from fraud.app.packaging import TARGETS, build_all, build_wheelhouse, describe
    from fraud.app.packaging.targets import REPO_ROOT

    if wheelhouse:
        console.print(describe(build_wheelhouse(REPO_ROOT / dist, force)), highlight=False, soft_wrap=True)
        return
    if target not in TARGETS:
        raise typer.BadParameter(f"one of {', '.join(sorted(TARGETS))}", param_hint="--target")
    for manifest in build_all(REPO_ROOT / dist, force, TARGETS[target]).values():
        console.print(describe(manifest), highlight=False, soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations up to head."""
    from fraud.db.engine import get_engine
    from fraud.db.migrate import current_revision, upgrade
    from fraud.db.roles import DbRole

    engine = get_engine(Settings(), role=DbRole.OWNER)
    upgrade(engine)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (it otherwise stays up between runs)."""
    from fraud.db.engine import stop_embedded

    stopped = stop_embedded(Settings().pg_dir)
    console.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("ensure-dagster-storage")
def db_ensure_dagster_storage() -> None:
    """Create Dagster's instance database (DAGSTER_PG_DB) on the server of DAGSTER_PG_HOST if it is missing.

    The Dagster image runs this before the webserver, the daemon and each run (deploy/entrypoint.sh): RDS creates
    only the platform's own database. TLS follows libpq's PGSSLMODE and PGSSLROOTCERT, as Dagster's storage does."""
    import os

    from sqlalchemy.engine import URL

    from fraud.db.engine import create_database_if_missing

    missing = [v for v in ("DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD") if not os.environ.get(v)]
    if missing:
        typer.echo(f"error: {', '.join(missing)} not set (the Dagster image's task definition sets them)", err=True)
        raise typer.Exit(2)
    server = URL.create(
        "postgresql+psycopg",
        username=os.environ["DAGSTER_PG_USERNAME"],
        password=os.environ["DAGSTER_PG_PASSWORD"],
        host=os.environ["DAGSTER_PG_HOST"],
        port=int(os.environ.get("DAGSTER_PG_PORT", "5432")),
        database="postgres",  # the maintenance database every PostgreSQL server (and RDS) has
    )
    name = os.environ.get("DAGSTER_PG_DB", "dagster")
    create_database_if_missing(server, name)
    console.print(f"Dagster storage: database {name} ready")


@db_app.command("counts")
def db_counts() -> None:
    """Row counts of the star schema's tables."""
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.models import Base
    from fraud.db.queries import table_counts
    from fraud.db.roles import DbRole

    engine = get_engine(Settings(), role=DbRole.OWNER)  # an operator's tool: counts app_user too
    upgrade(engine)  # a fresh home: the empty schema, all zeros, rather than "relation does not exist"
    for table, count in table_counts(engine, tuple(Base.metadata.tables)).items():
        console.print(f"{table:28} {count:>10,}")


cli_review.register(app)  # fraud review, fraud users: after the commands above, so `fraud --help` lists them first

if __name__ == "__main__":
    app()
