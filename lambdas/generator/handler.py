"""Generator Lambda: a thin adapter over fraud/ingest/generator.py, which simulates card traffic for a time window
into the raw zone (events and results are documented there). Invoked by Dagster (aws mode, through Pipes) it also
reports `figures` as the `raw_transactions` materialization; locally the asset calls the same handler in-process."""

from __future__ import annotations

import json
from collections import Counter

from fraud.core.settings import Settings
from fraud.ingest.generator import BatchConflict, generate
from lambdas import dagster_pipes, report_figures, without_pipes

__all__ = ["BatchConflict", "figures", "handler"]

# the batch listing's share of the Pipes report, which must fit the 4 KB log tail with the rest of the messages
LISTED_BATCHES_BYTES = 2000


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    with dagster_pipes(event) as pipes:
        result = generate(without_pipes(event), settings or Settings())
        report_figures(pipes, figures(result))
    return result


def figures(result: dict) -> dict:
    """A generation's figures, small enough for a Pipes report: totals, frauds per scenario, and the batches
    (id, rows, frauds, transactions key) as far as LISTED_BATCHES_BYTES allow (`batches` counts them all)."""
    batches = result["batches"]
    scenarios: Counter[str] = Counter()
    for batch in batches:
        scenarios.update(batch.get("scenarios", {}))
    listed, size = [], 0
    for batch in batches:
        row = [batch["batch_id"], batch["rows"], batch["frauds"], batch["transactions_key"]]
        size += len(json.dumps(row))
        if size > LISTED_BATCHES_BYTES:
            break
        listed.append(row)
    return {
        "bucket": result["bucket"],
        "batches": len(batches),
        "rows": sum(b["rows"] for b in batches),
        "frauds_injected": sum(b["frauds"] for b in batches),
        "frauds_never_labelled": sum(b["unlabelled_frauds"] for b in batches),
        "fraud_scenarios": dict(scenarios),
        "batch_keys": listed,
    }
