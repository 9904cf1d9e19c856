"""Materialize the whole graph once, asset by asset in dependency order: one line per asset on the terminal.

Used by `fraud demo`. Each asset is its own run of the job `demo`, tagged `fraud/trigger=demo` and
`fraud/demo=<started>`, recorded in the persistent Dagster instance under FRAUD_HOME/dagster, so `make ui` shows
the demo's runs, materializations and lineage afterwards.

Quiet by default: Spark's JVM, TensorFlow's C++ logging (absl, oneDNN), the model export's TensorSpec dump and
Dagster's event log write to file descriptors 1 and 2 directly, from this process and from the Spark job's
subprocess, so the demo points those descriptors at FRAUD_HOME/logs/demo-<started>.log for the run and keeps a
copy of the terminal for its own lines. `verbose` leaves everything on the terminal."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    JobDefinition,
    define_asset_job,
)
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from assets.instance import local_instance
from fraud.core.settings import Settings
from fraud.core.storage import PRIVATE_FILE, private_dir

JOB_NAME = "demo"
TRIGGER_TAG = "fraud/trigger"
DEMO_TAG = "fraud/demo"  # the same value on the runs of one `fraud demo`
# dependency order; the alerts before the report, which counts the emails sent
ORDER = ["raw_transactions", "processed_transactions", "fraud_model", "fraud_flags", "customer_alerts", "fraud_report"]
# The key figures of each asset's line: (template, metadata keys); a part whose keys are missing is left out.
FIGURES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "raw_transactions": [("{rows:,} transactions in {batches} batches", ("rows", "batches"))],
    "processed_transactions": [
        ("{rows_loaded:,} rows loaded", ("rows_loaded",)),
        ("{rows_quarantined:,} quarantined", ("rows_quarantined",)),
    ],
    "fraud_model": [
        ("model {version}", ("version",)),
        ("AP {average_precision:.3f}", ("average_precision",)),
        ("ROC AUC {roc_auc:.3f}", ("roc_auc",)),
    ],
    "fraud_flags": [
        ("{flagged:,} of {scored:,} flagged", ("flagged", "scored")),
        ("decisions: {review:,} review, {block:,} block", ("review", "block")),
    ],
    "fraud_report": [("{flagged:,} flagged", ("flagged",)), ("{emails_sent:,} emails sent", ("emails_sent",))],
    "customer_alerts": [("{sent:,} of {queued:,} alerts sent", ("sent", "queued"))],
}
TAIL_LINES = 20


class DemoFailed(Exception):
    """An asset's run failed: which asset, its error, and the log holding the libraries' output (None: verbose)."""

    def __init__(self, asset: str, error: str, log: Path | None):
        super().__init__(f"{asset} failed: {error}")
        self.asset, self.error, self.log = asset, error, log


def demo_job(definitions: Definitions | None = None) -> JobDefinition:
    """The code location's job `demo` (assets/sensors.py), or the same job over the assets and checks of
    `definitions` (the tests' toy graphs); each run selects one asset."""
    if definitions is None:
        from assets.definitions import defs  # here: the toy graphs of the tests need not load it

        return defs.resolve_job_def(JOB_NAME)
    job = define_asset_job(JOB_NAME, selection=AssetSelection.all())
    return Definitions.merge(definitions, Definitions(jobs=[job])).resolve_job_def(JOB_NAME)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # a MetadataValue's Python value


def figures(name: str, metadata: Mapping[str, Any]) -> str:
    values = {key: _plain(value) for key, value in metadata.items()}
    parts = []
    for template, keys in FIGURES.get(name, []):
        if all(key in values for key in keys):
            try:
                parts.append(template.format(**values))
            except (ValueError, TypeError):  # a figure of another type than expected: shown as is
                parts.append(" ".join(str(values[key]) for key in keys))
    if values.get("promoted") is False:
        parts.append("not promoted")
    return ", ".join(parts)


def _verdict(check: AssetCheckEvaluation) -> str:
    """passed, warned (a non-blocking check such as drift) or FAILED."""
    if check.passed:
        return "passed"
    return "warned" if check.severity == AssetCheckSeverity.WARN else "FAILED"


def asset_line(name: str, seconds: float, metadata: Mapping[str, Any], checks: list[AssetCheckEvaluation]) -> str:
    shown = figures(name, metadata)
    if checks:
        verdicts = ", ".join(f"{check.check_name} {_verdict(check)}" for check in checks)
        shown = f"{shown}; {verdicts}" if shown else verdicts
    return f"[green]✓[/] {name:<22} {seconds:5.1f} s  {escape(shown)}"


def _failure(result) -> str:
    """The innermost error of the run's first failed step (the user code's exception, not Dagster's wrapper)."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return error.message.strip()
    return f"run {result.run_id} did not succeed"


def log_tail(log: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


@contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Point file descriptors 1 and 2 at `log` for the block (every library and subprocess writes there) and yield
    a stream on the original stdout for the demo's own lines."""
    private_dir(log.parent)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    with open(log, "ab", opener=lambda name, flags: os.open(name, flags, PRIVATE_FILE)) as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        terminal.close()


def materialize_in_order(
    job: JobDefinition,
    order: list[str],
    instance: DagsterInstance,
    tags: Mapping[str, str],
    console: Console,
    log: Path | None,
) -> None:
    """One run per asset, in `order`; a line per asset as it completes; DemoFailed at the first failure."""
    run_config = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}  # the event log: to the log file
    spinner = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,  # Python's own writes must reach the log file, not the terminal
        redirect_stderr=False,
        disable=log is None or not console.is_terminal,  # verbose: the libraries' lines would tear it
    )
    with spinner:
        for name in order:
            task = spinner.add_task(name, total=None)
            started = time.monotonic()
            result = job.execute_in_process(
                instance=instance,
                asset_selection=[AssetKey(name)],
                tags=tags,
                run_config=run_config,
                raise_on_error=False,
            )
            spinner.remove_task(task)
            if not result.success:
                raise DemoFailed(name, _failure(result), log)
            events = result.asset_materializations_for_node(name)
            line = asset_line(
                name,
                time.monotonic() - started,
                events[-1].metadata if events else {},
                result.get_asset_check_evaluations(),
            )
            console.print(line, soft_wrap=True, highlight=False)


def run_demo(settings: Settings, verbose: bool = False) -> Path:
    """Run the graph; print FRAUD_HOME and the log's path, then a line per asset; return the report's path."""
    started = datetime.now()
    log = None if verbose else settings.home / "logs" / f"demo-{started:%Y%m%d-%H%M%S}.log"
    instance = local_instance(settings)  # starts the embedded PostgreSQL before any output is redirected
    tags = {TRIGGER_TAG: "demo", DEMO_TAG: started.isoformat(timespec="seconds")}
    job = demo_job()
    with output_to(log) if log else nullcontext(sys.stdout) as terminal:
        console = Console(file=terminal)
        where = f"; log: {log}" if log else ""
        console.print(f"FRAUD_HOME: {settings.home}{where}", soft_wrap=True, highlight=False)
        materialize_in_order(job, ORDER, instance, tags, console, log)
    return Path(settings.store_root / settings.reports_bucket / "latest.html").resolve()
