"""Which objects under a prefix arrived since the last look: the cursor of the raw-zone sensors.

Why arrival time and not key order: raw keys sort by event hour (`transactions/dt=…/hour=…/<batch>`), so a
late batch for an earlier hour sorts before everything already seen and a "last key" cursor would skip it.
The cursor is a high-water mark of arrival times (S3 `LastModified`, a file's mtime) plus the keys that
arrived within `slack` of it. A key is new when it arrived at or after `high_water - slack` and is not in
that set. The slack covers objects stamped before they become listable (S3 stamps a multipart upload with its
start; a local write is stamped before its rename) and equal time stamps; it also bounds the set to the keys
of the last `slack` seconds, so the cursor stays small however long the sensor runs.

An object rewritten under a seen key after the slack shows up again; the sensors' run keys (batch ids) make
Dagster skip it, so nothing is scheduled twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from fraud.core.storage import StoredObject

SLACK_SECONDS = 3600.0


@dataclass(frozen=True)
class ArrivalCursor:
    high_water: float | None = None  # latest arrival time handed out; None: nothing seen yet
    recent: dict[str, float] = field(default_factory=dict)  # key -> arrival time, within the slack of high_water

    def to_json(self) -> str:
        return json.dumps({"high_water": self.high_water, "recent": self.recent}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> ArrivalCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("high_water"), {str(k): float(v) for k, v in data.get("recent", {}).items()})


def next_arrivals(
    objects: Iterable[StoredObject], cursor: ArrivalCursor, limit: int, slack: float = SLACK_SECONDS
) -> tuple[list[StoredObject], ArrivalCursor]:
    """The oldest `limit` objects not handed out yet (in arrival order, ties by key), and the cursor after them.

    Objects left over by the limit are handed out by the next calls: they all arrived at or after the last
    object handed out, so they stay above the new floor."""
    floor = float("-inf") if cursor.high_water is None else cursor.high_water - slack
    fresh = sorted(
        (o for o in objects if o.last_modified >= floor and o.key not in cursor.recent),
        key=lambda o: (o.last_modified, o.key),
    )
    taken = fresh[:limit]
    if not taken:
        return [], cursor
    high_water = max(taken[-1].last_modified, cursor.high_water if cursor.high_water is not None else float("-inf"))
    seen = {**cursor.recent, **{o.key: o.last_modified for o in taken}}
    recent = {key: at for key, at in seen.items() if at >= high_water - slack}
    return taken, ArrivalCursor(high_water, recent)
