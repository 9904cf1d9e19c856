"""A small hand-built scored world for the report and alert tests: cards, merchants and transactions loaded
through the real bulk loader, labels, scores written by `write_scores`, and a promoted model version whose
metadata the report reads. Every id carries a tag, so several worlds live side by side in one database."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.load import BatchAccounting, load_processed
from fraud.db.scores import write_scores
from fraud.features.catalog import FEATURE_NAMES
from fraud.model import metrics, registry

HOSTILE_MERCHANT = 'fraud_<script>alert("pwned")</script> & "Quotes\' Shop"'
HOSTILE_FIRST = "<img src=x onerror=alert(1)>"
HOSTILE_LAST = 'O\'Brien "Bobby"'
CATEGORIES = ("grocery_pos", "shopping_net", "gas_transport", "travel")
STATES = ("NY", "CA", "TX", "WA")
THRESHOLD = 0.8


@dataclass(frozen=True)
class World:
    tag: str
    model_version: str
    transactions: pd.DataFrame  # trans_num, event_time, card_token, last4, merchant, amt, score, flagged, is_fraud, day

    def flagged_card_days(self) -> set[tuple[str, object]]:
        flagged = self.transactions[self.transactions["flagged"]]
        return set(zip(flagged["card_token"], flagged["day"], strict=False))


def build_world(
    engine: Engine,
    settings: Settings,
    tag: str,
    cards: int = 6,
    days: int = 3,
    per_card_day: int = 4,
    seed: int = 0,
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC),
) -> World:
    """Load the world and promote its model version. Card 0 shops at the hostile merchant and is held by the
    hostile name; fraud labels follow the score, so the precision-recall curve has something to show."""
    rng = np.random.default_rng(seed)
    rows = []
    for card in range(cards):
        token = f"{tag}-card-{card:02d}".ljust(64, "0")[:64]
        first, last = (HOSTILE_FIRST, HOSTILE_LAST) if card == 0 else (f"Holder{card}", f"{tag.title()}")
        for day in range(days):
            for k in range(per_card_day):
                # spread over the day (22:00 on a day is still that UTC day)
                when = start + timedelta(
                    days=day, hours=int(2 + 5 * k + rng.integers(0, 3)), minutes=int(rng.integers(0, 60))
                )
                score = float(rng.beta(1, 6))
                if (card + day) % 2 == 0 and k == 0:
                    score = float(rng.uniform(0.85, 0.99))  # one high-scoring transaction on half the card-days
                rows.append(
                    {
                        "trans_num": f"{tag}-{card:02d}-{day}-{k}",
                        "event_time": when,
                        "card_token": token,
                        "last4": f"{(zlib.crc32(tag.encode()) + 37 * card) % 10000:04d}",
                        "merchant": HOSTILE_MERCHANT if card == 0 and k == 0 else f"fraud_{tag} Store {k}",
                        "category": CATEGORIES[(card + k) % len(CATEGORIES)],
                        "amt": round(float(rng.gamma(2, 30)) + 1, 2),
                        "merch_lat": 40.0,
                        "merch_long": -74.0,
                        "first": first,
                        "last": last,
                        "gender": "F",
                        "dob": "1980-01-01",
                        "street": "1 Main St",
                        "city": "Springfield",
                        "state": STATES[card % len(STATES)],
                        "zip": "12345",
                        "lat": 40.1,
                        "long": -74.1,
                        "city_pop": 5000,
                        "job": "Engineer",
                        "batch_id": f"{tag}-batch",
                        "features": [0.0] * len(FEATURE_NAMES),
                        "score": score,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["is_fraud"] = frame["score"] > rng.uniform(0.3, 1.0, len(frame))
    accounting = [BatchAccounting(f"{tag}-batch", f"test/{tag}", len(frame), len(frame), 0, 0)]
    labels = pd.DataFrame(
        {
            "trans_num": frame["trans_num"],
            "is_fraud": frame["is_fraud"],
            "labelled_at": (frame["event_time"] + timedelta(days=2)).map(lambda t: t.isoformat()),
        }
    )
    load_processed(engine, frame.drop(columns=["score", "is_fraud"]), labels, accounting)

    version = f"{tag}-model"
    scores = frame["score"].to_numpy()
    write_scores(engine, version, THRESHOLD, list(frame["trans_num"]), scores, scores >= THRESHOLD, ["[]"] * len(frame))
    store = object_store(settings, settings.models_bucket)
    y, s = frame["is_fraud"].to_numpy(), frame["score"].to_numpy()
    precision, recall = metrics.precision_recall_at(y, s >= THRESHOLD)
    metadata = {
        "version": version,
        "threshold": THRESHOLD,
        "feature_names": list(FEATURE_NAMES),
        "metrics": {
            "roc_auc": metrics.roc_auc(y, s),
            "average_precision": metrics.average_precision(y, s),
            "precision_at_budget": precision,
            "recall_at_budget": recall,
        },
    }
    # the report and alerts read only the metadata; model files are the model engineer's (not needed here)
    store.put_bytes(f"{settings.model_name}/{version}/metadata.json", json.dumps(metadata).encode())
    registry.promote(store, settings.model_name, version)
    frame["flagged"] = frame["score"] >= THRESHOLD
    frame["day"] = frame["event_time"].dt.date
    return World(tag, version, frame)
