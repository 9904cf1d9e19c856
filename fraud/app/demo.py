"""Materialize the whole graph once, asset by asset in dependency order, with progress output.

Used by `fraud demo`; runs are recorded in the persistent Dagster instance under FRAUD_HOME/dagster, so
`make ui` shows the demo's materializations and lineage afterwards."""

from __future__ import annotations

import time
from pathlib import Path

from dagster import AssetCheckSeverity, AssetSelection, materialize
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from assets.definitions import ALL_ASSETS, ALL_CHECKS, defs
from assets.instance import local_instance
from fraud.core.settings import Settings

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ORDER = ["raw_transactions", "processed_transactions", "fraud_model", "fraud_flags", "fraud_report", "customer_alerts"]
SHOWN = {
    "raw_transactions": ("rows", "batches"),
    "processed_transactions": ("rows_loaded", "rows_quarantined", "new_batches"),
    "fraud_model": ("version", "average_precision", "roc_auc"),
    "fraud_flags": ("scored", "flagged"),
    "fraud_report": ("flagged", "emails_sent", "report"),
    "customer_alerts": ("sent", "queued"),
}


def _short(value) -> str:
    raw = getattr(value, "value", value)
    return f"{raw:.4f}" if isinstance(raw, float) else str(raw)


def _verdict(check) -> str:
    """passed, warned (a non-blocking check such as drift) or FAILED."""
    if check.passed:
        return "passed"
    return "warned" if check.severity == AssetCheckSeverity.WARN else "FAILED"


def run_demo(settings: Settings, console: Console | None = None) -> Path:
    console = console or Console()
    instance = local_instance(settings)
    resources = defs.resources
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("materializing", total=len(ORDER))
        for name in ORDER:
            progress.update(task, description=f"[bold]{name}")
            started = time.monotonic()
            result = materialize(
                [*ALL_ASSETS, *ALL_CHECKS],
                selection=AssetSelection.assets(name),
                instance=instance,
                resources=resources,
                run_config=QUIET,
                raise_on_error=True,
            )
            events = result.asset_materializations_for_node(name)
            meta = events[-1].metadata if events else {}
            shown = ", ".join(
                [f"{k}={_short(meta[k])}" for k in SHOWN[name] if k in meta]
                + [f"check {c.check_name} {_verdict(c)}" for c in result.get_asset_check_evaluations()]
            )
            progress.console.print(f"[green]✓[/] {name} ({time.monotonic() - started:.1f} s) {shown}")
            progress.advance(task)
    return Path(settings.store_root / settings.reports_bucket / "latest.html").resolve()
