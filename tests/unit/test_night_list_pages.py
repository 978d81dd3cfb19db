"""An events night's list reads the last run's mirror a chunk a page, read ahead as a provider's list is
(``steps.fetch._NightList.pages`` through ``providers.http.paged``): the next chunk's body is fetched while
the slice handles this page, and read into items only when the slice asks for it; a chunk that cannot be
read is an unreadable page, after the pages before it, and nothing after it is read."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

from botocore.exceptions import ClientError

from rostersync.incremental import RunStoreMirror
from rostersync.steps.fetch import _NightList

WAIT = 30  # seconds: only reached when the behaviour is broken


def _body(ids: list[str]) -> bytes:
    return gzip.compress(b"".join(json.dumps({"data": {"id": i}}).encode() + b"\n" for i in ids))


class _Mirror:
    """The last run's mirror: chunk bodies by key; notes which were fetched and which were read into items."""

    def __init__(self, bodies: dict[str, bytes | Exception]) -> None:
        self.bodies = bodies
        self.fetched: list[str] = []
        self.parsed: list[bytes] = []
        self.fetched_event = {key: threading.Event() for key in bodies}

    def chunk_body(self, run_id: str, key: str) -> bytes:
        body = self.bodies[key]
        self.fetched.append(key)
        self.fetched_event[key].set()
        if isinstance(body, Exception):
            raise body
        return body

    def chunk_items(self, body: bytes) -> list[dict[str, Any]]:
        self.parsed.append(body)
        return RunStoreMirror.chunk_items(body)


def _night(mirror: _Mirror, keys: list[str] | None) -> _NightList:
    night = object.__new__(_NightList)
    night._mirror = mirror  # type: ignore[assignment]
    night._run = "run-1"
    night._keys = keys
    return night


def _ids(page: Any) -> list[str]:
    return [item["data"]["id"] for item in page.items]


def test_the_next_chunk_is_fetched_while_this_page_is_handled_and_read_into_items_only_when_asked_for() -> None:
    # Given a mirror of three chunks
    bodies = {"c0": _body(["a", "b"]), "c1": _body(["c"]), "c2": _body(["d", "e"])}
    mirror = _Mirror(bodies)  # type: ignore[arg-type]
    pages = _night(mirror, list(bodies)).pages(None, lambda page: True)

    # When the slice takes the first page
    first = next(pages)
    # Then the second chunk's body is fetched meanwhile, but not read into items
    assert mirror.fetched_event["c1"].wait(WAIT)
    assert _ids(first) == ["a", "b"] and first.next == "1"
    assert mirror.parsed == [bodies["c0"]]

    # And each page is read into items when the slice asks for it, the last one naming no next page
    second, third = next(pages), next(pages)
    assert (_ids(second), second.next, _ids(third), third.next) == (["c"], "2", ["d", "e"], None)
    assert mirror.parsed == [bodies["c0"], bodies["c1"], bodies["c2"]]
    assert next(pages, None) is None


def test_a_slice_that_stops_after_a_page_fetches_nothing_more_and_one_that_resumes_starts_at_its_cursor() -> None:
    bodies = {"c0": _body(["a"]), "c1": _body(["b"]), "c2": _body(["c"])}
    mirror = _Mirror(bodies)  # type: ignore[arg-type]
    # A slice whose time is up after its first page
    assert [_ids(p) for p in _night(mirror, list(bodies)).pages(None, lambda page: False)] == [["a"]]
    assert mirror.fetched == ["c0"]
    # The next slice starts at the chunk named by its cursor
    mirror.fetched.clear()
    assert [_ids(p) for p in _night(mirror, list(bodies)).pages("1", lambda page: True)] == [["b"], ["c"]]
    assert mirror.fetched == ["c1", "c2"]
    # A cursor past the last chunk reads nothing
    assert list(_night(mirror, list(bodies)).pages("3", lambda page: True)) == []


def test_a_chunk_that_cannot_be_read_is_an_unreadable_page_and_nothing_after_it_is_read() -> None:
    gone = ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
    whole = _body(["b"] * 50)
    for broken, error in (
        (gone, "ClientError"),
        (b"not gzip at all", "BadGzipFile"),
        (whole[: len(whole) // 2], "EOFError"),  # cut short
        (gzip.compress(b'{"data": \n'), "JSONDecodeError"),
    ):
        # Given a mirror whose second chunk is gone, is not gzip, was cut short or is not JSON lines
        bodies: dict[str, bytes | Exception] = {"c0": _body(["a"]), "c1": broken, "c2": _body(["c"])}
        mirror = _Mirror(bodies)

        pages = list(_night(mirror, list(bodies)).pages(None, lambda page: True))

        # Then the first page is read, the second is a page with the problem and no next page, and the third
        # chunk is never fetched
        assert [_ids(p) for p in pages] == [["a"], []]
        assert pages[1].problem == f"chunk 2 of the last run's copy of the roster could not be read ({error})"
        assert pages[1].next is None
        assert "c2" not in mirror.fetched


def test_a_list_the_mirror_does_not_name_is_an_unreadable_page_and_an_empty_one_a_page_of_nothing() -> None:
    mirror = _Mirror({})
    (missing,) = _night(mirror, None).pages(None, lambda page: True)
    assert missing.problem == "the last run's copy of the roster (run-1) has no such list"
    (empty,) = _night(mirror, []).pages(None, lambda page: True)
    assert (empty.items, empty.next, empty.problem) == ([], None, "")
