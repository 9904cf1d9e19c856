"""`fraud ingest FILE.csv`: a Sparkov-schema CSV (the seed files, the Kaggle files, a bank's export) into the raw zone.

Every data row of the file ends up in exactly one place:

- accepted: one raw transaction batch (raw string values, whitespace stripped, no label, no index column), and
  when the file has an `is_fraud` column, one label batch (`trans_num, is_fraud, labelled_at`);
- an exact duplicate of an earlier row: dropped and counted;
- quarantined with one reason: `quarantine/ingest/batch_id=<batch id>/ingest.jsonl.gz` in the raw bucket. The
  reasons and the row rules are fraud/ingest/validation.py's, the ones the ETL and the online path apply too.

The parsing and validation below are pure functions over strings and bytes; `ingest_csv` is the only function
that touches the file and the object store. The batch id defaults to a hash of the file's bytes, so ingesting
the same file again rewrites the same objects.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Literal

import pandas as pd

from fraud.core.schema import LABEL_COLUMNS, RAW_COLUMNS, REQUIRED_COLUMNS, batch_id_of, encode_jsonl_gz
from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store
from fraud.ingest.raw_values import parse_event_time
from fraud.ingest.raw_zone import write_labels, write_transactions
from fraud.ingest.validation import INGEST_REASONS, RawRow, Reason, failed_check, invalid_is_fraud, parse_label

LABEL_COLUMN = "is_fraud"
TIME_COLUMNS: tuple[str, ...] = ("trans_date_trans_time", "unix_time")
INDEX_COLUMN_NAMES = frozenset({"", "Unnamed: 0"})  # pandas' unnamed index, only as the first column
LABEL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

Progress = Callable[[int, int], None]  # (bytes read so far, file size)
_PROGRESS_EVERY = 2_000  # rows between progress callbacks
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,127}$")
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")  # a line break that is not \r\n
_BINARY_MAGIC = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive", b"PAR1": "a Parquet file"}


class IngestError(ValueError):
    """The input cannot be ingested at all (not a CSV, a bad batch id): nothing was written."""


def validate_row(fields: dict[str, str]) -> Reason | None:
    """The quarantine reason of one row (column -> value, whitespace stripped), or None when it is valid: the rules
    every engine applies (fraud.ingest.validation), then the CSV's own label column.

    Checks only the row itself; duplicates across rows are `classify`'s business."""
    check = failed_check(RawRow.read(fields))
    if check is not None:
        return check.reason
    if invalid_is_fraud(fields.get(LABEL_COLUMN, "")):
        return Reason.INVALID_IS_FRAUD
    return None


# --- the header ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    names: tuple[str, ...]  # as in the file, whitespace stripped
    kept: tuple[tuple[int, str], ...]  # (position, column) of the Sparkov columns and is_fraud, first occurrence
    extra_columns: tuple[str, ...]  # unknown columns, dropped
    missing_columns: tuple[str, ...]  # required columns the header lacks; non-empty: every row is quarantined
    problem: str | None  # a sentence for people when the header is unusable

    @property
    def has_labels(self) -> bool:
        return any(name == LABEL_COLUMN for _, name in self.kept)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        present = {name for _, name in self.kept}
        return tuple(c for c in RAW_COLUMNS if c in present)


def parse_header(fields: Sequence[str]) -> Header:
    names = tuple(name.strip() for name in fields)
    known = set(RAW_COLUMNS) | {LABEL_COLUMN}
    kept: dict[str, int] = {}
    extra: list[str] = []
    for position, name in enumerate(names):
        if position == 0 and name in INDEX_COLUMN_NAMES:
            continue
        if name in known and name not in kept:
            kept[name] = position
        else:
            extra.append(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in kept]
    if not any(c in kept for c in TIME_COLUMNS):
        missing.append(" or ".join(TIME_COLUMNS))
    return Header(
        names,
        tuple((p, n) for n, p in sorted(kept.items(), key=lambda item: item[1])),
        tuple(extra),
        tuple(missing),
        _header_problem(names, missing),
    )


def _header_problem(names: tuple[str, ...], missing: list[str]) -> str | None:
    if not missing:
        return None
    problem = "the header lacks " + ", ".join(missing)
    if len(names) == 1:
        delimiter = next((d for d in (";", "\t", "|") if d in names[0]), None)
        shown = {"\t": "a tab"}.get(delimiter, f"'{delimiter}'")
        problem += f"; it has a single column{f' (the delimiter looks like {shown}, not a comma)' if delimiter else ''}"
    return problem


