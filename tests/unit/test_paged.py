"""A provider's list read ahead: the next page's answer is asked for while this page is handled, and read
into a page only when the caller asks for it (``providers.http.paged``)."""

from __future__ import annotations

import threading
import weakref
from contextvars import ContextVar
from typing import Any

import pytest

from rostersync.errors import ProviderUnavailableError
from rostersync.providers.base import ListPage
from rostersync.providers.http import paged

WAIT = 30  # seconds: only reached when the behaviour is broken
invocation: ContextVar[str] = ContextVar("invocation", default="")


class _Item:
    """A record of a page (weakly referenceable: the test sees when the caller has let go of it)."""

    def __init__(self, n: int) -> None:
        self.n = n


class _Provider:
    """A list of ``count`` pages, page n answered as ``b"n"``; notes each request (an event per page), the
    context it ran in, and what was alive when each answer was read into a page."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.asked = {n: threading.Event() for n in range(1, count + 2)}
        self.contexts: list[str] = []
        self.read: list[int] = []  # the pages read into a page, in order
        self.items: dict[int, weakref.ref[_Item]] = {}
        self.alive_when_read: dict[int, list[int]] = {}  # page → the earlier pages' items still alive then

    def answer(self, n: int) -> bytes:
        self.asked[n].set()
        self.contexts.append(invocation.get())
        if n == self.fail_at:
            raise ProviderUnavailableError(f"page {n}: the provider did not answer")
        return str(n).encode()

    def page_of(self, answer: bytes, n: int) -> tuple[ListPage, int | None]:
        assert int(answer) == n
        self.alive_when_read[n] = [m for m, ref in self.items.items() if ref() is not None]
        self.read.append(n)
        item = _Item(n)
        self.items[n] = weakref.ref(item)
        following = n + 1 if n < self.count else None
        return ListPage([item], following), following


def test_the_next_page_is_asked_for_while_this_one_is_handled_and_read_only_when_asked_for() -> None:
    provider = _Provider(3)
    invocation.set("fetch slice 0")
    seen = []
    for page in paged(1, provider.answer, provider.page_of, lambda page: True):
        seen.append(page.items[0].n)
        if page.next is not None:
            # handling this page: the request for the next is already out (without read-ahead, never) ...
            assert provider.asked[len(seen) + 1].wait(WAIT)
            # ... and its answer is not read into a page until the caller asks for it
            assert provider.read == seen
        del page  # the caller lets go of the page it handled
    assert seen == [1, 2, 3]
    # so each page was read when the pages before it were gone: one page in memory, not two
    assert provider.alive_when_read == {1: [], 2: [], 3: []}
    # the requests ran in the reader's context (metering counts them as the invocation's)
    assert provider.contexts == ["fetch slice 0"] * 3


def test_without_ahead_each_page_is_asked_for_when_the_caller_asks() -> None:
    provider = _Provider(3)
    pages = paged(1, provider.answer, provider.page_of)
    assert next(pages).items[0].n == 1
    assert not provider.asked[2].is_set()
    assert [page.items[0].n for page in pages] == [2, 3]
    assert not provider.asked[4].is_set()


def test_a_slice_that_stops_after_a_page_asks_for_nothing_more() -> None:
    provider = _Provider(5)
    pages = list(paged(1, provider.answer, provider.page_of, lambda page: page.next != 3))
    assert [p.items[0].n for p in pages] == [1, 2]
    assert pages[-1].next == 3  # the next slice starts there
    assert not provider.asked[3].is_set()


def test_a_page_that_cannot_be_read_raises_to_the_reader_after_the_pages_before_it() -> None:
    provider = _Provider(4, fail_at=3)
    seen = []
    with pytest.raises(ProviderUnavailableError, match="page 3"):
        for page in paged(1, provider.answer, provider.page_of, lambda page: True):
            seen.append(page.items[0].n)
    assert seen == [1, 2]


def test_a_reader_that_stops_early_waits_for_the_request_in_flight_and_drops_its_answer() -> None:
    provider = _Provider(4)
    release = threading.Event()
    answered: list[int] = []

    def slow_answer(n: int) -> Any:
        if n == 2:
            provider.asked[2].set()
            assert release.wait(WAIT)
            answered.append(n)
        return provider.answer(n)

    reader = paged(1, slow_answer, provider.page_of, lambda page: True)
    assert next(reader).items[0].n == 1
    assert provider.asked[2].wait(WAIT)
    closer = threading.Thread(target=reader.close)  # e.g. the mapping failed
    closer.start()
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert answered == [2]  # the request in flight ended before the reader was closed
    assert provider.read == [1]  # its answer was never read into a page
    assert not provider.asked[3].is_set()
