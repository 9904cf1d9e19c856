"""The generator: simulates card traffic for a time window into the raw zone (one transaction batch and its
label objects, one per day its labels become known), in the raw zone's key layout
(docs/architecture.md#the-raw-zone). Deterministic: re-delivering an event finds identical objects under the same
batch id and leaves them as they are; an object under that id with other bytes is never overwritten (BatchConflict).

Events (all fields optional; defaults from settings):
  {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z"}   one batch for that window
  {"now": true, "minutes": 60}                                       the last full `minutes` before now
  {"start_day": "2026-11-01", "days": 10}                            one batch per day (the demo)
  plus "seed" and "customers" to pick another simulated world.
The fraud rate and mix and the label timing come from settings (FRAUD_SIM_*, docs/simulator.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store
from fraud.ingest.raw_zone import write_labels, write_transactions
from fraud.ingest.simulate import Batch, LabelTiming, load_or_build_world, scenario_mix, simulate_days, simulate_window


class BatchConflict(RuntimeError):
    """A batch's object already exists with other bytes; the generator refuses to overwrite it."""


class WriteOnce:
    """The raw bucket as the generator writes it: an existing object is never replaced. The same bytes again are
    a no-op (a redelivered event: the object keeps its arrival time, so the sensors see no new batch)."""

    def __init__(self, store: ObjectStore):
        self.store = store
        self.bucket = store.bucket

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if not self.store.exists(key):
            self.store.put_bytes(key, data, content_type)
        elif self.store.get_bytes(key) != data:
            raise BatchConflict(
                f"{self.bucket}/{key} already exists with different content. The simulator is deterministic and "
                "the batch id names everything that shapes a batch (seed, cardholders, fraud rate and mix, label "
                "timing, window), so the object was written by another version of the simulator or changed by "
                "hand. Nothing was overwritten: simulate into a fresh FRAUD_HOME (or raw bucket), or delete that "
                "batch's objects first if you mean to replace them."
            )

    def __getattr__(self, name: str):  # reads, listings and the rest go to the store itself
        return getattr(self.store, name)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _windows(event: dict) -> list[tuple[datetime, datetime]] | None:
    if event.get("start") and event.get("end"):
        return [(_instant(event["start"]), _instant(event["end"]))]
    if event.get("now"):
        minutes = int(event.get("minutes", 60))
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        end = now - timedelta(minutes=now.minute % minutes) if minutes <= 60 else now
        return [(end - timedelta(minutes=minutes), end)]
    return None


def label_timing(settings: Settings) -> LabelTiming | None:
    """The settings' label timing; None is constant timing (every label at FRAUD_LABEL_DELAY_DAYS)."""
    if settings.sim_label_timing == "constant":
        return None
    return LabelTiming(
        report_mean_days=settings.sim_report_mean_days,
        chargeback_days=settings.sim_chargeback_days,
        unlabelled_share=settings.sim_unlabelled_share,
    )


def generate(event: dict, settings: Settings) -> dict:
    """Simulate the event's window(s) into the raw zone; returns what was written, per batch."""
    seed = int(event.get("seed", settings.sim_seed))
    customers = int(event.get("customers", settings.sim_customers))
    content = {"label_timing": label_timing(settings), "scenario_share": settings.sim_scenario_share}
    scenario_mix(settings.sim_scenario_share)  # a bad mix fails here, before the world is built
    store = object_store(settings, settings.raw_bucket)
    world = load_or_build_world(store, customers, seed)
    windows = _windows(event)
    if windows is not None:
        batches = [
            simulate_window(world, start, end, settings.sim_fraud_rate, settings.label_delay_days, **content)
            for start, end in windows
        ]
    else:
        first = date.fromisoformat(event["start_day"]) if event.get("start_day") else settings.sim_start
        batches = simulate_days(
            world,
            first,
            int(event.get("days", settings.sim_days)),
            settings.sim_fraud_rate,
            settings.label_delay_days,
            **content,
        )
    return {
        "bucket": settings.raw_bucket,
        "seed": seed,
        "customers": customers,
        "batches": [write_batch(WriteOnce(store), batch) for batch in batches],
    }


def label_groups(labels: pd.DataFrame) -> list[tuple[datetime, pd.DataFrame]]:
    """A batch's labels by the (UTC) day they become known, in day order; labelled_at is 'YYYY-MM-DD HH:MM:SS'."""
    days = labels["labelled_at"].str.slice(0, 10)
    return [(datetime.fromisoformat(day).replace(tzinfo=UTC), group) for day, group in labels.groupby(days, sort=True)]


def write_batch(store: WriteOnce, batch: Batch) -> dict:
    transactions_key = write_transactions(
        store, batch.batch_id, batch.transactions, batch.start
    )  # first: a conflict writes nothing
    # labels land under the day they become known: one object per (day, batch), all named by the batch id
    labels_keys = [write_labels(store, batch.batch_id, group, day) for day, group in label_groups(batch.labels)]
    scenarios = pd.concat([batch.labels.loc[batch.labels["is_fraud"] == 1, "scenario"], batch.unlabelled["scenario"]])
    return {
        "batch_id": batch.batch_id,
        "transactions_key": transactions_key,
        "labels_keys": labels_keys,
        "rows": int(len(batch.transactions)),
        "frauds": int(len(scenarios)),  # every fraud injected, labelled or not
        "unlabelled_frauds": int(len(batch.unlabelled)),
        "scenarios": {k: int(v) for k, v in scenarios.value_counts().items()},
    }
