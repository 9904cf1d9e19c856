"""One corpus of raw rows, each with the reason it must get (None: valid), through all three engines: `fraud ingest`
(validate_row), the online path (parse_transaction's InvalidTransaction code) and the ETL (the Spark job's
validate() on a DataFrame). Every engine must give every row the same reason, so a rule that one engine renames,
drops or reads differently fails here. The rules themselves are fraud/ingest/validation.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pyspark.sql import Row
from pyspark.sql.types import StringType, StructField, StructType

from fraud.features.online import InvalidTransaction, parse_transaction
from fraud.ingest.csv_files import validate_row
from fraud.ingest.raw_values import WHITESPACE
from fraud.ingest.validation import ABSURD_AMOUNT, ETL_REASONS, INGEST_REASONS, ONLINE_REASONS, ROW_REASONS, Reason

KEY = b"validation-test-key"
VALID = {  # the columns the rules read, and the optional ones a reader might trip over
    "trans_date_trans_time": "2026-11-01 14:30:00",
    "unix_time": "",
    "cc_num": "4539578763621486",
    "merchant": "fraud_Kirlin and Sons",
    "amt": "120.00",
    "category": "shopping_net",
    "dob": "1980-05-01",
    "city_pop": "116250",
    "lat": "39.78",
    "long": "-89.65",
    "merch_lat": "39.9",
    "merch_long": "-89.5",
}


@dataclass(frozen=True)
class Case:
    name: str
    changes: dict[str, str]
    reason: Reason | None  # None: the row is valid
    online: Reason | None | str = "same"  # the online path's reason where it has a rule the batch engines do not

    def raw(self, index: int) -> dict[str, str]:
        # a trans_num and a job of its own: no two cases are duplicates of each other in the ETL
        return {**VALID, "trans_num": f"case-{index}", "job": self.name, **self.changes}


CORPUS: tuple[Case, ...] = (
    # valid, however unusual
    Case("a plain row", {}, None),
    Case("a zero amount", {"amt": "0"}, None),
    Case("negative zero", {"amt": "-0"}, None),
    Case("the absurd limit itself", {"amt": f"{ABSURD_AMOUNT:.2f}"}, None),
    Case("an amount in spaces, in scientific notation", {"amt": " 1.2e2 "}, None),
    Case("a float-written card", {"cc_num": "4.539578763621486E+15"}, None),
    Case("a grouped card", {"cc_num": "4539 5787 6362 1486"}, None),
    Case(
        "a card failing Luhn (kept in batches, refused online)",
        {"cc_num": "4539578763621487"},
        None,
        online=Reason.INVALID_CARD_CHECKSUM,
    ),
    Case("a day-first slashed date", {"trans_date_trans_time": "1/11/2026 14:30"}, None),
    Case("a day-first dashed date", {"trans_date_trans_time": "01-11-2026 14:30:05"}, None),
    Case("a bad date but a unix_time", {"trans_date_trans_time": "never", "unix_time": "1793543400"}, None),
    Case("a fractional unix_time", {"trans_date_trans_time": "", "unix_time": "1793543400.9"}, None),
    Case(
        "a unix_time of 0, the window's first second",
        {"trans_date_trans_time": "", "unix_time": "0", "dob": "1969-12-31"},
        None,
    ),
    Case("the window's first second", {"trans_date_trans_time": "1970-01-01 00:00:00", "dob": "1970-01-01"}, None),
    Case("the window's last second", {"trans_date_trans_time": "2100-12-31 23:59:59"}, None),
    Case("born on the day of the transaction", {"dob": "2026-11-01"}, None),
    Case(
        "born on the day of a transaction just after midnight",
        {"trans_date_trans_time": "2026-11-01 00:00:01", "dob": "2026-11-01"},
        None,
    ),
    Case("born on the first day allowed", {"dob": "1900-01-01"}, None),
    Case(
        "born on the day of a unix_time transaction",
        {"trans_date_trans_time": "", "unix_time": "1793543400", "dob": "01-11-2026"},
        None,
    ),
    Case("a bad date of birth is unknown", {"dob": "31/31/1990"}, None),
    Case("a bad city_pop is unknown", {"city_pop": "many"}, None),
    Case("an unreadable coordinate is unknown", {"lat": "north"}, None),
    Case("an infinite coordinate is unreadable", {"merch_lat": "1e999"}, None),
    Case("coordinates on the limits", {"lat": "90", "long": "-180", "merch_lat": "-90", "merch_long": "180"}, None),
    Case("no optional field", {k: "" for k in ("category", "lat", "long", "city_pop", "dob")}, None),
    # trans_num
    Case("no trans_num", {"trans_num": ""}, Reason.MISSING_TRANS_NUM),
    Case("a blank trans_num", {"trans_num": "  "}, Reason.MISSING_TRANS_NUM),
    Case("a trans_num of tabs and no-break spaces", {"trans_num": "\t\u00a0\u3000"}, Reason.MISSING_TRANS_NUM),
    # card number
    Case("no card number", {"cc_num": ""}, Reason.INVALID_CARD_NUMBER),
    Case("a short card number", {"cc_num": "12"}, Reason.INVALID_CARD_NUMBER),
    Case("letters in the card number", {"cc_num": "4111-abc"}, Reason.INVALID_CARD_NUMBER),
    Case("a negative card number", {"cc_num": "-4111111111111111"}, Reason.INVALID_CARD_NUMBER),
    Case("an infinite card number", {"cc_num": "inf"}, Reason.INVALID_CARD_NUMBER),
    Case("a card number of 10^999999999999", {"cc_num": "1e999999999999"}, Reason.INVALID_CARD_NUMBER),
    Case("a 20-digit card number", {"cc_num": "4" * 20}, Reason.INVALID_CARD_NUMBER),
    # merchant
    Case("no merchant", {"merchant": ""}, Reason.MISSING_MERCHANT),
    Case("a blank merchant", {"merchant": " \t "}, Reason.MISSING_MERCHANT),
    # amount
    Case("no amount", {"amt": ""}, Reason.INVALID_AMOUNT),
    Case("a text amount", {"amt": "abc"}, Reason.INVALID_AMOUNT),
    Case("a decimal comma", {"amt": "12,50"}, Reason.INVALID_AMOUNT),
    Case("NaN", {"amt": "NaN"}, Reason.INVALID_AMOUNT),
    Case("inf", {"amt": "inf"}, Reason.INVALID_AMOUNT),
    Case("-Infinity", {"amt": "-Infinity"}, Reason.INVALID_AMOUNT),
    Case("an overflowing amount", {"amt": "1e999"}, Reason.INVALID_AMOUNT),
    Case("Java's double suffix", {"amt": "12d"}, Reason.INVALID_AMOUNT),
    Case("a hexadecimal float", {"amt": "0x1p3"}, Reason.INVALID_AMOUNT),
    Case("digit separators", {"amt": "1_000"}, Reason.INVALID_AMOUNT),
    Case("a negative amount", {"amt": "-0.01"}, Reason.NEGATIVE_AMOUNT),
    Case("a negative amount in scientific notation", {"amt": "-5e1"}, Reason.NEGATIVE_AMOUNT),
    Case("just over the absurd limit", {"amt": "1000000.01"}, Reason.ABSURD_AMOUNT),
    Case("an absurd amount in scientific notation", {"amt": "1e7"}, Reason.ABSURD_AMOUNT),
    # time
    Case("no time", {"trans_date_trans_time": "", "unix_time": ""}, Reason.INVALID_TIMESTAMP),
    Case("words for a time", {"trans_date_trans_time": "yesterday"}, Reason.INVALID_TIMESTAMP),
    Case("February 30th", {"trans_date_trans_time": "2026-02-30 10:00:00"}, Reason.INVALID_TIMESTAMP),
    Case("hour 25", {"trans_date_trans_time": "2026-11-01 25:00:00"}, Reason.INVALID_TIMESTAMP),
    Case("an ISO T separator", {"trans_date_trans_time": "2026-11-01T10:00:00"}, Reason.INVALID_TIMESTAMP),
    Case(
        "a one-digit month where two are due", {"trans_date_trans_time": "2026-4-01 10:00:00"}, Reason.INVALID_TIMESTAMP
    ),
    Case("the year 0", {"trans_date_trans_time": "0000-01-01 00:00:00"}, Reason.INVALID_TIMESTAMP),
    Case(
        "a unix_time past the year 9999",
        {"trans_date_trans_time": "", "unix_time": "253402300800"},
        Reason.INVALID_TIMESTAMP,
    ),
    Case(
        "a unix_time that overflows Spark", {"trans_date_trans_time": "", "unix_time": "9e15"}, Reason.INVALID_TIMESTAMP
    ),
    Case("an infinite unix_time", {"trans_date_trans_time": "", "unix_time": "inf"}, Reason.INVALID_TIMESTAMP),
    Case(
        "a unix_time with Java's suffix",
        {"trans_date_trans_time": "", "unix_time": "1793543400d"},
        Reason.INVALID_TIMESTAMP,
    ),
    # the time's window, fixed: 1970-01-01 00:00:00 to 2100-12-31 23:59:59
    Case(
        "a unix_time in the year 9999",
        {"trans_date_trans_time": "", "unix_time": "253402300799"},
        Reason.EVENT_TIME_OUT_OF_RANGE,
    ),
    Case("the year 9999", {"trans_date_trans_time": "9999-12-31 23:59:59"}, Reason.EVENT_TIME_OUT_OF_RANGE),
    Case("the year 1", {"trans_date_trans_time": "0001-01-01 00:00:00"}, Reason.EVENT_TIME_OUT_OF_RANGE),
    Case("a second before 1970", {"trans_date_trans_time": "1969-12-31 23:59:59"}, Reason.EVENT_TIME_OUT_OF_RANGE),
    Case("a second after 2100", {"trans_date_trans_time": "01/01/2101 00:00"}, Reason.EVENT_TIME_OUT_OF_RANGE),
    Case("a negative unix_time", {"trans_date_trans_time": "", "unix_time": "-1"}, Reason.EVENT_TIME_OUT_OF_RANGE),
    Case(
        "a unix_time in 2101", {"trans_date_trans_time": "", "unix_time": "4133980800"}, Reason.EVENT_TIME_OUT_OF_RANGE
    ),
    # the date of birth (optional: an absent or unreadable one is unknown)
    Case("born the day after the transaction", {"dob": "2026-11-02"}, Reason.INVALID_DOB),
    Case("born day-first after the transaction", {"dob": "02/11/2026"}, Reason.INVALID_DOB),
    Case("born in the year 9999", {"dob": "9999-12-31"}, Reason.INVALID_DOB),
    Case("born before 1900", {"dob": "1899-12-31"}, Reason.INVALID_DOB),
    Case(
        "born after a unix_time transaction",
        {"trans_date_trans_time": "", "unix_time": "1793543400", "dob": "2026-11-02"},
        Reason.INVALID_DOB,
    ),
    # coordinates
    Case("a latitude past the pole", {"lat": "91"}, Reason.INVALID_COORDINATE),
    Case("a longitude past the antimeridian", {"long": "-180.5"}, Reason.INVALID_COORDINATE),
    Case("a merchant latitude past the pole", {"merch_lat": "-90.01"}, Reason.INVALID_COORDINATE),
    Case("a merchant longitude of 1e3", {"merch_long": "1e3"}, Reason.INVALID_COORDINATE),
    # several problems: the first check in the order wins
    Case("no trans_num and a text amount", {"trans_num": "", "amt": "abc"}, Reason.MISSING_TRANS_NUM),
    Case("a bad card and no merchant", {"cc_num": "12", "merchant": ""}, Reason.INVALID_CARD_NUMBER),
    Case("a negative amount and no time", {"amt": "-1", "trans_date_trans_time": ""}, Reason.NEGATIVE_AMOUNT),
    Case("an absurd amount and a bad latitude", {"amt": "2e6", "lat": "100"}, Reason.ABSURD_AMOUNT),
    Case("no time and a bad longitude", {"trans_date_trans_time": "", "long": "200"}, Reason.INVALID_TIMESTAMP),
    Case(
        "the year 9999 and a dob in it",
        {"trans_date_trans_time": "9999-12-31 23:59:59", "dob": "9999-12-31"},
        Reason.EVENT_TIME_OUT_OF_RANGE,
    ),
    Case("a future dob and a bad latitude", {"dob": "2030-01-01", "lat": "100"}, Reason.INVALID_DOB),
)


def ingest_reason(raw: dict[str, str]) -> str | None:
    # fraud ingest strips every field before it validates (csv_files.row_fields)
    return validate_row({name: value.strip() for name, value in raw.items()})


def online_reason(raw: dict[str, str]) -> str | None:
    try:
        parse_transaction(raw, KEY)
    except InvalidTransaction as refused:
        return refused.code
    return None


@pytest.fixture(scope="module")
def spark_reasons(spark) -> dict[str, str | None]:
    """Case name -> the reason the Spark job's validate() gives its row (None: valid), for the whole corpus at once."""
    from fraud.features.spark import RAW_SCHEMA, validate

    schema = StructType(
        RAW_SCHEMA.fields + [StructField("batch_id", StringType()), StructField("source_key", StringType())]
    )
    rows = [
        Row(**{f.name: case.raw(i).get(f.name) for f in RAW_SCHEMA.fields}, batch_id="b", source_key="k")
        for i, case in enumerate(CORPUS)
    ]
    valid, quarantined, _ = validate(spark.createDataFrame(rows, schema), KEY)
    reasons: dict[str, str | None] = {r.job: None for r in valid.select("job").collect()}
    for r in quarantined.select("job", "quarantine_reason").collect():
        reasons[r.job] = r.quarantine_reason
    assert len(reasons) == len(CORPUS), "the ETL lost or added rows"
    return reasons


def test_the_corpus_covers_every_rule():
    assert {case.reason for case in CORPUS} >= set(ROW_REASONS) | {None}
    assert len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("index, case", list(enumerate(CORPUS)), ids=[case.name for case in CORPUS])
def test_every_engine_gives_the_same_reason(index, case, spark_reasons):
    raw = case.raw(index)
    expected = case.reason.value if case.reason else None
    got = {"fraud ingest": ingest_reason(raw), "online": online_reason(raw), "spark": spark_reasons[case.name]}
    online = expected if case.online == "same" else case.online
    assert got == {**dict.fromkeys(got, expected), "online": online}


def test_each_engine_lists_the_row_rules_in_one_order():
    assert INGEST_REASONS[4 : 4 + len(ROW_REASONS)] == ROW_REASONS
    assert ETL_REASONS[2 : 2 + len(ROW_REASONS)] == ROW_REASONS
    assert [r for r in ONLINE_REASONS if r is not Reason.INVALID_CARD_CHECKSUM] == list(ROW_REASONS)
    assert Reason.NEGATIVE_AMOUNT == "negative_amount"  # stored in quarantines and documented: never renamed


def test_whitespace_is_what_str_strip_strips():
    assert set(WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}