def row_fields(header: Header, values: Sequence[str]) -> dict[str, str]:
    """The kept columns of one row, whitespace stripped (index and extra columns dropped)."""
    return {name: values[position].strip() for position, name in header.kept}


# --- records: the file as CSV records, bytes decoded one record at a time -------------------------------------


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line of the file where the record starts
    fields: tuple[str, ...] | None  # None: not UTF-8, or the csv module could not split it
    text: str  # the record as written, undecodable bytes escaped (\xff)
    utf8: bool


def _record(line: int, chunks: list[bytes], fields: Sequence[str] | None) -> Record:
    raw = b"".join(chunks)
    utf8 = _is_utf8(raw)
    return Record(
        line,
        tuple(fields) if fields is not None and utf8 else None,
        raw.decode("utf-8", "backslashreplace").rstrip("\r\n"),
        utf8,
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_line(text: str) -> list[str] | None:
    try:
        return next(csv.reader([text]), [])
    except csv.Error:
        return None


def _swallowed_rows(chunks: list[bytes], fields: list[str] | None, width: int | None) -> bool:
    """Whether a record read over several lines is really a stray quote that ate the rows after it: the csv
    module gave up on it, or its field count is wrong while a line inside it is a whole row on its own."""
    if fields is None:
        return True
    if width is None or len(fields) == width:
        return False
    return any(len(_parse_line(chunk.decode("utf-8", "surrogateescape")) or ()) == width for chunk in chunks[1:])


def split_records(lines: Iterable[bytes], expected_fields: Callable[[], int | None] = lambda: None) -> Iterator[Record]:
    """CSV records from the file's physical lines (bytes, with their line endings); blank lines are skipped.

    A record the csv module cannot read, or one spanning several lines whose field count is wrong although some
    of its lines are whole rows (a stray quote swallowing the rows after it), is split back into its lines, each
    a record of its own: one bad quote costs one row, not the rest of the file. `expected_fields` gives the
    header's width once known."""
    consumed: list[bytes] = []

    def decoded() -> Iterator[str]:
        for chunk in lines:
            consumed.append(chunk)
            yield chunk.decode("utf-8", "surrogateescape")  # undecodable bytes survive to be reported

    reader = csv.reader(decoded())
    line = 1
    while True:
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error:
            fields = None
        chunks, consumed[:] = list(consumed), []
        if len(chunks) > 1 and _swallowed_rows(chunks, fields, expected_fields()):
            for offset, chunk in enumerate(chunks):
                if chunk.strip():
                    yield _record(line + offset, [chunk], _parse_line(chunk.decode("utf-8", "surrogateescape")))
        elif b"".join(chunks).strip():
            yield _record(line, chunks, fields)
        line += len(chunks)


# --- classification: the one decision per row ---------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    record: Record
    outcome: Literal["accepted", "duplicate", "quarantined"]
    reason: Reason | None = None
    fields: dict[str, str] | None = None  # kept columns, stripped (None when the record could not be split)
    event_time: datetime | None = None


def classify(header: Header, records: Iterable[Record]) -> Iterator[Verdict]:
    """One verdict per data record, in file order. Exact duplicates (same kept values as an earlier row, index and
    extra columns aside) are dropped; a row reusing an accepted row's trans_num with other values is quarantined."""
    seen: set[tuple[str, ...]] = set()
    accepted: dict[str, tuple[str, ...]] = {}  # trans_num -> kept values
    width = len(header.names)
    for record in records:
        if header.missing_columns:
            yield Verdict(record, "quarantined", Reason.MISSING_REQUIRED_COLUMNS)
            continue
        if not record.utf8:
            yield Verdict(record, "quarantined", Reason.INVALID_UTF8)
            continue
        if record.fields is None:
            yield Verdict(record, "quarantined", Reason.MALFORMED_CSV)
            continue
        if len(record.fields) != width:
            yield Verdict(record, "quarantined", Reason.WRONG_FIELD_COUNT)
            continue
        fields = row_fields(header, record.fields)
        values = tuple(fields.values())
        if values in seen:
            yield Verdict(record, "duplicate", fields=fields)
            continue
        seen.add(values)
        reason = validate_row(fields)
        if reason is None and fields["trans_num"] in accepted:
            reason = Reason.CONFLICTING_DUPLICATE_TRANS_NUM  # not an exact duplicate, or `seen` would have caught it
        if reason is not None:
            yield Verdict(record, "quarantined", reason, fields)
            continue
        accepted[fields["trans_num"]] = values
        yield Verdict(record, "accepted", fields=fields, event_time=parse_event_time(fields))


def quarantine_entry(header: Header, verdict: Verdict) -> dict:
    """What the quarantine keeps of a row: its line, the reason, and the raw fields (or the raw text)."""
    entry: dict = {"line": verdict.record.line, "reason": verdict.reason}
    fields = verdict.record.fields
    if fields is not None and len(fields) == len(header.names):
        entry["fields"] = {
            name or f"column_{i}": value for i, (name, value) in enumerate(zip(header.names, fields, strict=False))
        }
    else:
        entry["raw"] = verdict.record.text
    return entry


def label_row(fields: dict[str, str], when: datetime, label_delay_days: float) -> dict | None:
    """The label of an accepted row, known `label_delay_days` after the transaction (None: no label given)."""
    label = parse_label(fields.get(LABEL_COLUMN, ""))
    if label is None:
        return None
    labelled_at = when + timedelta(days=label_delay_days)
    return {"trans_num": fields["trans_num"], "is_fraud": label, "labelled_at": labelled_at.strftime(LABEL_TIME_FORMAT)}


# --- the summary --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestSummary:
    batch_id: str
    rows_read: int
    accepted: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int]
    extra_columns: tuple[str, ...]
    transactions_key: str | None  # None when no row was accepted
    labels_key: str | None
    quarantine_key: str | None
    labels: int = 0  # label rows written
    frauds: int = 0  # of which is_fraud = 1
    missing_columns: tuple[str, ...] = ()
    header_problem: str | None = None
    seconds: float = 0.0
    first_event: datetime | None = None
    last_event: datetime | None = None

    def __post_init__(self) -> None:
        if self.rows_read != self.accepted + self.quarantined + self.duplicates:
            raise ValueError(
                f"rows unaccounted for: {self.rows_read} read != {self.accepted} accepted + "
                f"{self.quarantined} quarantined + {self.duplicates} duplicates"
            )
        if sum(self.reasons.values()) != self.quarantined:
            raise ValueError(f"quarantine reasons {self.reasons} do not add up to {self.quarantined}")
        if self.frauds > self.labels or self.labels > self.accepted:
            raise ValueError(f"{self.frauds} frauds, {self.labels} labels for {self.accepted} accepted rows")


