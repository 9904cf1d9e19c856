"""Generator Lambda: a thin adapter over fraud/ingest/generator.py, which simulates card traffic for a time window
into the raw zone (events and results are documented there). Locally the same handler runs in-process."""

from __future__ import annotations

from fraud.core.settings import Settings
from fraud.ingest.generator import BatchConflict, generate

__all__ = ["BatchConflict", "handler"]


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    return generate(event, settings or Settings())
