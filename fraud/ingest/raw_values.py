"""Raw string values read the way the Glue job reads them: Spark's datetime patterns (no laxer), `try_cast(...
AS double)` for numbers. `fraud ingest` and the real-time path both validate with these, so a row the ETL
would quarantine is refused by either with the same reason. No pandas: the scorer Lambda ships without it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from fraud.core.schema import DATE_FORMATS, PY_TIMESTAMP_FORMATS, TIMESTAMP_FORMATS

ABSURD_AMOUNT = 1_000_000.0  # larger amounts are data errors, not card purchases
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", re.ASCII)  # plain decimals: no NaN, inf, "1_000"
PY_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")


def spark_shape(pattern: str) -> re.Pattern[str]:
    """The strings a Spark datetime pattern accepts: `yyyy` four digits, `MM` two, `M` one or two, ..."""
    widths = {
        "yyyy": r"\d{4}",
        "MM": r"\d{2}",
        "dd": r"\d{2}",
        "HH": r"\d{2}",
        "mm": r"\d{2}",
        "ss": r"\d{2}",
        "M": r"\d{1,2}",
        "d": r"\d{1,2}",
        "H": r"\d{1,2}",
    }
    tokens = re.findall(r"yyyy|MM|dd|HH|mm|ss|M|d|H|[^A-Za-z]", pattern)
    return re.compile("^" + "".join(widths.get(t, re.escape(t)) for t in tokens) + "$", re.ASCII)


assert len(TIMESTAMP_FORMATS) == len(PY_TIMESTAMP_FORMATS) and len(DATE_FORMATS) == len(PY_DATE_FORMATS)
# strptime is laxer than Spark ("%m" also reads "4"): the shape check keeps both readers in agreement
TIMESTAMP_PARSERS = tuple((spark_shape(s), p) for s, p in zip(TIMESTAMP_FORMATS, PY_TIMESTAMP_FORMATS, strict=False))
DATE_PARSERS = tuple((spark_shape(s), p) for s, p in zip(DATE_FORMATS, PY_DATE_FORMATS, strict=False))


def text_of(value: object) -> str:
    return "" if value is None else str(value).strip()


def first_parse(value: str, parsers: tuple[tuple[re.Pattern[str], str], ...]) -> datetime | None:
    """`value` in the first of the formats that reads it (naive), else None."""
    for shape, python_format in parsers:
        if shape.match(value):
            try:
                return datetime.strptime(value, python_format)
            except ValueError:  # the right shape, an impossible date (2026-02-30)
                continue
    return None


def parse_timestamp(value: object) -> datetime | None:
    """A `trans_date_trans_time` in the schema's formats (naive, UTC), else None."""
    return first_parse(text_of(value), TIMESTAMP_PARSERS)


def parse_date(value: object) -> date | None:
    parsed = first_parse(text_of(value), DATE_PARSERS)
    return parsed.date() if parsed else None


def parse_number(value: object) -> float | None:
    """A finite decimal number ("12.5", "-3", "1.2e3", or an int/float), else None (empty, garbage, a bool, NaN,
    inf, overflow)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        raw = text_of(value)
        if not NUMBER.match(raw):
            return None
        number = float(raw)
    return number if math.isfinite(number) else None


def parse_event_time(raw: Mapping[str, object]) -> datetime | None:
    """The transaction's time as the ETL reads it (naive, UTC): `trans_date_trans_time` in the schema's formats,
    else the whole seconds of `unix_time` (`try_cast(... AS bigint)` truncates toward zero)."""
    parsed = parse_timestamp(raw.get("trans_date_trans_time"))
    if parsed is not None:
        return parsed
    seconds = parse_number(raw.get("unix_time"))
    if seconds is None:
        return None
    try:
        return datetime(1970, 1, 1) + timedelta(seconds=int(seconds))
    except OverflowError:
        return None