# --- I/O: the file and the object store ---------------------------------------------------------------------


def default_batch_id(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"csv-{digest.hexdigest()[:12]}"


def check_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise IngestError(f"invalid batch id {batch_id!r}: use letters, digits, '.', '_', '=', '-' (at most 128)")
    return batch_id


def sniff(head: bytes) -> None:
    """Refuse what is clearly not a CSV (empty, binary, compressed, UTF-16, JSON) before anything is written."""
    if not head.strip():
        raise IngestError("the file is empty: no header line")
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise IngestError(
                f"not a CSV: the file is {what}" + (" (decompress it first)" if magic == b"\x1f\x8b" else "")
            )
    if b"\x00" in head:
        raise IngestError("not a CSV: the file contains NUL bytes (binary, or UTF-16 text; save it as UTF-8)")
    first_line = head.removeprefix(codecs.BOM_UTF8).split(b"\n", 1)[0]
    if len(head) < (1 << 16) or b"\n" in head:  # a whole first line, not one cut mid-character
        try:
            first_line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise IngestError(f"not a CSV: the header line is not UTF-8 text ({error.reason})") from None
    if first_line.lstrip()[:1] in (b"{", b"["):
        raise IngestError("not a CSV: the file looks like JSON")


def _lines(handle: BinaryIO, size: int, progress: Progress | None) -> Iterator[bytes]:
    """The file's lines, ending in \n, \r\n or a lone \r (old Excel for Mac), with the UTF-8 BOM removed."""
    done = 0
    for count, chunk in enumerate(handle, start=1):
        done += len(chunk)
        if count == 1:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(done, size)
        if b"\r" in chunk:
            yield from (part for part in _LONE_CR.split(chunk) if part)
        else:
            yield chunk
    if progress is not None:
        progress(size, size)


@dataclass
class _Tally:
    """The running outcome of one file; turned into an IngestSummary at the end."""

    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    rows: list[dict[str, str]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)

    def add(self, header: Header, verdict: Verdict) -> None:
        self.counts[verdict.outcome] += 1
        if verdict.outcome == "accepted":
            self.rows.append(verdict.fields)
            self.times.append(verdict.event_time)
        elif verdict.outcome == "quarantined":
            self.reasons[verdict.reason] += 1
            self.quarantine.append(quarantine_entry(header, verdict))


def ingest_csv(
    path: Path, settings: Settings, batch_id: str | None = None, progress: Progress | None = None
) -> IngestSummary:
    """Read, validate and write one CSV file; see the module docstring. Raises IngestError for a file that is not
    a CSV (nothing is written then)."""
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"no such file: {path}")
    batch_id = check_batch_id(batch_id) if batch_id else default_batch_id(path)
    size = path.stat().st_size
    header: Header | None = None
    tally = _Tally()
    with path.open("rb") as handle:
        sniff(handle.read(1 << 16))
        handle.seek(0)
        records = split_records(_lines(handle, size, progress), lambda: len(header.names) if header else None)
        first = next(records, None)
        if first is None:
            raise IngestError("the file is empty: no header line")
        if not first.utf8 or first.fields is None:  # (sniff has already checked the encoding)
            raise IngestError("not a CSV: the header line cannot be read")
        header = parse_header(first.fields)
        for verdict in classify(header, records):
            tally.add(header, verdict)
    return _write(object_store(settings, settings.raw_bucket), settings, header, tally, batch_id, started)


