"""Generator Lambda: simulates days of card traffic into the raw zone (transactions and delayed labels).

Event: {"start": "YYYY-MM-DD", "days": N} (defaults from settings). Deterministic for the settings' seed,
so re-delivering an event rewrites identical objects.
"""
from __future__ import annotations

from datetime import date, datetime

from fraud.raw_zone import write_labels, write_transactions
from fraud.settings import Settings
from fraud.simulate import build_world, simulate
from fraud.storage import object_store


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    start = date.fromisoformat(event["start"]) if event.get("start") else settings.sim_start
    days = int(event.get("days", settings.sim_days))
    store = object_store(settings, settings.raw_bucket)
    world = build_world(settings.sim_customers, settings.sim_seed)
    batches = []
    for day in simulate(world, start, days, settings.sim_fraud_rate, settings.sim_seed):
        midnight = datetime(day.day.year, day.day.month, day.day.day)
        batches.append({
            "batch_id": day.batch_id,
            "transactions_key": write_transactions(store, day.batch_id, day.transactions, midnight),
            "labels_key": write_labels(store, day.batch_id, day.labels, midnight),
            "rows": int(len(day.transactions)),
            "frauds": int(day.labels["is_fraud"].sum()),
        })
    return {"bucket": settings.raw_bucket, "batches": batches}
