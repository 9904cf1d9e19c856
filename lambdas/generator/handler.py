"""Generator Lambda: simulates card traffic for a time window into the raw zone (one transaction batch and
its delayed label batch), in the design.md key layout. Deterministic: re-delivering an event rewrites
identical objects under the same batch id.

Events (all fields optional; defaults from settings):
  {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z"}   one batch for that window
  {"now": true, "minutes": 60}                                       the last full `minutes` before now
  {"start_day": "2026-11-01", "days": 10}                            one batch per day (the demo)
  plus "seed" and "customers" to pick another simulated world.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from fraud.raw_zone import write_labels, write_transactions
from fraud.settings import Settings
from fraud.simulate import Batch, load_or_build_world, simulate_days, simulate_window
from fraud.storage import object_store


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _windows(event: dict) -> list[tuple[datetime, datetime]] | None:
    if event.get("start") and event.get("end"):
        return [(_instant(event["start"]), _instant(event["end"]))]
    if event.get("now"):
        minutes = int(event.get("minutes", 60))
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        end = now - timedelta(minutes=now.minute % minutes) if minutes <= 60 else now
        return [(end - timedelta(minutes=minutes), end)]
    return None


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    seed = int(event.get("seed", settings.sim_seed))
    customers = int(event.get("customers", settings.sim_customers))
    store = object_store(settings, settings.raw_bucket)
    world = load_or_build_world(store, customers, seed)
    windows = _windows(event)
    if windows is not None:
        batches = [simulate_window(world, start, end, settings.sim_fraud_rate, settings.label_delay_days) for start, end in windows]
    else:
        first = date.fromisoformat(event["start_day"]) if event.get("start_day") else settings.sim_start
        batches = simulate_days(world, first, int(event.get("days", settings.sim_days)), settings.sim_fraud_rate, settings.label_delay_days)
    return {"bucket": settings.raw_bucket, "seed": seed, "customers": customers,
            "batches": [_write(store, batch, settings.label_delay_days) for batch in batches]}


def _write(store, batch: Batch, label_delay_days: float) -> dict:
    # labels are chargebacks: they land under the day they become known
    labelled_day = batch.start + timedelta(days=label_delay_days)
    return {
        "batch_id": batch.batch_id,
        "transactions_key": write_transactions(store, batch.batch_id, batch.transactions, batch.start),
        "labels_key": write_labels(store, batch.batch_id, batch.labels, labelled_day),
        "rows": int(len(batch.transactions)),
        "frauds": int(batch.labels["is_fraud"].sum()),
        "scenarios": {k: int(v) for k, v in batch.labels.loc[batch.labels["is_fraud"] == 1, "scenario"].value_counts().items()},
    }
