"""fraud.core.read_ahead: the next item is produced while the caller holds this one, errors arrive in order, and a
caller that stops early closes the source (a cursor's connection goes back at once)."""

import threading

import pytest

from fraud.core.read_ahead import read_ahead


def test_the_next_item_is_produced_while_the_caller_holds_this_one():
    producing_two = threading.Event()
    threads = set()

    def source():
        for item in (1, 2, 3):
            threads.add(threading.current_thread().name)
            if item == 2:
                producing_two.set()
            yield item

    seen = []
    for item in read_ahead(source()):
        if item == 1:
            assert producing_two.wait(timeout=10)
        seen.append(item)
    assert seen == [1, 2, 3] and len(threads) == 1 and threading.current_thread().name not in threads
    assert list(read_ahead([])) == []


def test_an_error_producing_an_item_reaches_the_caller_after_the_items_before_it():
    def source():
        yield 1
        raise ConnectionError("lost")

    got = []
    with pytest.raises(ConnectionError, match="lost"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1]


def test_a_caller_that_stops_early_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    items = read_ahead(source())
    assert next(items) == 0
    items.close()
    assert closed.is_set()
