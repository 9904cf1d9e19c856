"""Reading ahead: the next item of an iterator is produced in a thread while the caller works on the current one,
so I/O (the next page of feature vectors from the database) overlaps the work done with the item before it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """The items in order, each next one produced while the caller holds the current one: at most two in memory.
    Only the one worker thread advances the iterator (a database cursor is never used from two threads), and
    what producing an item raises, the caller gets where it asks for that item."""
    iterator = iter(items)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as worker:
            pending = worker.submit(next, iterator, _END)
            while (item := pending.result()) is not _END:
                pending = worker.submit(next, iterator, _END)
                yield item
    finally:
        close = getattr(iterator, "close", None)  # a generator's own cleanup (its connection) runs now, not at GC
        if close is not None:
            close()
