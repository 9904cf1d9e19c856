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


def vector_pages(blocks: Iterable[bytes], page_rows: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """Pages of `page_rows` rows (more when a block completes several; the last page may be short): (keys,
    (n, d) float32 vectors), from the blocks of a binary COPY of (vector float8[], key text). Blocks may split
    rows anywhere."""
    data = bytearray()
    position: int | None = None  # of the next row in `data`; None until the header is read
    starts: list[int] = []
    keys: list[str] = []
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
            if fields != 2:
                raise CopyFormatError(f"expected rows of 2 fields (vector, key), got {fields}")
            if size - position < 6:
                break
            (vector_bytes,) = _int(data, position + 2)
            if vector_bytes < 0:
                raise CopyFormatError("a vector is NULL")
            key_at = position + 6 + vector_bytes
            if size - key_at < 4:
                break
            (key_bytes,) = _int(data, key_at)
            if key_bytes < 0:
                raise CopyFormatError("a key is NULL")
            end = key_at + 4 + key_bytes
            if end > size:
                break
            starts.append(position)
            keys.append(data[key_at + 4 : end].decode())
            position = end
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
