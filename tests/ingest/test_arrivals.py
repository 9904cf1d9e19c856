"""The raw-zone sensors' cursor: every object handed out exactly once, late keys included, across restarts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fraud.core.storage import StoredObject
from fraud.ingest.arrivals import ArrivalCursor, next_arrivals


def key(day: int, hour: int, batch: str) -> str:
    return f"transactions/dt=2026-11-{day:02d}/hour={hour:02d}/{batch}.jsonl.gz"


def test_first_look_hands_out_everything_in_arrival_order():
    objects = [
        StoredObject(key(2, 0, "b"), 20.0),
        StoredObject(key(1, 0, "a"), 30.0),
        StoredObject(key(3, 0, "c"), 10.0),
    ]
    taken, cursor = next_arrivals(objects, ArrivalCursor(), limit=10)
    assert [o.key for o in taken] == [key(3, 0, "c"), key(2, 0, "b"), key(1, 0, "a")]
    assert cursor.high_water == 30.0 and set(cursor.recent) == {o.key for o in objects}
    assert next_arrivals(objects, cursor, limit=10) == ([], cursor)


def test_a_late_batch_for_an_earlier_hour_is_not_missed():
    seen = [StoredObject(key(5, 10, "late-day"), 1000.0)]
    _, cursor = next_arrivals(seen, ArrivalCursor(), limit=10)
    # arrives later, but its key sorts before everything seen so far
    late = StoredObject(key(1, 0, "backfill"), 5000.0)
    taken, _ = next_arrivals([*seen, late], cursor, limit=10)
    assert taken == [late]


def test_stamped_before_the_high_water_mark_but_listed_later_is_caught_within_the_slack():
    _, cursor = next_arrivals([StoredObject("a", 1000.0)], ArrivalCursor(), limit=10, slack=60)
    slow_upload = StoredObject("b", 990.0)  # started before "a", visible only now
    assert next_arrivals([StoredObject("a", 1000.0), slow_upload], cursor, limit=10, slack=60)[0] == [slow_upload]


def test_limit_drains_a_backlog_over_several_looks_and_the_cursor_survives_json():
    objects = [StoredObject(f"k{i:04d}", 100.0 + i // 7) for i in range(1005)]  # ties in arrival time
    cursor, handed = ArrivalCursor(), []
    while True:
        taken, cursor = next_arrivals(objects, ArrivalCursor.from_json(cursor.to_json()), limit=200)
        if not taken:
            break
        handed += [o.key for o in taken]
    assert sorted(handed) == [o.key for o in objects] and len(handed) == len(set(handed))


def test_the_set_of_recent_keys_stays_bounded_by_the_slack():
    cursor = ArrivalCursor()
    for hour in range(48):
        _, cursor = next_arrivals([StoredObject(f"h{hour}", hour * 3600.0)], cursor, limit=10, slack=3600)
    assert set(cursor.recent) == {"h46", "h47"}


def test_a_rewrite_within_the_slack_is_not_handed_out_again():
    _, cursor = next_arrivals([StoredObject("a", 100.0)], ArrivalCursor(), limit=10)
    assert next_arrivals([StoredObject("a", 160.0)], cursor, limit=10)[0] == []


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 500), st.integers(0, 50)),
        min_size=1,
        max_size=60,
        unique_by=lambda t: t[0] * 1000 + t[1],
    ),
    st.integers(1, 7),
    st.integers(0, 40),
)
def test_each_object_is_handed_out_exactly_once(arrivals, limit, visibility_lag):
    """Objects appear over time (listable `lag` seconds after their stamp, lag within the slack); looking every
    10 seconds with a fresh cursor from JSON hands each out exactly once, whatever the limit."""
    slack = 60.0
    objects = [
        StoredObject(f"transactions/dt=2026-11-01/hour=00/b{i}-{stamp}.jsonl.gz", float(stamp))
        for i, (stamp, _) in enumerate(arrivals)
    ]
    visible_at = {
        o.key: o.last_modified + lag % (visibility_lag + 1) for o, (_, lag) in zip(objects, arrivals, strict=False)
    }
    cursor, handed, now = ArrivalCursor(), [], 0.0
    while now < 700 or len(handed) < len(objects):
        listed = [o for o in objects if visible_at[o.key] <= now]
        taken, cursor = next_arrivals(listed, ArrivalCursor.from_json(cursor.to_json()), limit, slack)
        handed += [o.key for o in taken]
        now += 10.0
        assert now < 10_000, "objects left behind"
    assert sorted(handed) == sorted(o.key for o in objects)
