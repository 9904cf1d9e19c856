"""The metadata helpers (assets/metadata.py): rounded numbers, Markdown tables that show text as text, the Glue job's
JSON turned into tables, record lists as Dagster tables."""

from __future__ import annotations

import math

import numpy as np
from dagster import MetadataValue, TableMetadataValue

from assets import metadata as meta


def test_numbers_are_rounded_and_missing_ones_say_so():
    assert meta.number(0.123456789).value == 0.1235
    assert meta.number(3) == 3 and meta.number(True) is True
    assert meta.number(None).value == "n/a"
    assert math.isnan(meta.number(float("nan")).value)


def test_tables_format_cells_and_escape_text():
    text = meta.markdown_table(
        ["name", "value", "share"], [["a_b|<c>", np.int64(12_345), 0.123456], ["none", None, float("nan")]]
    )
    assert text.splitlines() == [
        "| name | value | share |",
        "|---|---|---|",
        "| a\\_b\\|\\<c\\> | 12,345 | 0.1235 |",
        "| none | – | – |",
    ]
    assert meta.table(["a"], []).value == "none"


def test_counts_largest_first():
    assert meta.counts({"bad_amount": 2, "no_card": 7}, "reason").value.splitlines()[2:] == [
        "| no\\_card | 7 |",
        "| bad\\_amount | 2 |",
    ]


def test_reported_json_becomes_tables_and_lists():
    reported = {
        "rows_in": MetadataValue.int(10),
        "quarantine_reasons": MetadataValue.json({"bad_amount": 3}),
        "seconds_per_phase": MetadataValue.json({"read": 1.23456, "load": 4.5}),
        "corrupt_objects": MetadataValue.json([]),
        "share": MetadataValue.float(0.333333333),
    }
    tidy = meta.readable(reported, {"quarantine_reasons": ("reason", "rows"), "seconds_per_phase": ("phase", "s")})
    assert tidy["rows_in"] == reported["rows_in"]
    assert tidy["quarantine_reasons"].value.splitlines()[0] == "| reason | rows |"
    assert tidy["seconds_per_phase"].value.splitlines()[2:] == ["| load | 4.50 |", "| read | 1.23 |"]
    assert tidy["corrupt_objects"].value == "none" and tidy["share"].value == 0.3333


def test_bullets_and_records():
    assert meta.bullets(["k1", "k2", "k3"], shown=2).value == "- `k1`\n- `k2`\n- … and 1 more"
    table = meta.records([{"day": "2026-11-04", "psi": 0.1}], {"day": "string", "psi": "float"})
    assert isinstance(table, TableMetadataValue) and table.records[0].data == {"day": "2026-11-04", "psi": 0.1}
