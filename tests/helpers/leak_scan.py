"""One leak scan for every place a card number must not reach past the raw zone: every file under FRAUD_HOME but
the raw bucket (curated Parquet, reports, model binaries, the outbox, the embedded PostgreSQL's files and server
log, the Dagster home), every table of every database on the platform's server (the Dagster instance's included),
and whatever other logs or folders a test names (a temporary Dagster home, Spark's local directories).

A card number is found however it is written: contiguous, grouped with spaces, dashes or dots (the forms
`fraud.core.privacy.normalize_card_number` accepts, and dots), in float notation (4.111111111111111e+15,
4111111111111111.0), in UTF-8 or UTF-16, inside gzip, zip (a .keras model), zlib (Dagster's snapshots) and
Parquet (every value), and in mail as the customer reads it (every header, every body part decoded). It counts
when it passes the Luhn check (`fraud.core.privacy.luhn_valid`) or is one of the `known` numbers a test planted
or seeded (the seed's numbers lost digits and many fail Luhn)."""

from __future__ import annotations

import email
import email.policy
import gzip
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from assets.instance import DAGSTER_DATABASE
from fraud.core.privacy import luhn_valid, normalize_card_number
from fraud.core.settings import Settings

Found = dict[str, list[str]]  # place -> the card numbers (digits) found there

# Digit groups joined by one separator each (a space, a no-break space, a dash or a dot), 12 characters or more
# (the lookahead spares Python the many short runs of a binary file).
_RUN = re.compile(r"\d(?=[\d \u00a0.-]{11})\d*(?:[ \u00a0.-]\d+)*")
# A float of 13-19 digits before its point (e+12 to e+18); the character before it is checked in Python, a
# lookbehind at every position took five times as long.
_FLOAT = re.compile(r"\d\.\d+[eE]\+?1[2-8](?![\w.])")
# How cards are printed: fours with a shorter last group (13-19 digits), and Amex/Diners' 4-6-5 and 4-6-4.
_CARD_GROUPINGS = {(4,) * n + (last,) for n in (3, 4) for last in (1, 2, 3, 4) if 4 * n + last <= 19} | {
    (4, 6, 5),
    (4, 6, 4),
    (4, 4, 5),
}
# Logs and Dagster's storage print process memory addresses in decimal (TensorFlow's "Captures:
# 140267114062736: TensorSpec"), and one in ten passes Luhn: there only numbers that start like a card
# network's (2-6) count.
_NETWORK_DIGITS = "23456"
_UTF16_DIGITS = re.compile(rb"[0-9]\x00[0-9]\x00[0-9]\x00[0-9]\x00")  # (?:[0-9]\x00){4} took five times as long


def _runs(text: str) -> Iterable[tuple[list[str], list[str]]]:
    """Each run of digit groups as (groups, separators), without a group glued to a letter (digits inside a hex
    token are not a number; after an underscore, as in `card_4111...`, they are)."""
    for match in _RUN.finditer(text):
        parts = re.split(r"([ \u00a0.-])", match.group())
        groups, separators = parts[0::2], parts[1::2]
        start, end = match.start(), match.end()
        if start and text[start - 1].isalnum():
            groups, separators = groups[1:], separators[1:]
        if end < len(text) and text[end].isalnum() and groups:
            groups, separators = groups[:-1], separators[:-1]
        if groups:
            yield groups, separators


def _candidates(text: str) -> Iterable[str]:
    """Digit strings written like a card number: a contiguous 12-19-digit number (not a float's fraction), a
    card-like grouping of 13-19 digits (any mix of spaces and dashes, or dots alone: `1234.5678 9012.3456` is two
    amounts), a whole run of 13-19 digits in groups of up to 6 with one separator throughout (`4 111 111 111 111
    111`), or a float whose value is such a whole number."""
    for groups, separators in _runs(text):
        for i, group in enumerate(groups):
            if 12 <= len(group) <= 19 and (i == 0 or separators[i - 1] != "."):
                yield group
            for grouping in _CARD_GROUPINGS:
                window = groups[i : i + len(grouping)]
                used = set(separators[i : i + len(grouping) - 1])
                if tuple(map(len, window)) == grouping and (used <= {" ", "\u00a0", "-"} or used == {"."}):
                    yield "".join(window)
        digits = "".join(groups)
        if (
            len(groups) >= 3
            and len(set(separators)) == 1
            and 13 <= len(digits) <= 19
            and all(len(g) <= 6 for g in groups)
            and all(len(g) >= 3 for g in groups[1:-1])
        ):
            yield digits
    for match in _FLOAT.finditer(text):
        glued = match.start() and (text[match.start() - 1].isalnum() or text[match.start() - 1] == ".")
        if not glued and (digits := normalize_card_number(match.group())) and 13 <= len(digits) <= 19:
            yield digits


