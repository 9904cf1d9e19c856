"""Which pending raw batches a `processed_transactions` run takes: one batch (the sensor), a range of days
(a backfill from the launchpad), or everything pending (Materialize all)."""

from assets.processing import RawBatchSelection

KEYS = [f"transactions/dt=2026-11-{day:02d}/hour=00/b{day}.jsonl.gz" for day in range(1, 8)]


def _chosen(selection: RawBatchSelection) -> list[str]:
    return [key.rsplit("/", 1)[1].split(".")[0] for key in KEYS if selection.wants(key)]


def test_nothing_set_takes_everything():
    assert _chosen(RawBatchSelection()) == [f"b{d}" for d in range(1, 8)]


def test_batch_ids_take_those_batches():
    assert _chosen(RawBatchSelection(batch_ids=["b2", "b5", "b9"])) == ["b2", "b5"]


def test_a_day_range_is_inclusive_and_may_be_open_ended():
    assert _chosen(RawBatchSelection(first_day="2026-11-03", last_day="2026-11-05")) == ["b3", "b4", "b5"]
    assert _chosen(RawBatchSelection(first_day="2026-11-06")) == ["b6", "b7"]
    assert _chosen(RawBatchSelection(last_day="2026-11-01")) == ["b1"]


def test_range_and_ids_together_must_both_hold():
    assert _chosen(RawBatchSelection(batch_ids=["b2", "b5"], first_day="2026-11-04")) == ["b5"]
