"""Raw values read once for every engine: text stripped of whitespace, numbers as finite plain decimals, times in
the schema's Spark datetime patterns (no laxer) or as whole unix seconds within years 1 to 9999.

`fraud ingest` and the online path read rows with these functions; the ETL reads them with Spark expressions of
the same definitions (fraud/features/spark.py: `text`, `number`, `event_time`, `date_of`), built from the
constants below, so the validation rules (fraud/ingest/validation.py) see the same values in all three
(tests/ingest/test_validation.py). No pandas: the scorer Lambda ships without it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from fraud.core.schema import DATE_FORMATS, PY_TIMESTAMP_FORMATS, TIMESTAMP_FORMATS

# plain decimals: no NaN, inf, "1_000", and none of Java's extras that Spark's cast takes ("1d", "0x1p3")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", re.ASCII)
PY_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")
# what str.strip() strips (str.isspace()), spelt out so that Spark can trim the same characters (its trim() takes
# only spaces); tests/ingest/test_validation.py checks it against str.isspace
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
INT32_MAX = 2**31 - 1
# the times Python's datetime can hold, years 1 to 9999: Spark holds more (year 0, year 33658) and overflows
# beyond that, so both readers stop here
EPOCH = datetime(1970, 1, 1)
FIRST_UNIX_SECOND = int((datetime.min - EPOCH).total_seconds())
LAST_UNIX_SECOND = int((datetime.max.replace(microsecond=0) - EPOCH).total_seconds())


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
    return "" if value is None else str(value).strip(WHITESPACE)


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


def parse_int32(value: object) -> int | None:
    """A number truncated toward zero when it fits a 32-bit column (city_pop), else None."""
    number = parse_number(value)
    return int(number) if number is not None and abs(number) <= INT32_MAX else None


def parse_event_time(raw: Mapping[str, object]) -> datetime | None:
    """The transaction's time as the ETL reads it (naive, UTC): `trans_date_trans_time` in the schema's formats,
    else the whole seconds of `unix_time` (`try_cast(... AS bigint)` truncates toward zero)."""
    parsed = parse_timestamp(raw.get("trans_date_trans_time"))
    if parsed is not None:
        return parsed
    seconds = parse_number(raw.get("unix_time"))
    if seconds is None or not FIRST_UNIX_SECOND <= int(seconds) <= LAST_UNIX_SECOND:
        return None
    return EPOCH + timedelta(seconds=int(seconds))
