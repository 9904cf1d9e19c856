"""Reading `COPY (SELECT vector, key …) TO STDOUT (FORMAT binary)` straight into NumPy: feature vectors
(`float8[]`) and their keys (`text`), a page at a time.

Why not a cursor: psycopg turns each array into a Python list of floats, and NumPy then copies them again; for
100,000 vectors of 37 values that was 0.7 s of the scorer's GIL-holding time. Here the only Python work per
row is finding where it ends (the key's length varies); the floats are gathered by one NumPy fancy index and
byte-swapped in bulk. Layout (PostgreSQL's documented binary COPY format): an 11-byte signature, 32-bit flags and
header-extension length, then per row a 16-bit field count and each field as a 32-bit length and its bytes; a
field count of -1 ends the data. A one-dimensional array is 5 32-bit words (dimensions, has-NULLs flag, element
type, length, lower bound), then each element as a 32-bit length and its value."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_FLOAT8_OID = 701
_ARRAY_HEADER = 20
_ELEMENT = 12  # 32-bit length + 8-byte double
_short = struct.Struct(">h").unpack_from
_int = struct.Struct(">i").unpack_from


class CopyFormatError(ValueError):
    """The COPY data is not binary rows of (float8[] without NULLs, all of one length; text)."""


def vector_pages(blocks: Iterable[bytes], page_rows: int, texts: int = 0) -> Iterator[tuple[list, np.ndarray]]:
    """Pages of `page_rows` rows (more when a block completes several; the last page may be short): (keys,
    (n, d) float32 vectors), from the blocks of a binary COPY of (vector float8[], key text[, text ...]). Blocks may
    split rows anywhere. With `texts` more text columns after the key (NULL allowed there, as None), each key is the
    tuple (key, text, ...)."""
    fields_per_row = 2 + texts
    data = bytearray()
    position: int | None = None  # of the next row in `data`; None until the header is read
    starts: list[int] = []
    keys: list = []
    ended = False
    for block in blocks:
        if ended:
            raise CopyFormatError("data after the end-of-data marker")
        data += block
        if position is None:
            if len(data) < 19:
                continue
            if bytes(data[:11]) != SIGNATURE:
                raise CopyFormatError("not binary COPY data (no PGCOPY signature)")
            position = 19 + _int(data, 15)[0]
        size = len(data)
        while size - position >= 2:
            (fields,) = _short(data, position)
            if fields == -1:
                ended = True
                break
            if fields != fields_per_row:
                raise CopyFormatError(f"expected rows of {fields_per_row} fields (vector, key, ...), got {fields}")
            if size - position < 6:
                break
            (vector_bytes,) = _int(data, position + 2)
            if vector_bytes < 0:
                raise CopyFormatError("a vector is NULL")
            at = position + 6 + vector_bytes
            values: list[str | None] = []
            for n in range(1 + texts):
                if size - at < 4:
                    break
                (length,) = _int(data, at)
                if length < 0:
                    if n == 0:
                        raise CopyFormatError("a key is NULL")
                    values.append(None)
                    at += 4
                    continue
                if at + 4 + length > size:
                    break
                values.append(data[at + 4 : at + 4 + length].decode())
                at += 4 + length
            if len(values) < 1 + texts:  # the row is not all here yet
                break
            starts.append(position)
            keys.append(values[0] if not texts else tuple(values))
            position = at
        if len(starts) >= page_rows or (ended and starts):
            yield keys, _vectors(data, starts)
            del data[:position]
            position, starts, keys = 0, [], []
    if not ended:
        raise CopyFormatError("the COPY data ended without its end-of-data marker")


def _vectors(data: bytearray, starts: list[int]) -> np.ndarray:
    """The float8[] first field of each row starting at `starts`, as (n, d) float32; every array must be
    one-dimensional, of the same length, without NULLs."""
    raw = np.frombuffer(data, dtype=np.uint8)
    at = np.asarray(starts, dtype=np.int64) + 6  # past the field count and the array's byte length
    (dims, has_nulls, element_type, length, _) = struct.unpack_from(">5i", data, starts[0] + 6)
    expected = struct.pack(">5i", 1, 0, _FLOAT8_OID, length, 1)
    if (dims, has_nulls, element_type) != (1, 0, _FLOAT8_OID) or length < 1:
        raise CopyFormatError(
            f"vectors must be one-dimensional float8 arrays without NULLs, got {dims} dimensions, "
            f"NULLs {bool(has_nulls)}, element type {element_type}"
        )
    sizes = np.frombuffer(raw[(at - 4)[:, None] + np.arange(4)].tobytes(), dtype=">i4")
    headers = raw[at[:, None] + np.arange(_ARRAY_HEADER)]
    if (sizes != _ARRAY_HEADER + _ELEMENT * length).any() or (headers != np.frombuffer(expected, dtype=np.uint8)).any():
        raise CopyFormatError(f"vectors differ in length or type (the first has {length} values)")
    values = at[:, None, None] + _ARRAY_HEADER + 4 + (np.arange(length) * _ELEMENT)[None, :, None] + np.arange(8)
    return raw[values].view(">f8").reshape(len(starts), length).astype(np.float32)