def cards_in(text: str, known: Iterable[str] = (), networks_only: bool = False) -> list[str]:
    """The card numbers written in the text (digits, sorted, each once): Luhn-valid 13-19-digit ones, and any of
    `known`."""
    known = set(known)
    found = set()
    for digits in _candidates(text):
        if digits in known:
            found.add(digits)
        elif 13 <= len(digits) <= 19 and luhn_valid(digits) and (not networks_only or digits[0] in _NETWORK_DIGITS):
            found.add(digits)
    return sorted(found)


def _texts(data: bytes) -> Iterable[str]:
    """Bytes as text: UTF-8 (an undecodable byte becomes U+FFFD, a boundary, rather than gluing digits around
    it), and UTF-16 in both alignments when digits alternate with NUL bytes."""
    yield data.decode("utf-8", errors="replace")
    if _UTF16_DIGITS.search(data):
        yield data.decode("utf-16-le", errors="replace")
        yield (data[1:] + b"\x00").decode("utf-16-le", errors="replace")


def _without_object_ids(value):
    """A saved Keras model's config.json names each object shared between layers by its process memory address
    (`"shared_object_id": 140704561367184`, a Python `id()`), and one in ten of those passes Luhn: dropped."""
    if isinstance(value, dict):
        return {key: _without_object_ids(item) for key, item in value.items() if key != "shared_object_id"}
    return [_without_object_ids(item) for item in value] if isinstance(value, list) else value


def _parquet_texts(data: bytes) -> Iterable[str]:
    """A Parquet file as its values and metadata. Its compressed pages are not text: a Snappy page splits a hex
    trans_num such as 44dd5367796...d62495017740374312f at a back-reference and leaves a lone, Luhn-valid run."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    yield "\n".join(f"{key!r} {value!r}" for key, value in (table.schema.metadata or {}).items())
    for column in table.columns:
        yield "\n".join(map(str, column.to_pylist()))


def _mail(data: bytes, place: str, known, networks_only) -> Found:
    """Every header (decoded) and every part (base64 and quoted-printable decoded) of a message. The MIME
    boundary is random digits, so it is left out of Content-Type."""
    found: Found = {}
    message = email.message_from_bytes(data, policy=email.policy.default)
    for number, part in enumerate(message.walk()):
        for name, value in part.items():
            value = str(value)
            if name.lower() == "content-type":
                value = re.sub(r'boundary="?[^";]*"?', "", value)
            if cards := cards_in(value, known, networks_only):
                found[f"{place} header {name}"] = cards
        if not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            where = f"{place} part {number} {part.get_content_type()}"
            found.update(cards_in_data(payload, where, known, networks_only))
    return found


def _zip(data: bytes, place: str, known, networks_only) -> Found:
    found: Found = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            member = archive.read(name)
            if name.endswith(".json"):
                try:
                    member = json.dumps(_without_object_ids(json.loads(member))).encode()
                except ValueError:
                    pass  # scanned as it is
            found.update(cards_in_data(member, f"{place}!{name}", known, networks_only))
    return found


def cards_in_data(data: bytes, place: str, known: Iterable[str] = (), networks_only: bool = False) -> Found:
    """The card numbers in one stored object, by place (`file!member` inside an archive)."""
    known = set(known)
    if place.endswith(".eml"):
        return _mail(data, place, known, networks_only)
    if data[:2] == b"\x1f\x8b":
        try:
            return cards_in_data(gzip.decompress(data), place + "!gunzip", known, networks_only)
        except (OSError, EOFError, zlib.error):
            pass  # not gzip after all: read as it is
    if data[:2] in (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"):
        try:
            return cards_in_data(zlib.decompress(data), place + "!inflate", known, networks_only)
        except zlib.error:
            pass
    if data[:4] == b"PK\x03\x04":
        try:
            return _zip(data, place, known, networks_only)
        except (zipfile.BadZipFile, zlib.error, EOFError):
            pass
    texts = _texts(data)
    if data[:4] == b"PAR1" and data[-4:] == b"PAR1":
        import pyarrow

        try:
            texts = list(_parquet_texts(data))
        except pyarrow.ArrowException:
            pass
    cards = sorted({card for part in texts for card in cards_in(part, known, networks_only)})
    return {place: cards} if cards else {}


def cards_in_files(paths: Iterable[Path], known: Iterable[str] = (), networks_only: bool = False) -> Found:
    """Every file among the paths, and every file under those that are folders."""
    found: Found = {}
    for path in paths:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            try:
                data = file.read_bytes()
            except (FileNotFoundError, PermissionError):  # removed since the walk; a socket or lock file
                continue
            found.update(cards_in_data(data, str(file), known, networks_only))
    return found


def cards_in_databases(
    engine: Engine, known: Iterable[str] = (), networks_only: bool = False, log_databases: Iterable[str] = ()
) -> Found:
    """Every table of every database on the engine's server, as text (COPY), and its bytea columns decoded (Dagster
    keeps snapshots zlib-compressed there): {"database <db> table <schema>.<table>": numbers}. The
    `log_databases` (the Dagster instance's: run and event logs) are scanned as logs."""
    log_databases = set(log_databases)
    found: Found = {}
    with engine.connect() as connection:
        names = connection.execute(text("SELECT datname FROM pg_database WHERE NOT datistemplate")).scalars().all()
    for database in names:
        other = create_engine(engine.url.set(database=database), poolclass=NullPool)
        try:
            found.update(_database_cards(other, database, known, networks_only or database in log_databases))
        finally:
            other.dispose()
    return found


def _database_cards(engine: Engine, database: str, known, networks_only) -> Found:
    from psycopg import sql

    found: Found = {}
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        # tables with rows of their own: ordinary ones (a partitioned table's partitions among them) and
        # materialized views
        tables = cursor.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
            "ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            with cursor.copy(sql.SQL("COPY (SELECT * FROM ONLY {}) TO STDOUT").format(name)) as copy:
                dump = b"".join(bytes(block) for block in copy)
            place = f"database {database} table {schema}.{table}"
            cards = set(cards_in(dump.decode("utf-8", errors="replace"), known, networks_only))
            binary = cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s AND data_type = 'bytea'",
                (schema, table),
            ).fetchall()
            for (column,) in binary:
                query = sql.SQL("SELECT {} FROM ONLY {} WHERE {} IS NOT NULL").format(
                    sql.Identifier(column), name, sql.Identifier(column)
                )
                for (value,) in cursor.execute(query):
                    for numbers in cards_in_data(bytes(value), place, known, networks_only).values():
                        cards.update(numbers)
            if cards:
                found[place] = sorted(cards)
    return found


