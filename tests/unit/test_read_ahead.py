"""A list's next page is asked for while this one is handled (``providers.http.read_ahead``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextvars import ContextVar

import pytest

from rostersync.errors import ProviderUnavailableError
from rostersync.providers.base import ListPage
from rostersync.providers.http import read_ahead

WAIT = 30  # seconds: only reached when the behaviour is broken
invocation: ContextVar[str] = ContextVar("invocation", default="")


class _Provider:
    """A list of ``count`` pages; notes each request (an event per page), and the context it ran in."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.asked = {n: threading.Event() for n in range(1, count + 2)}
        self.contexts: list[str] = []
        self.closed = False

    def pages(self) -> Iterator[ListPage]:
        try:
            for n in range(1, self.count + 1):
                self.asked[n].set()
                self.contexts.append(invocation.get())
                if n == self.fail_at:
                    raise ProviderUnavailableError(f"page {n}: the provider did not answer")
                yield ListPage([f"item {n}"], f"after {n}" if n < self.count else None)
        finally:
            self.closed = True


def test_the_next_page_is_asked_for_before_this_one_is_handed_on() -> None:
    provider = _Provider(3)
    invocation.set("fetch slice 0")
    seen = []
    for page in read_ahead(provider.pages(), lambda page: True):
        seen.append(page.items[0])
        if page.next is not None:
            # handling this page: the request for the next is already out (without read-ahead, never)
            assert provider.asked[len(seen) + 1].wait(WAIT)
    assert seen == ["item 1", "item 2", "item 3"]
    # the requests ran in the reader's context (metering counts them as the invocation's)
    assert provider.contexts == ["fetch slice 0"] * 3
    assert provider.closed


def test_a_slice_that_stops_after_a_page_asks_for_nothing_more() -> None:
    provider = _Provider(5)
    pages = list(read_ahead(provider.pages(), lambda page: page.next != "after 2"))
    assert [p.items[0] for p in pages] == ["item 1", "item 2"]
    assert pages[-1].next == "after 2"  # the next slice starts there
    assert not provider.asked[3].is_set()
    assert provider.closed


def test_a_page_that_cannot_be_read_raises_to_the_reader_after_the_pages_before_it() -> None:
    provider = _Provider(4, fail_at=3)
    seen = []
    with pytest.raises(ProviderUnavailableError, match="page 3"):
        for page in read_ahead(provider.pages(), lambda page: True):
            seen.append(page.items[0])
    assert seen == ["item 1", "item 2"]
    assert provider.closed


def test_a_reader_that_stops_early_waits_for_the_request_in_flight_and_drops_its_page() -> None:
    provider = _Provider(4)
    reader = read_ahead(provider.pages(), lambda page: True)
    assert next(reader).items == ["item 1"]
    assert provider.asked[2].wait(WAIT)
    reader.close()  # e.g. the mapping failed
    assert provider.closed  # the list's generator was closed once the request had ended
    assert not provider.asked[3].is_set()
