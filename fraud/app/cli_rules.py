"""`fraud rules`: check a rule file, and backtest a rule set on the history in the database (docs/rules.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from fraud.core.settings import Settings

rules_app = typer.Typer(
    help="Decision rules: check a rule file, backtest a rule set on past transactions (docs/rules.md).",
    no_args_is_help=True,
)


def _load(path: Path | None):
    """The rule set of `path`, or the live one (FRAUD_RULES_PATH, else the packaged default) and its path; prints
    the reason and exits 1 when it does not load."""
    from fraud.rules.ruleset import DEFAULT_RULES_PATH, RuleSetError, live_rules, load_rules

    source = path or Settings().rules_path or DEFAULT_RULES_PATH
    try:
        return (load_rules(path) if path else live_rules(source)), source
    except RuleSetError as error:
        typer.echo(f"error: {error}", err=True)
    except FileNotFoundError:
        typer.echo(f"error: {source}: no such file", err=True)
    except (OSError, UnicodeDecodeError) as error:
        typer.echo(f"error: {source}: {error}", err=True)
    raise typer.Exit(1)


def _day(value: str | None, option: str):
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {value!r}", param_hint=option) from None


@rules_app.command("check")
def check(
    file: Path = typer.Argument(..., metavar="FILE", show_default=False, help="A rule file (TOML)."),
) -> None:
    """Load a rule file and list its rules, or say why it does not load (exit 1).

    Lists each rule's id, outcome, priority and expression. A file that does not load prints `error: rule 'ID':
    reason` (`rule set: reason` when the fault is the file's, not a rule's) on stderr. Format: docs/rules.md."""
    from rich.table import Table
    from rich.text import Text

    from fraud.app.cli import output

    ruleset, _ = _load(file)
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("priority", justify="right")
    table.add_column("expression")
    for rule in ruleset.rules:  # Text: data, never rich markup (`[` is CEL's list)
        table.add_row(Text(rule.id), rule.outcome.value, str(rule.priority), Text(rule.expression))
    out = output()
    out.print(Text(f"{file}: rule set {ruleset.version}, {len(ruleset.rules)} rules, loads"))
    out.print(table)


@rules_app.command("backtest")
def backtest_command(
    rules: Path = typer.Option(
        None, "--rules", metavar="FILE", help="A rule file (default: the live rules, FRAUD_RULES_PATH or the packaged)."
    ),
    since: str = typer.Option(None, "--since", metavar="YYYY-MM-DD", help="From this day (UTC; default: all history)."),
    until: str = typer.Option(
        None, "--until", metavar="YYYY-MM-DD", help="Up to the end of this day, included (UTC; default: all history)."
    ),
    json_out: Path = typer.Option(
        None, "--json", metavar="OUT", help="Also write the figures as JSON to OUT ('-': stdout, without the table)."
    ),
) -> None:
    """What a rule set would have decided on past transactions, against their labels and the model's flags.

    Per rule: its hits, hits per day, precision and recall against the labels that arrived, the fraud amount
    caught, how many of its hits the model flagged too, how often it decided, its run-time errors. For the whole
    set: the verdicts per outcome and the same figures for what it acts on (review or block) and for block alone.

    Each transaction is evaluated with its stored features, its amount, category and merchant, and the promoted
    model's score (else the most recent score of another version; never-scored transactions are left out and
    counted). Precision counts labelled hits only: labels arrive weeks late, so recent days have few."""
    import json
    import time
    from datetime import UTC, datetime, timedelta
    from datetime import time as midnight

    from rich import box
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from fraud.app.cli import output
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.replay import count_history, replay_history
    from fraud.db.roles import DbRole
    from fraud.model import registry
    from fraud.rules.backtest import backtest

    first, last = _day(since, "--since"), _day(until, "--until")
    if first and last and first > last:
        raise typer.BadParameter(f"--since {since} is after --until {until}", param_hint="--since/--until")
    ruleset, source = _load(rules)
    start = datetime.combine(first, midnight(), tzinfo=UTC) if first else None
    end = datetime.combine(last + timedelta(days=1), midnight(), tzinfo=UTC) if last else None

    settings = Settings()
    engine = get_engine(settings, role=DbRole.REPORTING)
    upgrade(engine)  # a fresh home: an empty history rather than "relation does not exist"
    model_version = registry.promoted_version(settings)
    counted = count_history(engine, start, end)
    errors = Console(stderr=True)
    began = time.perf_counter()
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as bar:
        task = bar.add_task("replaying", total=counted.rows)

        def history():
            for page in replay_history(engine, model_version, start, end, fields=ruleset.fields):
                yield from page
                bar.advance(task, len(page))

        result = backtest(ruleset, history())
    seconds = time.perf_counter() - began

    window = {
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
    }
    figures = {
        "rules_file": str(source),
        "model_version": model_version,
        "requested": window,
        "unscored_left_out": counted.unscored,
        "without_features_left_out": counted.without_features,
        **result.as_json(),
        "seconds": round(seconds, 3),
    }
    if json_out is not None:
        text = json.dumps(figures, indent=2) + "\n"
        if str(json_out) == "-":
            print(text, end="")
            return
        json_out.write_text(text, encoding="utf-8")

    out = output()
    left_out = (f"; {counted.unscored:,} never-scored transactions left out" if counted.unscored else "") + (
        f"; {counted.without_features:,} without features left out" if counted.without_features else ""
    )
    if not result.transactions:
        out.print(Text(f"rule set {ruleset.version} ({source}): no scored transaction in the window{left_out}"))
        return
    days = f"{result.days} day{'' if result.days == 1 else 's'}"
    scores = f"model {model_version}" if model_version else "the latest model version of each transaction"
    out.print(
        Text(
            f"rule set {ruleset.version} ({source}) on {result.first_day} to {result.last_day} ({days}): "
            f"{result.transactions:,} transactions, {result.labelled:,} labelled, {result.frauds:,} frauds "
            f"({result.fraud_amount:,.2f}); scores of {scores}{left_out}"
        ),
        soft_wrap=True,
    )
    # 13 columns: no vertical rules, one space between columns and headers on two lines: it fits 120 columns
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    table.add_column("rule", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for title in (
        "prio-\nrity",
        "hits",
        "hits/\nday",
        "label-\nled",
        "frauds",
        "preci-\nsion",
        "recall",
        "fraud\ncaught",
        "model\nflagged too",
        "deci-\nded",
        "errors",
    ):
        table.add_column(title, justify="right", no_wrap=True)

    for rule in result.rules:
        table.add_row(
            Text(rule.rule_id),
            rule.outcome.value,
            str(rule.priority),
            *rule.catch.cells(),
            f"{rule.decided:,}",
            f"{rule.errors:,}",
        )
    table.add_section()
    table.add_row("the set: acted on", "review+block", "", *result.acted_on.cells(), "", "")
    table.add_row("the set: blocked", "block", "", *result.block.cells(), "", "")
    table.add_row("model flags alone", "", "", *result.model.cells(), "", "")
    out.print(table)
    outcomes = ", ".join(f"{outcome.value} {count:,}" for outcome, count in result.outcomes.items())
    out.print(
        Text(f"outcomes: {outcomes}; {result.transactions_with_errors:,} transactions with a rule error"),
        soft_wrap=True,
    )
    for rule in result.rules:
        if rule.errors:
            typer.echo(
                f"warning: rule {rule.rule_id!r} failed on {rule.errors:,} transactions: {rule.first_error}", err=True
            )
    rate = f", {result.transactions / seconds:,.0f}/s" if seconds > 0 and result.transactions else ""
    typer.echo(f"replayed {result.transactions:,} transactions in {seconds:.2f} s{rate}", err=True)
