"""The rules a raw transaction must pass, written once: the reason codes, the thresholds and the checks in order.

Three engines apply them, and each must give a row the same reason (tests/ingest/test_validation.py feeds one
corpus of bad rows to all three):

- `fraud ingest` (fraud/ingest/csv_files.py `validate_row`) quarantines a CSV row before it reaches the raw zone;
- the online path (fraud/features/online.py `parse_transaction`) refuses a transaction at the till with
  `InvalidTransaction(reason, field, message)`;
- the ETL (fraud/features/spark.py `validate`) quarantines a raw row. Calling these functions per row would take a
  Python UDF, so Spark writes each check of `ROW_CHECKS` as a column expression, check by check in this order, with
  the codes and thresholds below: a renamed code or a changed threshold reaches all three, and a check added here
  without a Spark expression stops the job before it reads a row.

The checks read the values through fraud.ingest.raw_values (Spark: its expressions of the same readers) and card
numbers through fraud.core.privacy.normalize_card_number (Spark's tokenizer calls that same function).

Not every rule applies everywhere:
- a record's format: a CSV's (missing columns, not UTF-8, malformed, wrong field count) only in fraud ingest; a
  JSON line's (`malformed_json`) and a cut-off raw object's (`corrupt_object`) only in the ETL; the online API
  receives parsed JSON and answers a malformed request itself (fraud/serving, lambdas/scorer);
- `invalid_is_fraud`: only a CSV carries a label column; the ETL reads labels from label batches and the online
  path never sees one;
- `conflicting_duplicate_trans_num`: duplicates exist only in a batch (fraud ingest within its file, the ETL
  within its run and against what is loaded); the online path sees one transaction at a time;
- the card number's check digit (Luhn, `invalid_card_checksum`) only online (`ONLINE_CHECKS`): a number that
  fails it at the till is a typo or a probe, and the payment has not happened; a settled transaction in a batch
  happened whatever its export did to the digits (a card number written as a float, "3.73E+14", has lost its
  check digit yet still names one card: 91% of the seed files' rows), so the batch engines keep it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from fraud.core.privacy import normalize_card_number
from fraud.ingest.raw_values import parse_date, parse_event_time, parse_number, parse_timestamp, text_of

ABSURD_AMOUNT = 1_000_000.0  # larger amounts are data errors, not card purchases
LATITUDE_LIMIT = 90.0
LONGITUDE_LIMIT = 180.0
COORDINATE_LIMITS: dict[str, float] = {
    "lat": LATITUDE_LIMIT,
    "long": LONGITUDE_LIMIT,
    "merch_lat": LATITUDE_LIMIT,
    "merch_long": LONGITUDE_LIMIT,
}
# The window a transaction's time must fall in, and the dates of birth a holder may have: fixed, documented bounds
# rather than "now"-relative ones, as the ETL re-validates raw batches of any age and must give a row the same
# reason on any day (a bound that moves with the clock would not be reproducible in batch). 1970 is the unix epoch
# (unix_time is never negative); 2100 leaves decades of headroom yet refuses the placeholder years (9999, 0001)
# that systems write for "no date". Inside these bounds every feature (windows, ages, month ends) is computable.
FIRST_EVENT_TIME = datetime(1970, 1, 1)
LAST_EVENT_TIME = datetime(2100, 12, 31, 23, 59, 59)
FIRST_DOB = date(1900, 1, 1)  # a holder born before 1900 would be over 126 years old in 2026
TRUE_LABELS = frozenset({"1", "1.0", "true"})
FALSE_LABELS = frozenset({"0", "0.0", "false"})


class Reason(StrEnum):
    """Why a row is quarantined or refused. The strings are stored (quarantine objects, batch accounting, API
    errors) and documented: add codes, rename none."""

    # the record itself cannot be read
    MISSING_REQUIRED_COLUMNS = "missing_required_columns"  # fraud ingest: the CSV header lacks a required column
    INVALID_UTF8 = "invalid_utf8"  # fraud ingest
    MALFORMED_CSV = "malformed_csv"  # fraud ingest
    WRONG_FIELD_COUNT = "wrong_field_count"  # fraud ingest
    CORRUPT_OBJECT = "corrupt_object"  # the ETL: a raw batch that is not a whole gzip file, set aside whole
    MALFORMED_JSON = "malformed_json"  # the ETL: a line of a raw batch that is not a JSON object
    # the row's values: ROW_CHECKS, every engine
    MISSING_TRANS_NUM = "missing_trans_num"
    INVALID_CARD_NUMBER = "invalid_card_number"
    INVALID_CARD_CHECKSUM = "invalid_card_checksum"  # online only: ONLINE_CHECKS
    MISSING_MERCHANT = "missing_merchant"
    INVALID_AMOUNT = "invalid_amount"
    NEGATIVE_AMOUNT = "negative_amount"
    ABSURD_AMOUNT = "absurd_amount"
    INVALID_TIMESTAMP = "invalid_timestamp"
    EVENT_TIME_OUT_OF_RANGE = "event_time_out_of_range"
    INVALID_DOB = "invalid_dob"
    INVALID_COORDINATE = "invalid_coordinate"
    # a CSV's own label column: fraud ingest
    INVALID_IS_FRAUD = "invalid_is_fraud"
    # across rows: a batch (fraud ingest, the ETL)
    CONFLICTING_DUPLICATE_TRANS_NUM = "conflicting_duplicate_trans_num"


@dataclass(frozen=True)
class RawRow:
    """The values of one raw row that the checks read, as every engine reads them (None: empty or unreadable)."""

    trans_num: str
    card_digits: str | None
    merchant: str
    amount: float | None
    event_time: datetime | None  # naive, UTC
    dob: date | None  # optional: empty or unreadable is unknown
    lat: float | None
    long: float | None
    merch_lat: float | None
    merch_long: float | None

    @classmethod
    def read(cls, raw: Mapping[str, object]) -> RawRow:
        """From raw values: strings (a CSV, a raw batch) or JSON values (the online API)."""
        return cls(
            trans_num=text_of(raw.get("trans_num")),
            card_digits=normalize_card_number(raw.get("cc_num")),
            merchant=text_of(raw.get("merchant")),
            amount=parse_number(raw.get("amt")),
            event_time=parse_event_time(raw),
            dob=parse_date(raw.get("dob")),
            **{name: parse_number(raw.get(name)) for name in COORDINATE_LIMITS},
        )


# --- the rules: each says whether a row breaks it ----------------------------------------------------------------


def missing_trans_num(row: RawRow) -> bool:
    return not row.trans_num


def invalid_card_number(row: RawRow) -> bool:
    """Not 8 to 19 digits, however the file wrote them (grouped, as a float)."""
    return row.card_digits is None


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check digit every payment card number carries."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def invalid_card_checksum(row: RawRow) -> bool:
    """A card number whose check digit is wrong (a number that is not a card number at all fails earlier)."""
    return row.card_digits is not None and not luhn_valid(row.card_digits)


def missing_merchant(row: RawRow) -> bool:
    return not row.merchant


def invalid_amount(row: RawRow) -> bool:
    """Not a finite plain decimal: empty, text, "12,50", NaN, inf, "1e999" (and "1d", which Spark's cast takes)."""
    return row.amount is None


def negative_amount(row: RawRow) -> bool:
    return row.amount is not None and row.amount < 0


def absurd_amount(row: RawRow) -> bool:
    return row.amount is not None and row.amount > ABSURD_AMOUNT


def invalid_timestamp(row: RawRow) -> bool:
    """Neither `trans_date_trans_time` in one of the schema's formats nor a `unix_time` in years 1 to 9999."""
    return row.event_time is None


def event_time_out_of_range(row: RawRow) -> bool:
    """A readable time outside the documented window, FIRST_EVENT_TIME to LAST_EVENT_TIME (both included)."""
    return row.event_time is not None and not FIRST_EVENT_TIME <= row.event_time <= LAST_EVENT_TIME


def invalid_dob(row: RawRow) -> bool:
    """A date of birth before FIRST_DOB or after the transaction's (UTC) day. An absent or unreadable one is
    unknown, not invalid (the holder's stored one, or age_known = 0)."""
    if row.dob is None or row.event_time is None:
        return False
    return row.dob < FIRST_DOB or row.dob > row.event_time.date()


def timestamp_problem(raw: Mapping[str, object]) -> tuple[str, str]:
    """The field and message of an `invalid_timestamp` refusal, naming the field that was sent and failed (a
    `trans_date_trans_time` first, as the readers try it first), or both fields when neither was sent."""
    if text_of(raw.get("trans_date_trans_time")):
        return "trans_date_trans_time", (
            "trans_date_trans_time is not a date and time in one of the schema's formats "
            "(e.g. 2026-11-01 14:30:00, 01/11/2026 14:30)"
        )
    if text_of(raw.get("unix_time")):
        return "unix_time", "unix_time must be a number of seconds since 1970-01-01 in years 1 to 9999"
    return "trans_date_trans_time", "trans_date_trans_time (e.g. 2026-11-01 14:30:00) or unix_time is required"


def coordinate_out_of_range(value: float | None, limit: float) -> bool:
    """Past a pole or the antimeridian. An empty or unreadable coordinate is unknown, not invalid: the features
    say so with a flag (distance_known)."""
    return value is not None and abs(value) > limit


# --- the checks, in the order every engine runs them --------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    reason: Reason
    field: str  # the raw column it reads: the online API names it in its error
    message: str
    fails: Callable[[RawRow], bool]


def _coordinate_check(name: str) -> Check:
    limit = COORDINATE_LIMITS[name]
    return Check(
        Reason.INVALID_COORDINATE,
        name,
        f"{name} must be between -{limit:g} and {limit:g}",
        lambda row: coordinate_out_of_range(getattr(row, name), limit),
    )


ROW_CHECKS: tuple[Check, ...] = (
    Check(Reason.MISSING_TRANS_NUM, "trans_num", "trans_num is required", missing_trans_num),
    Check(Reason.INVALID_CARD_NUMBER, "cc_num", "cc_num is not a card number (8 to 19 digits)", invalid_card_number),
    Check(Reason.MISSING_MERCHANT, "merchant", "merchant is required", missing_merchant),
    Check(Reason.INVALID_AMOUNT, "amt", "amt must be a finite number", invalid_amount),
    Check(Reason.NEGATIVE_AMOUNT, "amt", "amt must not be negative", negative_amount),
    Check(Reason.ABSURD_AMOUNT, "amt", f"amt over {ABSURD_AMOUNT:,.0f} is not a card purchase", absurd_amount),
    Check(
        Reason.INVALID_TIMESTAMP,
        "trans_date_trans_time",
        "trans_date_trans_time (e.g. 2026-11-01 14:30:00) or unix_time is required",
        invalid_timestamp,
    ),
    Check(
        Reason.EVENT_TIME_OUT_OF_RANGE,
        "trans_date_trans_time",
        f"the transaction's time must be between {FIRST_EVENT_TIME} and {LAST_EVENT_TIME} (UTC)",
        event_time_out_of_range,
    ),
    Check(
        Reason.INVALID_DOB,
        "dob",
        f"dob must be on or after {FIRST_DOB} and not after the transaction's date",
        invalid_dob,
    ),
    *(_coordinate_check(name) for name in COORDINATE_LIMITS),
)
ROW_REASONS: tuple[Reason, ...] = tuple(dict.fromkeys(check.reason for check in ROW_CHECKS))
# the online path's: every row check, and the card number's check digit right after its form
ONLINE_CHECKS: tuple[Check, ...] = (
    *ROW_CHECKS[:2],
    Check(
        Reason.INVALID_CARD_CHECKSUM,
        "cc_num",
        "cc_num is not a card number (its check digit is wrong)",
        invalid_card_checksum,
    ),
    *ROW_CHECKS[2:],
)


def failed_check(row: RawRow, checks: tuple[Check, ...] = ROW_CHECKS) -> Check | None:
    """The first of `checks` the row breaks, or None when it passes them all."""
    return next((check for check in checks if check.fails(row)), None)


def refusal(check: Check, raw: Mapping[str, object]) -> tuple[str, str]:
    """The field and message the online API gives for `check` on `raw`: the time checks name the field that was
    sent (a time reads from either of two), the others their own."""
    if check.reason is Reason.INVALID_TIMESTAMP:
        return timestamp_problem(raw)
    if check.reason is Reason.EVENT_TIME_OUT_OF_RANGE and parse_timestamp(raw.get("trans_date_trans_time")) is None:
        return "unix_time", check.message
    return check.field, check.message


# --- a CSV's label column (fraud ingest only) ----------------------------------------------------------------------


def parse_label(text: str) -> int | None:
    value = text.strip().lower()
    return 1 if value in TRUE_LABELS else 0 if value in FALSE_LABELS else None


def invalid_is_fraud(text: str) -> bool:
    """A label that is neither 0 nor 1; an empty one is "not known", not an error."""
    return bool(text.strip()) and parse_label(text) is None


# --- every reason each engine gives, in the order its checks run -----------------------------------------------------

INGEST_REASONS: tuple[Reason, ...] = (
    Reason.MISSING_REQUIRED_COLUMNS,
    Reason.INVALID_UTF8,
    Reason.MALFORMED_CSV,
    Reason.WRONG_FIELD_COUNT,
    *ROW_REASONS,
    Reason.INVALID_IS_FRAUD,
    Reason.CONFLICTING_DUPLICATE_TRANS_NUM,
)
ETL_REASONS: tuple[Reason, ...] = (
    Reason.CORRUPT_OBJECT,
    Reason.MALFORMED_JSON,
    *ROW_REASONS,
    Reason.CONFLICTING_DUPLICATE_TRANS_NUM,
)
ONLINE_REASONS: tuple[Reason, ...] = tuple(dict.fromkeys(check.reason for check in ONLINE_CHECKS))
