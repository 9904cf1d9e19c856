"""The real-time request: one transaction in the raw Sparkov schema, as the batch path receives it. One schema for
both doors of the real-time path: FastAPI validates `POST /v1/score` bodies with it (and documents it in the
OpenAPI page), the scorer Lambda its real-time events (`validate_request`). What it checks is the shape (types,
lengths, no control characters); the rules on the values (amount, card number, time and birth-date bounds) are
the ETL's, applied after it by fraud/ingest/validation.py with their own reason codes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from fraud.features.online import InvalidTransaction
from fraud.ingest.validation import (
    ABSURD_AMOUNT,
    COORDINATE_LIMITS,
    FIRST_DOB,
    FIRST_EVENT_TIME,
    LAST_EVENT_TIME,
    Reason,
)


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise ValueError("must not contain control characters")
    return value


def _text(max_length: int):
    return Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=max_length), AfterValidator(_no_control_characters)
    ]


Coordinate = Annotated[
    float,
    Field(
        allow_inf_nan=False,
        description=f"degrees; latitudes within ±{COORDINATE_LIMITS['lat']:g}, longitudes within "
        f"±{COORDINATE_LIMITS['long']:g}, else refused ({Reason.INVALID_COORDINATE})",
    ),
]
AMOUNT_RULES = f"refused below 0 ({Reason.NEGATIVE_AMOUNT}) and above {ABSURD_AMOUNT:,.0f} ({Reason.ABSURD_AMOUNT})"
TIME_RULES = (
    f"seconds since 1970-01-01 UTC; the transaction's time must fall in {FIRST_EVENT_TIME} .. {LAST_EVENT_TIME} "
    f"UTC, else refused ({Reason.EVENT_TIME_OUT_OF_RANGE})"
)


class RawTransaction(BaseModel):
    """One transaction in the raw Sparkov schema, as the batch path receives it. Values may be strings, as in
    the CSV files. Required: trans_num, cc_num, merchant, amt, and trans_date_trans_time or unix_time.
    The time must fall in 1970-01-01 00:00:00 .. 2100-12-31 23:59:59 UTC; dob (optional) in 1900-01-01 .. the
    transaction's date. For a known card the holder's fields (dob, city_pop, lat, long) are its stored record's: the
    request's fill in only what the record lacks. Merchant fields left out are taken from the merchant's stored
    record. Unknown fields (is_fraud, an index column) are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "trans_num": "2da90c7d74bd46a0caf3777415b3ebd3",
                    "cc_num": "4613314721966",
                    "merchant": "fraud_Rippin, Kub and Mann",
                    "category": "misc_net",
                    "amt": 4.97,
                    "trans_date_trans_time": "2026-11-10 14:30:00",
                    "lat": 36.0788,
                    "long": -81.1781,
                    "city_pop": 3495,
                    "dob": "1988-03-09",
                    "merch_lat": 36.011293,
                    "merch_long": -82.048315,
                }
            ]
        },
    )

    trans_num: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
        AfterValidator(_no_control_characters),
    ]
    cc_num: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)] | int
    merchant: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(_no_control_characters),
    ]
    amt: Annotated[float, Field(allow_inf_nan=False, description=AMOUNT_RULES)]
    trans_date_trans_time: _text(32) | None = None
    unix_time: Annotated[float, Field(allow_inf_nan=False, description=TIME_RULES)] | None = None
    category: _text(50) | None = None
    lat: Coordinate | None = None
    long: Coordinate | None = None
    merch_lat: Coordinate | None = None
    merch_long: Coordinate | None = None
    city_pop: Annotated[int, Field(ge=0)] | None = None
    dob: Annotated[
        _text(32) | None,
        Field(
            description=f"on or after {FIRST_DOB} and not after the transaction's date, "
            f"else refused ({Reason.INVALID_DOB})"
        ),
    ] = None
    first: _text(200) | None = None
    last: _text(200) | None = None
    gender: _text(16) | None = None
    street: _text(200) | None = None
    city: _text(200) | None = None
    state: _text(32) | None = None
    zip: _text(16) | int | None = None
    job: _text(200) | None = None

    @model_validator(mode="after")
    def _has_a_time(self) -> RawTransaction:
        if not self.trans_date_trans_time and self.unix_time is None:
            raise ValueError("trans_date_trans_time or unix_time is required")
        return self


def validate_request(raw: object) -> dict:
    """The transaction's fields as `RawTransaction` reads them (None left out); InvalidTransaction naming the
    first field that breaks the schema, with pydantic's error type as the code (never the submitted value)."""
    if not isinstance(raw, dict):
        raise InvalidTransaction("malformed_request", "transaction", "transaction must be a JSON object")
    try:
        return RawTransaction.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as error:
        first = error.errors(include_input=False)[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "transaction"
        raise InvalidTransaction(first.get("type", "invalid"), field, first.get("msg", "invalid")) from None