def spark_local_dirs(spark) -> list[Path]:
    """Where Spark writes shuffle, spill and disk-cached blocks and its temporary files: the `blockmgr-*` and
    `spark-*` folders under the session's local roots (spark.local.dir: the Glue job's local session uses a private
    folder of its process; else SPARK_LOCAL_DIRS or /tmp, where other sessions' folders are found too). Found by
    name: py4j cannot reach the session's BlockManager (reflecting on SparkEnv needs protobuf classes the wheel
    lacks)."""
    conf = spark.sparkContext._jsc.sc().getConf()
    roots = spark.sparkContext._jvm.org.apache.spark.util.Utils.getConfiguredLocalDirs(conf)
    return sorted(folder for root in roots for name in ("blockmgr-*", "spark-*") for folder in Path(root).glob(name))


def leaks_after_run(
    settings: Settings,
    engine: Engine,
    logs: Iterable[Path] = (),
    known: Iterable[str] = (),
    places: Iterable[Path] = (),
    inputs: Iterable[Path] = (),
) -> Found:
    """Card numbers found after a run, by place ({} when there are none): every file under FRAUD_HOME outside
    the raw bucket (where the raw batches and the quarantined rows, the only ones that keep cc_num, live), every
    table of every database on the platform's server, the given `logs` (files or folders: networks only, see
    `_NETWORK_DIGITS`; a temporary Dagster home), and the given `places` (files or folders: Spark's local dirs).
    `inputs` are the test's own source files that it left in FRAUD_HOME (a CSV handed to `fraud ingest`)."""
    raw_zone = settings.store_root / settings.raw_bucket
    inputs = set(inputs)
    home = [p for p in settings.home.rglob("*") if p.is_file() and not p.is_relative_to(raw_zone) and p not in inputs]
    # logs: FRAUD_HOME/logs, *.log, the server's files (its log; the Dagster database's pages), the Dagster home
    logs_dir = settings.home / "logs"
    log_like = [
        p
        for p in home
        if p.suffix in {".log", ".out", ".err"}
        or any(p.is_relative_to(d) for d in (logs_dir, settings.pg_dir, settings.dagster_home))
    ]
    found = cards_in_files(sorted(set(home) - set(log_like)), known)
    found.update(cards_in_files(log_like, known, networks_only=True))
    found.update(cards_in_databases(engine, known, log_databases={DAGSTER_DATABASE}))
    found.update(cards_in_files(logs, known, networks_only=True))
    found.update(cards_in_files(places, known))
    return found
