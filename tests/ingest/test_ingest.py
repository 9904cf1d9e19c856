"""`fraud ingest FILE.csv`: every row accounted for, one reason per quarantined row, idempotent, no card leaks."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fraud.app.cli import app
from fraud.core.privacy import card_numbers_in, normalize_card_number
from fraud.core.schema import RAW_COLUMNS, decode_jsonl_gz
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.ingest.csv_files import IngestError, IngestSummary, ingest_csv, parse_header, split_records, validate_row
from fraud.ingest.raw_values import parse_event_time, parse_timestamp
from tests.helpers.homes import SEED_DIR
from tests.helpers.leak_scan import cards_in_files

HEADER = ["Unnamed: 0", *RAW_COLUMNS, "is_fraud"]
CARDS = ("4111111111111111", "373000000000000.0", "3.73E+14", " 4.1E+12 ", "30100000000000.0")
DATES = ("2019-01-01 00:00:18", "11/12/2019 5:12", "27-04-2020 03:20")


def _row(n: int, **changes: str) -> dict[str, str]:
    """A valid Sparkov row as found in the seed files (mixed date and card formats)."""
    row = {
        "trans_date_trans_time": DATES[n % 3],
        "cc_num": CARDS[n % len(CARDS)],
        "merchant": f"Kohler, Lindgren {n}",
        "category": "grocery_net",
        "amt": f"{n + 1}.25",
        "first": "Kristen",
        "last": "Hanson",
        "gender": "F",
        "street": "26544 Andrea Glen",
        "city": "Goodrich",
        "state": "MI",
        "zip": "48438",
        "lat": "42.9147",
        "long": "-83.4845",
        "city_pop": "6951",
        "job": "Learning disability nurse",
        "dob": "18-06-1985",
        "trans_num": f"t{n:05d}",
        "unix_time": str(1325376018 + 60 * n),
        "merch_lat": "42.283319",
        "merch_long": "-82.493949",
        "is_fraud": str(int(n % 7 == 3)),
    }
    row.update(changes)
    return row


def _csv(rows: list[dict[str, str]], header: list[str] = HEADER, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for index, row in enumerate(rows):
        writer.writerow([str(1000 + index) if column == "Unnamed: 0" else row.get(column, "") for column in header])
    return buffer.getvalue().encode()


def _file(tmp_path: Path, data: bytes, name: str = "input.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _objects(settings: Settings, summary: IngestSummary) -> tuple[list[dict], list[dict], list[dict]]:
    """(transaction rows, label rows, quarantine entries) as written to the raw bucket."""
    store = object_store(settings, settings.raw_bucket)
    read = lambda key: decode_jsonl_gz(store.get_bytes(key)) if key else []  # noqa: E731
    return read(summary.transactions_key), read(summary.labels_key), read(summary.quarantine_key)


def _accounted(summary: IngestSummary) -> None:
    assert summary.rows_read == summary.accepted + summary.quarantined + summary.duplicates
    assert sum(summary.reasons.values()) == summary.quarantined


# --- pure functions -----------------------------------------------------------------------------------------


def test_timestamps_in_the_schema_formats():
    assert parse_timestamp("2019-01-01 00:00:18") == datetime(2019, 1, 1, 0, 0, 18)
    assert parse_timestamp("11/12/2019 5:12") == datetime(2019, 12, 11, 5, 12)  # d/M/yyyy H:mm (day first)
    assert parse_timestamp("27-04-2020 03:20") == datetime(2020, 4, 27, 3, 20)  # dd-MM-yyyy HH:mm
    assert parse_timestamp(" 2019-01-01 00:00 ") == datetime(2019, 1, 1)
    for bad in ("", "31/31/2019 25:00", "2019-02-30 00:00:00", "1-4-2020 3:20", "yesterday", "2019-01-01T00:00:00"):
        assert parse_timestamp(bad) is None, bad
    assert parse_event_time({"trans_date_trans_time": "garbage", "unix_time": "1325376018"}) == datetime(
        2012, 1, 1, 0, 0, 18
    )
    assert parse_event_time({"trans_date_trans_time": "", "unix_time": "soon"}) is None


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({}, None),
        ({"amt": "1000000"}, None),
        ({"amt": "0"}, None),
        ({"is_fraud": ""}, None),  # an empty label is unknown, not invalid
        ({"is_fraud": "1.0"}, None),
        ({"trans_date_trans_time": "never", "unix_time": "1325376018"}, None),
        ({"trans_num": ""}, "missing_trans_num"),
        ({"cc_num": "4111-abc"}, "invalid_card_number"),
        ({"cc_num": "-4111111111111111"}, "invalid_card_number"),
        ({"cc_num": "inf"}, "invalid_card_number"),
        ({"cc_num": "sNaN"}, "invalid_card_number"),
        ({"cc_num": "1e999999999999"}, "invalid_card_number"),
        ({"merchant": ""}, "missing_merchant"),
        ({"amt": "12,50"}, "invalid_amount"),
        ({"amt": "NaN"}, "invalid_amount"),
        ({"amt": "inf"}, "invalid_amount"),
        ({"amt": "1e999"}, "invalid_amount"),
        ({"amt": ""}, "invalid_amount"),
        ({"amt": "-0.01"}, "negative_amount"),
        ({"amt": "1000000.01"}, "absurd_amount"),
        ({"trans_date_trans_time": "31/31/2019 25:00", "unix_time": ""}, "invalid_timestamp"),
        ({"lat": "91"}, "invalid_coordinate"),
        ({"merch_long": "-180.5"}, "invalid_coordinate"),
        ({"lat": "north", "dob": "never"}, None),  # unreadable optional fields are unknown, not invalid
        ({"is_fraud": "yes"}, "invalid_is_fraud"),
        ({"is_fraud": "2"}, "invalid_is_fraud"),
    ],
)
def test_validate_row(changes, reason):
    assert validate_row(_row(1, **changes)) == reason


def test_header_detects_index_extra_and_missing_columns():
    header = parse_header(["", "trans_num", "cc_num", "merchant", "amt", "unix_time", "note", "amt"])
    assert header.missing_columns == () and header.extra_columns == ("note", "amt") and not header.has_labels
    missing = parse_header(["trans_num", "cc_num", "category"])
    assert missing.missing_columns == ("merchant", "amt", "trans_date_trans_time or unix_time")
    semicolons = parse_header([";".join(HEADER)])
    assert "';'" in semicolons.problem and len(semicolons.missing_columns) == 5


def test_records_keep_line_numbers_and_survive_a_stray_quote():
    lines = [b"a,b,c\n", b'1,"two\n', b'lines",x\n', b"\n", b'3,"stray,x\n', b"5,6,7\n", b"7,8,9\n"]
    records = list(split_records(lines, lambda: 3))
    assert [(r.line, r.fields) for r in records] == [
        (1, ("a", "b", "c")),
        (2, ("1", "two\nlines", "x")),
        (5, ("3", "stray,x\n")),
        (6, ("5", "6", "7")),
        (7, ("7", "8", "9")),
    ]
    bad = list(split_records([b"a,b\n", b"caf\xe9,1\n"]))
    assert not bad[1].utf8 and bad[1].text == "caf\\xe9,1"


# --- the seed file ------------------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    # pg/ is the embedded database's own folder, written by its server process in the background
    return {
        path: (path.stat().st_mtime_ns, path.stat().st_size)
        for path in root.rglob("*")
        if path.is_file() and "pg" not in path.relative_to(root).parts[:1]
    }


def test_seed_training_file_is_accounted_for_with_its_labels(fraud_env):
    path = SEED_DIR / "training_df.csv"
    if not path.is_file():
        pytest.skip(f"seed data not found at {path} (the shared data folder is not checked out next to the repo)")
    settings = Settings()
    before = _snapshot(fraud_env)
    summary = ingest_csv(path, settings)

    assert summary.rows_read == 14_000 == summary.accepted + summary.quarantined + summary.duplicates
    assert summary.batch_id.startswith("csv-") and len(summary.batch_id) == 16
    transactions, labels, quarantine = _objects(settings, summary)
    assert len(transactions) == summary.accepted and len(quarantine) == summary.quarantined
    assert all("is_fraud" not in row and "Unnamed: 0" not in row for row in transactions)

    with path.open(newline="") as handle:
        file_rows = {row["trans_num"].strip(): row for row in csv.DictReader(handle)}
    accepted = {row["trans_num"] for row in transactions}
    frauds = sum(1 for number in accepted if file_rows[number]["is_fraud"].strip() == "1")
    assert frauds == 70 and summary.accepted == 14_000  # the seed README's figures: every row of it is valid
    assert {label["trans_num"] for label in labels} == accepted
    assert sum(label["is_fraud"] for label in labels) == frauds == summary.frauds
    first = file_rows["f11933f32df4b28170f8146606cb10eb"]  # "11/12/2019 5:12", labels arrive 2 days later
    assert first["trans_date_trans_time"] == "11/12/2019 5:12"
    assert (
        next(label for label in labels if label["trans_num"] == "f11933f32df4b28170f8146606cb10eb")["labelled_at"]
        == "2019-12-13 05:12:00"
    )

    # card numbers stay in the raw zone: the batch holds them, nothing written elsewhere does
    cards = {normalize_card_number(row["cc_num"]) for row in file_rows.values()}
    raw_root = settings.store_root / settings.raw_bucket
    assert cards_in_files([raw_root / summary.transactions_key], known=cards)  # the scan sees them where they may be
    written = [p for p, stamp in _snapshot(fraud_env).items() if before.get(p) != stamp]
    assert written and all(p.is_relative_to(raw_root) for p in written), written
    outside = [
        p
        for p in fraud_env.rglob("*")
        if p.is_file() and not p.is_relative_to(raw_root) and "pg" not in p.relative_to(fraud_env).parts[:1]
    ]
    assert cards_in_files(outside, known=cards) == {}


# --- the bad-input corpus -----------------------------------------------------------------------------------


def test_truncated_file(fraud_env, tmp_path):
    data = _csv([_row(n) for n in range(5)])
    summary = ingest_csv(_file(tmp_path, data[:-40]), Settings())  # cut in the last row's numbers
    _accounted(summary)
    assert (summary.rows_read, summary.accepted, summary.reasons) == (5, 4, {"wrong_field_count": 1})
    _, _, quarantine = _objects(Settings(), summary)
    assert quarantine[0]["line"] == 6 and quarantine[0]["raw"].startswith("1004,")

    cut = data[: data.rindex(b"Kohler, Lind") + 8]  # inside the last row's quoted merchant
    inside_quotes = ingest_csv(_file(tmp_path, cut, "cut.csv"), Settings())
    _accounted(inside_quotes)
    assert (inside_quotes.accepted, inside_quotes.reasons) == (4, {"wrong_field_count": 1})


def test_extra_fields_in_a_row(fraud_env, tmp_path):
    lines = _csv([_row(n) for n in range(3)]).split(b"\n")
    lines[2] += b",surplus"
    summary = ingest_csv(_file(tmp_path, b"\n".join(lines)), Settings())
    _accounted(summary)
    assert (summary.accepted, summary.reasons) == (2, {"wrong_field_count": 1})


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_windows_and_old_mac_line_endings_with_a_bom(fraud_env, tmp_path, ending):
    data = b"\xef\xbb\xbf" + _csv([_row(n) for n in range(3)]).replace(b"\n", ending)
    data = data.replace(b"Kohler, Lindgren 1", b"two\rlines")  # inside the quoted merchant
    summary = ingest_csv(_file(tmp_path, data), Settings())
    assert (summary.rows_read, summary.accepted) == (3, 3)
    transactions, _, _ = _objects(Settings(), summary)
    assert transactions[1]["merchant"] == "two\rlines"


def test_wrong_delimiter(fraud_env, tmp_path):
    summary = ingest_csv(_file(tmp_path, _csv([_row(n) for n in range(4)], delimiter=";")), Settings())
    _accounted(summary)
    assert (summary.rows_read, summary.accepted, summary.reasons) == (4, 0, {"missing_required_columns": 4})
    assert summary.transactions_key is None and summary.labels_key is None
    assert "';'" in summary.header_problem and "trans_num" in summary.missing_columns
    _, _, quarantine = _objects(Settings(), summary)
    assert [entry["line"] for entry in quarantine] == [2, 3, 4, 5]


def test_missing_required_columns(fraud_env, tmp_path):
    header = [c for c in HEADER if c not in ("merchant", "amt")]
    summary = ingest_csv(_file(tmp_path, _csv([_row(n) for n in range(3)], header)), Settings())
    _accounted(summary)
    assert summary.missing_columns == ("merchant", "amt")
    assert (summary.accepted, summary.reasons) == (0, {"missing_required_columns": 3})

    no_time = [c for c in HEADER if c not in ("trans_date_trans_time", "unix_time")]
    summary = ingest_csv(_file(tmp_path, _csv([_row(1)], no_time), "no_time.csv"), Settings())
    assert summary.missing_columns == ("trans_date_trans_time or unix_time",)

    unix_only = [c for c in HEADER if c != "trans_date_trans_time"]  # one of the two time columns is enough
    summary = ingest_csv(_file(tmp_path, _csv([_row(1)], unix_only), "unix.csv"), Settings())
    assert (summary.accepted, summary.quarantined) == (1, 0)


def test_unparseable_dates_and_amounts(fraud_env, tmp_path):
    rows = [
        _row(0),
        _row(1, trans_date_trans_time="31/31/2019 25:00", unix_time=""),
        _row(2, trans_date_trans_time="someday", unix_time="soon"),
        _row(3, trans_date_trans_time="someday"),  # unix_time still gives the time: accepted
        _row(4, amt="12,50"),
        _row(5, amt="NaN"),
        _row(6, amt=""),
        _row(7, amt="-5.00"),
        _row(8, amt="-0.01"),
        _row(9, amt="1000000.01"),
        _row(10, amt="2.5e9"),
        _row(11, amt="1000000"),
        _row(12, trans_num=" "),
        _row(13, cc_num="not a card"),
        _row(14, merchant=""),
        _row(15, is_fraud="maybe"),
    ]
    summary = ingest_csv(_file(tmp_path, _csv(rows)), Settings())
    _accounted(summary)
    assert summary.reasons == {
        "invalid_timestamp": 2,
        "invalid_amount": 3,
        "negative_amount": 2,
        "absurd_amount": 2,
        "missing_trans_num": 1,
        "invalid_card_number": 1,
        "missing_merchant": 1,
        "invalid_is_fraud": 1,
    }
    transactions, _, quarantine = _objects(Settings(), summary)
    assert sorted(row["trans_num"] for row in transactions) == ["t00000", "t00003", "t00011"]
    assert {entry["line"]: entry["reason"] for entry in quarantine}[3] == "invalid_timestamp"
    assert quarantine[0]["fields"]["trans_date_trans_time"] == "31/31/2019 25:00"  # the raw fields, as written


def test_non_utf8_bytes_in_one_row(fraud_env, tmp_path):
    data = _csv([_row(n) for n in range(4)]).replace(b"Kohler, Lindgren 2", b"K\xf6hler, Lindgren 2")
    summary = ingest_csv(_file(tmp_path, data), Settings())
    _accounted(summary)
    assert (summary.accepted, summary.reasons) == (3, {"invalid_utf8": 1})
    _, _, quarantine = _objects(Settings(), summary)
    assert quarantine == [{"line": 4, "reason": "invalid_utf8", "raw": quarantine[0]["raw"]}]
    assert "K\\xf6hler, Lindgren 2" in quarantine[0]["raw"]


def test_exact_and_conflicting_duplicates(fraud_env, tmp_path):
    rows = [
        _row(0),
        _row(1),
        _row(2),
        _row(1, merchant="  Kohler, Lindgren 1 "),  # the same row, other whitespace (and another index value)
        _row(2, amt="99.99"),  # same trans_num, other content
        _row(3, amt="-1"),
        _row(3, amt="-1"),
    ]  # a duplicated bad row: quarantined once, dropped once
    summary = ingest_csv(_file(tmp_path, _csv(rows)), Settings())
    _accounted(summary)
    assert (summary.rows_read, summary.accepted, summary.duplicates) == (7, 3, 2)
    assert summary.reasons == {"conflicting_duplicate_trans_num": 1, "negative_amount": 1}
    transactions, labels, _ = _objects(Settings(), summary)
    assert [row["amt"] for row in transactions if row["trans_num"] == "t00002"] == ["3.25"]  # the first one wins
    assert len(labels) == 3


def test_extra_columns_are_dropped_and_values_stripped(fraud_env, tmp_path):
    header = [*HEADER[:5], "note", *HEADER[5:], "source"]
    rows = [_row(n, note="hello", source="bank", category=" grocery_net ") for n in range(3)]
    summary = ingest_csv(_file(tmp_path, _csv(rows, header)), Settings())
    _accounted(summary)
    assert summary.extra_columns == ("note", "source") and (summary.accepted, summary.quarantined) == (3, 0)
    transactions, labels, _ = _objects(Settings(), summary)
    assert set(transactions[0]) == set(RAW_COLUMNS) and transactions[0]["category"] == "grocery_net"
    assert transactions[1]["cc_num"] == "373000000000000.0"  # raw values: the ETL tokenizes them
    # the batch's hour is the earliest event: row 0, "2019-01-01 00:00:18"
    assert summary.transactions_key == f"transactions/dt=2019-01-01/hour=00/{summary.batch_id}.jsonl.gz"
    assert summary.labels_key == f"labels/dt=2019-01-03/{summary.batch_id}.jsonl.gz"
    assert {label["trans_num"]: label["labelled_at"] for label in labels}["t00001"] == "2019-12-13 05:12:00"


def test_reingesting_is_idempotent(fraud_env, tmp_path):
    settings = Settings()
    rows = [_row(n) for n in range(6)] + [_row(2), _row(3, amt="-3")]
    path = _file(tmp_path, _csv(rows))
    store = object_store(settings, settings.raw_bucket)
    first = ingest_csv(path, settings)
    keys = (first.transactions_key, first.labels_key, first.quarantine_key)
    objects = {key: store.get_bytes(key) for key in keys}
    second = ingest_csv(_file(tmp_path, path.read_bytes(), "copy.csv"), settings)
    assert replace(second, seconds=first.seconds) == first  # same batch id, same counts, same keys
    assert {key: store.get_bytes(key) for key in keys} == objects
    assert first.batch_id == "csv-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]

    # --batch-id overrides; a corrected file under the same id leaves no stale quarantine behind
    named = ingest_csv(path, settings, batch_id="bank-2026-11")
    assert named.batch_id == "bank-2026-11" and store.exists(named.quarantine_key)
    fixed = ingest_csv(
        _file(tmp_path, _csv([_row(n) for n in range(6)]), "fixed.csv"), settings, batch_id="bank-2026-11"
    )
    assert fixed.quarantine_key is None and not store.exists(named.quarantine_key)
    with pytest.raises(IngestError):
        ingest_csv(path, settings, batch_id="../escape")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (gzip.compress(b"trans_num,cc_num\n"), "gzip"),
        ("trans_num,amt\n".encode("utf-16"), "NUL"),
        (b'{"trans_num": "t1"}\n', "JSON"),
        (b"trans_num,\xff\xfe\n", "UTF-8"),
    ],
    ids=["empty", "gzip", "utf16", "json", "not-utf8"],
)  # ids, not the bytes: gzip's header holds the time
def test_not_a_csv(fraud_env, tmp_path, data, message):
    with pytest.raises(IngestError, match=message):
        ingest_csv(_file(tmp_path, data), Settings())


# --- property: whatever the rows, every one is accounted for ------------------------------------------------


def _encode(fields: list[bytes]) -> bytes:
    quoted = [
        b'"' + f.replace(b'"', b'""') + b'"' if any(c in f for c in (b",", b'"', b"\n", b"\r")) else f for f in fields
    ]
    return b",".join(quoted) + b"\n"


_GARBAGE = st.one_of(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12).map(str.encode),
    st.binary(max_size=6).map(lambda b: b.replace(b"\x00", b"")),
    st.sampled_from([b"", b" ", b"NaN", b"-1", b"1e9", b'"', b",", b"\n", b"31/31/2019", b"inf", b"t00000"]),
)


@st.composite
def _files(draw) -> tuple[bytes, int]:
    rows: list[list[bytes]] = []
    for n in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["valid", "valid", "garbage", "duplicate", "short", "long"]))
        fields = [str(n).encode()] + [_row(n)[c].encode() for c in HEADER[1:]]
        if kind == "duplicate" and rows:
            fields = [str(n).encode()] + draw(st.sampled_from(rows))[1:]  # another index value: still a duplicate
        elif kind == "garbage":
            for _ in range(draw(st.integers(1, 3))):
                fields[draw(st.integers(1, len(fields) - 1))] = draw(_GARBAGE)
        elif kind == "short":
            fields = fields[: draw(st.integers(1, len(fields) - 1))]
        elif kind == "long":
            fields = fields + [draw(_GARBAGE)]
        rows.append(fields)
    lines = [_encode(fields) for fields in rows]
    return _encode([c.encode() for c in HEADER]) + b"".join(lines), sum(1 for line in lines if line.strip())


@pytest.mark.fuzz  # examples: the Hypothesis profile (HYPOTHESIS_PROFILE: ci 300, soak 10,000)
@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_files())
def test_every_generated_row_is_accounted_for(fraud_env, generated):
    data, rows = generated
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        summary = ingest_csv(_file(Path(tmp), data), settings)
        assert summary.rows_read == rows == summary.accepted + summary.quarantined + summary.duplicates
        transactions, labels, quarantine = _objects(settings, summary)
        assert len(transactions) + len(quarantine) == summary.accepted + summary.quarantined
        assert len(transactions) == summary.accepted and len(labels) <= summary.accepted
        assert len({row["trans_num"] for row in transactions}) == len(transactions)


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_ingest_prints_the_summary(fraud_env, tmp_path):
    rows = [_row(n) for n in range(5)] + [_row(1), _row(5, amt="-2")]
    result = CliRunner().invoke(app, ["ingest", str(_file(tmp_path, _csv(rows)))], terminal_width=200)
    assert result.exit_code == 0, result.output
    for expected in (
        "rows read",
        "7",
        "accepted",
        "duplicates dropped",
        "negative_amount",
        "extra columns dropped",
        "transactions key",
        "fraud-raw/transactions/dt=2019-01-01/hour=00/csv-",
    ):
        assert expected in result.output, expected
    assert card_numbers_in(result.output) == []


def test_cli_missing_file_is_a_one_line_error(fraud_env, tmp_path):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nope.csv'}: no such file"]
    binary = CliRunner().invoke(app, ["ingest", str(_file(tmp_path, gzip.compress(b"a,b\n"), "x.csv"))])
    assert binary.exit_code == 2 and len(binary.output.strip().splitlines()) == 1 and "gzip" in binary.output
