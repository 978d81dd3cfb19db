"""A Clever night with more events than one invocation should read is read in full instead.

The plan reads a night's events in one invocation and holds the objects they changed; a night the size of
a re-rostered district's (a new school year: every enrollment changed) would outgrow it. Past
``night_max_events`` the plan gives up on the events and reads the roster in full, in Fetch's slices.
"""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.providers.base import FetchOutcome
from rostersync.providers.clever_events import (
    CleverCursor,
    CleverIncrementalProvider,
    EventPage,
    EventTally,
    MemoryMirror,
    NightTooLargeError,
    read_overlay,
)


def user_updated(n: int) -> dict[str, Any]:
    return {"id": f"ev-{n:04d}", "type": "users.updated", "data": {"object": {"id": f"user-{n:04d}"}}}


class Pages:
    """``CleverEventsClient`` serving fixed pages of events, counting the pages it was asked for."""

    def __init__(self, sizes: list[int]) -> None:
        numbers = iter(range(1, 1 + sum(sizes)))
        self.pages = [[user_updated(next(numbers)) for _ in range(size)] for size in sizes]
        self.asked = 0

    def iter_pages(self, after: str) -> Any:
        for page in self.pages:
            self.asked += 1
            yield EventPage(page, None)

    def latest_event_id(self) -> str:
        return self.pages[-1][-1]["id"]


def test_a_page_past_the_bound_stops_the_read() -> None:
    # Given a night of three pages of two events, and a bound of four events
    events = Pages([2, 2, 2])
    tally = EventTally()

    # When it is read, the third page (past four events read) stops it
    with pytest.raises(NightTooLargeError, match="more than 4 Clever events"):
        read_overlay(events, "ev-0000", FetchOutcome(), tally, max_events=4)  # type: ignore[arg-type]

    # Then nothing of that page was applied
    assert (tally.read, tally.pages, events.asked) == (4, 2, 3)


@pytest.mark.parametrize("bound", [4, 5, None])
def test_a_night_within_the_bound_is_read_whole(bound: int | None) -> None:
    # Given a night of four events on two pages, and an empty page after them
    events = Pages([2, 2, 0])

    # When it is read with a bound of at least four events, or none
    overlay, last = read_overlay(events, "ev-0000", FetchOutcome(), EventTally(), max_events=bound)  # type: ignore[arg-type]

    # Then every event is in the overlay
    assert last == "ev-0004"
    assert sorted(overlay.objects) == [("users", f"user-{n:04d}") for n in range(1, 5)]


def test_the_plan_reads_a_night_past_the_bound_in_full_and_says_why() -> None:
    # Given a district whose last run kept its mirror and a cursor, and a night of 30 events
    mirror = MemoryMirror(run_id="run-1")
    mirror.seal("ev-0000")
    mirror.run_id = "run-2"
    cursor = CleverCursor("ev-0000", "run-1").dumps()
    events = Pages([10, 10, 10])

    def plan(bound: int | None) -> Any:
        provider = CleverIncrementalProvider(
            None,  # type: ignore[arg-type]  (the roster is not read by the plan)
            mirror,
            cursor,
            events_client=events,  # type: ignore[arg-type]
            night_max_events=bound,
        )
        return provider.plan_read()

    # When the plan is made with a bound of 20 events (the third page follows 20 read)
    read = plan(20)

    # Then the run reads the whole roster, the report's reason says why, and the cursor will move to
    # Clever's latest event once the full read is complete
    assert read.night is None
    assert read.reason == ("the night holds more than 20 Clever events; this run read the whole roster instead")
    assert read.latest == "ev-0030" and read.too_large
    # and with a bound of 21 (a page may take the night past it) or none, the same night is read from
    # its events
    assert plan(21).night is not None and plan(None).night is not None
    assert not plan(21).too_large
