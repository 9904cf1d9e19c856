"""No card number at rest outside the raw zone (issue 25 item 4, the Spark side): the Glue job tokenizes before it
caches or shuffles, writes its files for its user only, and Spark encrypts what it keeps on local disk. Card
numbers planted in a small batch (a valid row, a quarantined row, a conflicting duplicate) are looked for, as
bytes, in every file the job leaves outside the raw zone and in Spark's local folders, while the session that ran
it is still alive; the raw zone's quarantine must still hold the quarantined rows' numbers."""

from __future__ import annotations

import gzip
import json
import stat
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame

from fraud.core.storage import object_store
from fraud.features.spark import features, tokenize, validate
from tests.glue.test_features import KEY, raw, tx
from tests.glue.test_process_transactions import row

# digit strings without runs a compressor would shorten, so that a leak shows as the plain digits
VALID, QUARANTINED, CONFLICTING = ("".join(map(str, np.random.default_rng(s).integers(0, 10, 16))) for s in (1, 2, 3))


def spark_local_dirs(spark) -> list[Path]:
    """The folders the session keeps shuffle, spill and cached blocks in (spark.local.dir, the job's own)."""
    return [Path(folder) for folder in spark.sparkContext.getConf().get("spark.local.dir").split(",")]


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


def holding(paths: list[Path], numbers: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if hits := [n for n in numbers if n.encode() in data]:
            found[str(path)] = hits
    return found


@pytest.fixture(scope="module")
def planted_run(spark, settings, engine):
    from glue.process_transactions import run

    rows = [
        row("planted-1", "2026-11-02 10:00:00", "10.00", cc=VALID),
        row("planted-2", "2026-11-02 10:05:00", "not an amount", cc=QUARANTINED),
        row("planted-3", "2026-11-02 10:10:00", "12.00", cc=CONFLICTING),
        row("planted-3", "2026-11-02 10:11:00", "13.00", cc=CONFLICTING),  # same trans_num, other content
    ]
    store = object_store(settings, settings.raw_bucket)
    key = "transactions/dt=2026-11-02/hour=10/planted-1.jsonl.gz"
    store.put_bytes(key, gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    processed = object_store(settings, settings.processed_bucket)
    arguments = {"raw_uri": store.uri(), "processed_uri": processed.uri(), "transactions_keys": key, "labels_keys": ""}
    summary = run(arguments, settings, report=lambda s: None)
    assert summary["rows_loaded"] == 2 and summary["rows_quarantined"] == 2  # planted-3: the first loads
    return settings.store_root / settings.processed_bucket, settings.store_root / settings.raw_bucket


def test_no_card_number_outside_the_raw_zone_nor_in_spark_local_folders(planted_run, spark):
    processed, raw_zone = planted_run
    outside = files_under(processed, *spark_local_dirs(spark))
    assert any(path.suffix == ".parquet" for path in outside)
    assert any("shuffle" in path.name for path in outside), "no shuffle file to look in: the scan proves nothing"
    assert holding(outside, (VALID, QUARANTINED, CONFLICTING)) == {}
    # the quarantine, in the raw zone, keeps the quarantined rows as they came (the scan can find digits)
    quarantine = files_under(raw_zone / "quarantine" / "etl" / "batch_id=planted-1")
    found = sorted(n for hits in holding(quarantine, (VALID, QUARANTINED, CONFLICTING)).values() for n in hits)
    assert found == sorted([QUARANTINED, CONFLICTING])


def test_the_job_writes_its_files_for_its_user_only(planted_run, spark):
    processed, raw_zone = planted_run
    written = [processed / "transactions", raw_zone / "quarantine" / "etl" / "batch_id=planted-1"]
    paths = [p for root in written for p in (root, *root.rglob("*"))] + spark_local_dirs(spark)
    assert any(p.is_file() for p in paths)
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert loose == {}


def test_spark_encrypts_its_local_disk_io(spark):
    assert spark.sparkContext.getConf().get("spark.io.encryption.enabled") == "true"


def shuffled_or_cached(frame: DataFrame) -> list[tuple[str, list[str]]]:
    """(node, its columns) of each exchange and each cached relation in the frame's physical plan, cached plans and
    adaptive plans included: every place Spark moves rows between tasks or keeps them."""
    found = []

    def walk(node) -> None:
        name = node.nodeName()
        if name == "AdaptiveSparkPlan":
            walk(node.inputPlan())
            return
        if "Exchange" in name:
            found.append((name, [a.name() for a in _list(node.output())]))
        if name == "InMemoryTableScan":
            relation = node.relation()
            found.append((name, [a.name() for a in _list(relation.output())]))
            walk(relation.cachedPlan())
        for child in _list(node.children()):
            walk(child)

    walk(frame._jdf.queryExecution().executedPlan())
    return found


def _list(seq) -> list:
    return [seq.apply(i) for i in range(seq.size())]


def test_rows_are_cached_and_shuffled_without_the_card_number(spark):
    rows = [tx("a", "2026-03-10 10:00:00"), tx("b", "2026-03-10 10:05:00", amt="x"), tx("a", "2026-03-10 10:06:00")]
    tokenized = tokenize(raw(spark, rows), KEY).cache()
    valid, quarantined, duplicates = validate(tokenized, KEY)
    labels = spark.createDataFrame([("a", True)], "trans_num string, is_fraud boolean").selectExpr(
        "trans_num", "is_fraud", "timestamp'2026-03-11 00:00:00' AS labelled_at"
    )
    nodes = [
        n
        for frame in (valid, quarantined, duplicates, features(valid, None, labels))
        for n in shuffled_or_cached(frame)
    ]
    assert {name for name, _ in nodes} >= {"InMemoryTableScan", "Exchange"}
    assert [(name, columns) for name, columns in nodes if "cc_num" in columns] == []
