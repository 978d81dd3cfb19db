"""A OneRoster list whose pages count the collection otherwise than the plan did, or whose page did not start
with the last record read, changed while it was read
(``steps.fetch._changed_while_read``, ``_changed_list``): offset paging may have passed over a record, so the
fetch is made incomplete and nothing is archived."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.errors import ProviderUnavailableError
from rostersync.providers.base import FetchOutcome, ListPage
from rostersync.steps.fetch import _changed_list, _changed_while_read


def pages(spec: dict[str, Any], totals: list[int | None]) -> dict[str, Any]:
    """The checkpoint a list leaves after pages of 20 records counting the collection as ``totals`` say."""
    checkpoint: dict[str, Any] = {}
    for n, total in enumerate(totals, start=1):
        _changed_while_read(
            spec, checkpoint, ListPage([{}] * 20, None, total=total), int(spec.get("offset", 0)) + 20 * n
        )
    return checkpoint


def test_pages_counting_what_the_plan_counted_change_nothing() -> None:
    assert pages({"total": 60}, [60, 60, 60]) == {}


def test_the_first_page_counting_otherwise_than_the_plan_is_noted_with_where() -> None:
    # a part from offset 30: the first of its pages counts one fewer than the plan did
    assert pages({"total": 60, "offset": 30}, [59, 58]) == {"changed": {"read": 50, "counted": 60, "now": 59}}


def test_a_list_the_plan_could_not_count_is_held_to_its_first_page() -> None:
    assert pages({"total": None}, [45, 45]) == {"total": 45}
    assert pages({"total": None}, [45, 45, 46])["changed"] == {"read": 60, "counted": 45, "now": 46}


def test_a_server_that_does_not_count_and_a_deltas_list_are_not_checked() -> None:
    assert pages({"total": 60}, [None, None]) == {} and pages({"total": None}, [None, None]) == {}
    assert pages({}, [60, 59]) == {}  # a delta's list carries no count (``_oneroster_lists(full=False)``)


def test_a_changed_list_makes_the_fetch_incomplete_and_names_the_list() -> None:
    outcome = FetchOutcome()
    _changed_list("OneRoster", "enrollments", {"read": 40, "counted": 446, "now": 445}, outcome)
    assert outcome.complete is False
    assert outcome.problems == [
        "OneRoster's enrollments changed while they were read: the server counted 446 when the run began and 445 "
        "after 40 had been read, so a record may have moved across a page boundary unread; this run will not "
        "archive anything (the next run reads them again)"
    ]
    _changed_list("OneRoster", "enrollments", {"read": 40, "counted": 446, "now": 445}, outcome)
    assert len(outcome.problems) == 1  # the same list served twice: one line
    # without an outcome to record it in, never lost silently
    with pytest.raises(ProviderUnavailableError, match="changed while they were read"):
        _changed_list("OneRoster", "enrollments", {"read": 40, "counted": 446, "now": 445}, None)


def test_a_page_that_did_not_start_with_the_last_record_read_is_noted_where_it_began() -> None:
    # a page of 20 after the first 40 that moved (records before it deleted), its count as the plan's: a count
    # cannot see a change that deleted as many as it added
    checkpoint: dict[str, Any] = {}
    _changed_while_read({"total": 60}, checkpoint, ListPage([{}] * 20, None, total=60, moved=True), 60)
    assert checkpoint == {"changed": {"read": 40, "moved": True}}
    # the count, when it differs on the same page, is what the note says; a delta's list is not checked
    counted: dict[str, Any] = {}
    _changed_while_read({"total": 60}, counted, ListPage([{}] * 20, None, total=59, moved=True), 60)
    assert counted == {"changed": {"read": 60, "counted": 60, "now": 59}}
    delta: dict[str, Any] = {}
    _changed_while_read({}, delta, ListPage([{}] * 20, None, moved=True), 60)
    assert delta == {}


def test_a_moved_page_makes_the_fetch_incomplete_and_says_where() -> None:
    outcome = FetchOutcome()
    _changed_list("OneRoster", "users", {"read": 40, "moved": True}, outcome)
    assert outcome.problems == [
        "OneRoster's users changed while they were read: the page after the first 40 did not start with the last "
        "one read (records before it changed), so a record may have moved across a page boundary unread; "
        "this run will not archive anything (the next run reads them again)"
    ]
