"""The Glue job's command line as a test runs it in a subprocess (the way Dagster Pipes starts it locally): every
raw batch in the home's raw zone, into its processed bucket."""

from __future__ import annotations

import sys

from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.ingest.raw_zone import label_keys, transaction_keys


def glue_job_command(settings: Settings) -> list[str]:
    raw = object_store(settings, settings.raw_bucket)
    return [
        sys.executable,
        "glue/process_transactions.py",
        "--raw-uri",
        raw.uri(),
        "--processed-uri",
        object_store(settings, settings.processed_bucket).uri(),
        "--transactions-keys",
        ",".join(transaction_keys(raw)),
        "--labels-keys",
        ",".join(label_keys(raw)),
    ]
