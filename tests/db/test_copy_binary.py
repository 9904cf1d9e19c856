"""fraud.db.copy_binary against binary COPY data written by the real (embedded) PostgreSQL."""

import numpy as np
import pytest

from fraud.db.copy_binary import CopyFormatError, vector_pages

ROWS = """SELECT v::float8[], k FROM (VALUES
    (ARRAY[1.5, -2, 0.1], 'a'), (ARRAY[0, 1e-8, 3.25], 'bé-2'), (ARRAY[-0.5, 7, 8], ''),
    (ARRAY[9, 10, 11], 'd')) AS t(v, k)"""


def copied(engine, query: str) -> list[bytes]:
    with engine.connect() as connection:
        with connection.connection.driver_connection.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            return [bytes(block) for block in copy]


def rechunked(blocks: list[bytes], size: int) -> list[bytes]:
    data = b"".join(blocks)
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [None, 1, 7, 100_000])
def test_pages_hold_every_row_whatever_the_block_boundaries(engine, chunk):
    blocks = copied(engine, ROWS)
    pages = list(vector_pages(blocks if chunk is None else rechunked(blocks, chunk), page_rows=2))
    keys = [key for page_keys, _ in pages for key in page_keys]
    vectors = np.concatenate([vectors for _, vectors in pages])
    assert keys == ["a", "bé-2", "", "d"]
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(
        vectors, np.array([[1.5, -2, 0.1], [0, 1e-8, 3.25], [-0.5, 7, 8], [9, 10, 11]], dtype=np.float32)
    )
    if chunk in (None, 1, 7):  # a page closes as soon as a block completes its rows
        assert [len(page_keys) for page_keys, _ in pages] == [2, 2]


def test_no_rows_no_pages(engine):
    assert list(vector_pages(copied(engine, ROWS + " WHERE false"), page_rows=10)) == []


@pytest.mark.parametrize(
    "query, message",
    [
        ("SELECT ARRAY[1, NULL]::float8[], 'k'", "without NULLs"),
        (
            "SELECT v::float8[], k FROM (VALUES (ARRAY[1, 2], 'a'), (ARRAY[1, 2, 3], 'b')) AS t(v, k)",
            "differ in length",
        ),
        ("SELECT ARRAY[[1, 2], [3, 4]]::float8[], 'k'", "one-dimensional"),
        ("SELECT ARRAY[1, 2]::float4[], 'k'", "element type 700"),
        ("SELECT NULL::float8[], 'k'", "a vector is NULL"),
        ("SELECT ARRAY[1.0]::float8[], NULL::text", "a key is NULL"),
        ("SELECT ARRAY[1.0]::float8[], 'k', 1", "2 fields"),
    ],
)
def test_what_is_not_a_vector_page_is_refused_with_the_reason(engine, query, message):
    with pytest.raises(CopyFormatError, match=message):
        list(vector_pages(copied(engine, query), page_rows=10))


def test_cut_off_or_foreign_data_is_refused(engine):
    data = b"".join(copied(engine, ROWS))
    with pytest.raises(CopyFormatError, match="without its end-of-data marker"):
        list(vector_pages([data[:-2]], page_rows=10))
    with pytest.raises(CopyFormatError, match="without its end-of-data marker"):
        list(vector_pages([data[: len(data) // 2]], page_rows=10))
    with pytest.raises(CopyFormatError, match="no PGCOPY signature"):
        list(vector_pages([b"a\t{1,2}\n" * 10], page_rows=10))
    with pytest.raises(CopyFormatError, match="after the end-of-data marker"):
        list(vector_pages([data, b"\x00\x02"], page_rows=10))