def quarantine_key(batch_id: str) -> str:
    return f"quarantine/ingest/batch_id={batch_id}/ingest.jsonl.gz"  # apart from the Glue job's quarantine/etl/


def _write(
    store: ObjectStore, settings: Settings, header: Header, tally: _Tally, batch_id: str, started: float
) -> IngestSummary:
    """One transaction batch, one label batch, one quarantine object; stale objects of the same batch id go."""
    transactions, labels, quarantined = None, None, None
    label_rows: list[dict] = []
    if tally.rows:
        event_hour = min(tally.times).replace(minute=0, second=0, microsecond=0)
        columns = list(header.raw_columns)
        frame = pd.DataFrame([[row[c] for c in columns] for row in tally.rows], columns=columns, dtype=object)
        transactions = write_transactions(store, batch_id, frame, event_hour)
        if header.has_labels:
            label_rows = [
                label
                for row, when in zip(tally.rows, tally.times, strict=False)
                if (label := label_row(row, when, settings.label_delay_days)) is not None
            ]
        if label_rows:
            # like the generator's: chargebacks land under the day they become known
            labels = write_labels(
                store,
                batch_id,
                pd.DataFrame(label_rows, columns=list(LABEL_COLUMNS)),
                event_hour + timedelta(days=settings.label_delay_days),
            )
    if tally.quarantine:
        quarantined = quarantine_key(batch_id)
        store.put_bytes(quarantined, encode_jsonl_gz(tally.quarantine), "application/gzip")
    _remove_stale(store, batch_id, {transactions, labels, quarantined})
    return IngestSummary(
        batch_id=batch_id,
        rows_read=sum(tally.counts.values()),
        accepted=tally.counts["accepted"],
        duplicates=tally.counts["duplicate"],
        quarantined=tally.counts["quarantined"],
        reasons={reason.value: tally.reasons[reason] for reason in INGEST_REASONS if tally.reasons[reason]},
        extra_columns=header.extra_columns,
        transactions_key=transactions,
        labels_key=labels,
        quarantine_key=quarantined,
        labels=len(label_rows),
        frauds=sum(label["is_fraud"] for label in label_rows),
        missing_columns=header.missing_columns,
        header_problem=header.problem,
        seconds=round(time.perf_counter() - started, 3),
        first_event=min(tally.times, default=None),
        last_event=max(tally.times, default=None),
    )


def _remove_stale(store: ObjectStore, batch_id: str, keep: set[str | None]) -> None:
    """A batch id names one batch: objects an earlier ingest wrote under it elsewhere (another event hour, a
    quarantine that is now empty) are deleted, so re-ingesting a corrected file leaves no leftovers."""
    stale = [
        key
        for prefix in ("transactions/", "labels/")
        for key in store.list_keys(prefix)
        if key.endswith(".jsonl.gz") and batch_id_of(key) == batch_id and key not in keep
    ]
    if quarantine_key(batch_id) not in keep and store.exists(quarantine_key(batch_id)):
        stale.append(quarantine_key(batch_id))
    for key in stale:
        store.delete(key)
