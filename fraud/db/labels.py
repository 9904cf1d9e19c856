"""Labels and where they come from: label files (`file`: chargebacks and the simulator's late labels, loaded by
the ETL, fraud/db/load.py), analysts' verdicts in the review app (`analyst`) and customers' answers to an alert's
"was this you?" link (`customer`).

**Which label counts** (`transaction_label` holds it, with its source and who gave it): the latest verdict that
says fraud or genuine, by the time the platform learnt it (`labelled_at`), whatever its source. A chargeback file
that arrives after an analyst's verdict replaces it; a customer's answer after a file label replaces that. At the
same time a person's verdict wins over a file's (the ETL reloads stored labels with their own time: that never
turns a verdict into a file label). A verdict also replaces a stored label that is not known yet when it is given:
a label file loaded ahead of its `labelled_at`, which only replayed or simulated histories have (the simulator
writes each label with the day it becomes known); the two cannot both count, one row holds the label, and the
verdict is what the platform knows now. `unsure` never becomes a label: it is kept in `label_event` and leaves the label
as it was. Every verdict people give stays in `label_event` (append-only), the ones that no longer count included.

**Point in time**, as for every label: a verdict counts from the platform's clock when it was given (`PLATFORM_NOW`,
the newest transaction in the database, as fraud/db/review.py defines "now"), so the features, the training
windows and the quality gate see it only from then on, and replayed or simulated history is treated like live
traffic. In live traffic that clock trails the wall clock by the batch delay, so a verdict is stamped up to that
much early."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Engine, text


class Verdict(StrEnum):
    FRAUD = "fraud"
    GENUINE = "genuine"
    UNSURE = "unsure"


class LabelSource(StrEnum):
    FILE = "file"
    ANALYST = "analyst"
    CUSTOMER = "customer"


PLATFORM_NOW = "(SELECT coalesce(max(event_time), now()) FROM fact_transaction)"

# the ETL's upsert of file labels and `record_verdicts`' share this condition: replace the label that counts when the
# new one is later, or as late and the stored one is a file's
REPLACES = (
    "transaction_label.labelled_at < EXCLUDED.labelled_at OR "
    "(transaction_label.labelled_at = EXCLUDED.labelled_at AND "
    "(transaction_label.source = 'file' OR EXCLUDED.source <> 'file'))"
)

_EVENT = """
INSERT INTO label_event (trans_num, verdict, source, actor, note, at)
VALUES (:trans_num, :verdict, :source, :actor, :note, :at)"""
# a verdict also replaces a stored label that is not known yet at its time (one from a label file loaded ahead of
# its `labelled_at`: replayed or simulated histories only, live traffic has no labels from the future)
_LABEL = f"""
INSERT INTO transaction_label (trans_num, is_fraud, labelled_at, source, actor)
VALUES (:trans_num, :is_fraud, :at, :source, :actor)
ON CONFLICT (trans_num) DO UPDATE SET is_fraud = EXCLUDED.is_fraud, labelled_at = EXCLUDED.labelled_at,
    source = EXCLUDED.source, actor = EXCLUDED.actor
WHERE {REPLACES} OR transaction_label.labelled_at > EXCLUDED.labelled_at"""


def record_verdicts(
    connection: Connection,
    trans_nums: Sequence[str],
    verdict: Verdict | str,
    source: LabelSource | str,
    actor: str,
    note: str | None = None,
) -> datetime:
    """Record one verdict on transactions, in the caller's database transaction (with whatever else must happen
    with it: a case closed, an answer used): a `label_event` row each and, unless unsure, the label that counts.
    Returns the verdict's time (the platform's clock)."""
    verdict, source = Verdict(verdict), LabelSource(source)
    if source is LabelSource.FILE:
        raise ValueError("file labels come from label files through the ETL, not as verdicts")
    if not actor.strip():
        raise ValueError("a verdict needs who gave it")
    at = connection.execute(text(f"SELECT {PLATFORM_NOW}")).scalar_one()
    rows = [
        {"trans_num": t, "verdict": verdict.value, "source": source.value, "actor": actor, "note": note, "at": at}
        for t in trans_nums
    ]
    if not rows:
        return at
    connection.execute(text(_EVENT), rows)
    if verdict is not Verdict.UNSURE:
        labels = [{**row, "is_fraud": verdict is Verdict.FRAUD} for row in rows]
        connection.execute(text(_LABEL), labels)
    return at


def people_verdicts(engine: Engine) -> int:
    """How many fraud/genuine verdicts people have given (label_event, which only grows): what the labels sensor
    adds to the label files' count, so an analyst's or a customer's verdict counts toward the next retraining even
    when it replaces a label the files already brought."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM label_event WHERE verdict <> 'unsure'")).scalar_one()
