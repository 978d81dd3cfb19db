"""Clever's Events API: the client and the incremental provider against the simulator's ``/v3.0/events``.

Given the demo district's nights (samples/clever-demo/snapshot-1, -2, -3) served one after the other,
a full read remembers the latest event and keeps a mirror; the next night is read from its events alone
and gives the very records a full read of that night gives.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from rostersync.domain.records import RecordError, TouchedRecord
from rostersync.errors import ProviderAuthError
from rostersync.providers.base import FetchOutcome, RetryPolicy
from rostersync.providers.clever import CleverClient, CleverProvider
from rostersync.providers.clever_events import CleverCursor, CleverIncrementalProvider, MemoryMirror
from rostersync_tools.local.simulator import ProviderSimulator

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "clever-demo"
NIGHTS = [SAMPLE / f"snapshot-{n}" for n in (1, 2, 3)]
TOKEN = "demo-district-token"


@pytest.fixture
def simulator():
    with ProviderSimulator(NIGHTS[0], token=TOKEN) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(simulator: ProviderSimulator, sleeps: list[float], page_limit: int = 1_000) -> CleverClient:
    retry = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0, sleep=sleeps.append)
    return CleverClient(simulator.base_url, TOKEN, page_limit=page_limit, retry=retry)


def run(provider, outcome: FetchOutcome | None = None):
    outcome = outcome or FetchOutcome()
    items = list(provider.fetch(outcome))
    records = {
        (type(i).__name__, i.provider_id, i.model_dump_json()) for i in items if not isinstance(i, TouchedRecord)
    }
    touched = {(i.collection, i.provider_id) for i in items if isinstance(i, TouchedRecord)}
    return outcome, records, touched


_FULL_READS: dict[str, set] = {}


def full_read(simulator: ProviderSimulator, sleeps: list[float]) -> set:
    """The records of a full read of what the simulator serves now (the same dataset reads the same)."""
    served = str(simulator._dataset_dir)
    if served not in _FULL_READS:
        _FULL_READS[served] = run(CleverProvider(client(simulator, sleeps)))[1]
    return _FULL_READS[served]


def first_night(simulator, sleeps, mirror: MemoryMirror) -> FetchOutcome:
    outcome, _, _ = run(CleverIncrementalProvider(client(simulator, sleeps), mirror))
    return outcome


_NIGHT_ONE: list[tuple[str | None, MemoryMirror]] = []


def night_one(simulator, sleeps, mirror: MemoryMirror) -> str | None:
    """The cursor of a full run of night 1 on a fresh simulator, with that run's mirror copied into ``mirror``.

    The run is made once per module: a fresh simulator serves the same records and no events yet, so every
    such run writes the same mirror and the same cursor. Each test gets its own copy of the mirror."""
    assert simulator._dataset_dir == NIGHTS[0] and not simulator.events.events, "night_one needs a fresh simulator"
    if not _NIGHT_ONE:
        kept = MemoryMirror(run_id=mirror.run_id)
        _NIGHT_ONE.append((first_night(simulator, sleeps, kept).cursor, kept))
    cursor, kept = _NIGHT_ONE[0]
    assert mirror.run_id == kept.run_id
    mirror.runs = copy.deepcopy(kept.runs)
    mirror.sealed = set(kept.sealed)
    return cursor


def test_a_full_run_remembers_the_latest_event_before_reading_and_keeps_a_mirror(simulator, sleeps) -> None:
    # Given a district with a night of events already (snapshot-1 → 2), a full read
    simulator.set_dataset(NIGHTS[1])
    mirror = MemoryMirror(run_id="run-1")
    before = len(simulator.requests_seen)
    outcome = first_night(simulator, sleeps, mirror)
    # Then it asked for the newest event first, read the whole roster, and sealed its mirror
    paths = [p for p, _ in simulator.requests_seen[before:]]
    assert paths[0] == "/v3.0/events"
    assert "ending_before=last" in simulator.requests_seen[before][1]
    assert outcome.sync_kind == "full" and "no Clever events cursor" in outcome.full_reason
    cursor = CleverCursor.loads(outcome.cursor)
    assert cursor is not None and cursor.mirror_run == "run-1"
    assert cursor.event_id == simulator.events.events[-1]["id"]
    assert mirror.has("run-1") and len(list(mirror.read("run-1", "users"))) > 2000


@pytest.mark.parametrize("night", [1, 2])
def test_an_event_run_gives_what_a_full_read_of_that_night_gives(simulator, sleeps, night) -> None:
    # Given a full run of night 1 (its mirror and cursor)
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    for n in range(1, night + 1):
        simulator.set_dataset(NIGHTS[n])
    # When the next run reads only the events since then (small pages, so it pages)
    mirror.run_id = "run-2"
    before = len(simulator.requests_seen)
    provider = CleverIncrementalProvider(client(simulator, sleeps, page_limit=10), mirror, cursor=cursor)
    outcome, records, touched = run(provider)
    requests = simulator.requests_seen[before:]
    # Then it asked Clever for event pages only, with limit and starting_after
    assert {path for path, _ in requests} == {"/v3.0/events"}
    assert all("limit=10" in query for _, query in requests)
    assert any("starting_after=" in query for _, query in requests)
    assert len(requests) == -(-len(simulator.events.events) // 10)  # one request per page of 10
    # and its records are exactly those of a full read of tonight's Clever
    assert outcome.sync_kind == "events" and outcome.complete and outcome.touched_only
    assert records == full_read(simulator, sleeps)
    # and it names every user and section an event named, nothing else
    named = {
        ("people" if e["type"].startswith("users") else "classrooms", e["data"]["object"]["id"])
        for e in simulator.events.events
        if e["type"].split(".")[0] in ("users", "sections")
    }
    assert touched == named and touched
    assert CleverCursor.loads(outcome.cursor) == CleverCursor(simulator.events.events[-1]["id"], "run-2")


def test_events_are_applied_in_order_and_again_without_harm(simulator, sleeps) -> None:
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    simulator.set_dataset(NIGHTS[1])
    expected = full_read(simulator, sleeps)
    mirror.run_id = "run-2"
    first = run(CleverIncrementalProvider(client(simulator, sleeps), mirror, cursor=cursor))[1]
    # The same events read again (a run whose cursor was not stored) on the same mirror: the same roster
    mirror.run_id = "run-3"
    again = run(CleverIncrementalProvider(client(simulator, sleeps), mirror, cursor=cursor))[1]
    assert first == again == expected


def test_a_rate_limited_events_page_is_waited_for_as_clever_asks(simulator, sleeps) -> None:
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    simulator.set_dataset(NIGHTS[1])
    simulator.inject("/v3.0/events", 429, times=2, headers={"Retry-After": "7"})
    mirror.run_id = "run-2"
    outcome, records, _ = run(CleverIncrementalProvider(client(simulator, sleeps), mirror, cursor=cursor))
    assert sleeps[-2:] == [7.0, 7.0]  # waited as asked, through the injected sleep
    assert outcome.sync_kind == "events" and outcome.complete
    assert records == full_read(simulator, sleeps)


def test_a_cursor_too_old_to_be_served_falls_back_to_a_full_read(simulator, sleeps) -> None:
    simulator.set_dataset(NIGHTS[2])
    simulator.set_dataset(NIGHTS[0])  # the district has events before its first sync
    mirror = MemoryMirror(run_id="run-1")
    cursor = first_night(simulator, sleeps, mirror).cursor
    simulator.set_dataset(NIGHTS[1])
    simulator.set_dataset(NIGHTS[2])
    simulator.events.keep_only_last(3)  # Clever no longer keeps the events after the cursor
    mirror.run_id = "run-2"
    outcome, records, touched = run(CleverIncrementalProvider(client(simulator, sleeps), mirror, cursor=cursor))
    assert outcome.sync_kind == "full" and "no longer serves the events" in outcome.full_reason
    assert not outcome.touched_only and not touched
    assert records == full_read(simulator, sleeps)
    # and the next run starts from the newest event, on this run's mirror
    assert CleverCursor.loads(outcome.cursor) == CleverCursor(simulator.events.events[-1]["id"], "run-2")


def test_events_not_available_to_the_app_fall_back_to_full_and_leave_no_cursor(simulator, sleeps) -> None:
    simulator.inject("/v3.0/events", 404, times=5)
    outcome = first_night(simulator, sleeps, MemoryMirror())
    assert outcome.sync_kind == "full" and outcome.complete
    assert "not available to this app" in outcome.full_reason
    assert outcome.cursor is None  # the next run reads the whole roster too


def test_a_mirror_that_is_gone_falls_back_to_full(simulator, sleeps) -> None:
    cursor = CleverCursor("", "run-that-expired").dumps()
    outcome, _, _ = run(CleverIncrementalProvider(client(simulator, sleeps), MemoryMirror(run_id="r"), cursor=cursor))
    assert outcome.sync_kind == "full" and "is gone" in outcome.full_reason


def test_an_unreadable_events_page_is_an_incomplete_fetch_that_keeps_the_cursor(simulator, sleeps) -> None:
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    simulator.set_dataset(NIGHTS[1])
    simulator.inject_malformed("/v3.0/events", page=1)
    mirror.run_id = "run-2"
    outcome, _, _ = run(CleverIncrementalProvider(client(simulator, sleeps, page_limit=10), mirror, cursor=cursor))
    assert not outcome.complete and outcome.cursor is None  # nothing archived; the same events next run
    assert not mirror.has("run-2")


def test_an_event_without_an_object_is_an_incomplete_fetch(simulator, sleeps) -> None:
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    simulator.set_dataset(NIGHTS[1])
    simulator.events.events[0]["data"] = {}
    mirror.run_id = "run-2"
    outcome, records, _ = run(CleverIncrementalProvider(client(simulator, sleeps), mirror, cursor=cursor))
    assert not outcome.complete and "could not be applied" in outcome.problems[0]
    assert outcome.cursor is None
    assert any(r[0] == RecordError.__name__ for r in records)  # the report line


def test_a_refused_token_fails_the_run(simulator, sleeps) -> None:
    mirror = MemoryMirror(run_id="run-1")
    cursor = night_one(simulator, sleeps, mirror)
    bad = CleverClient(simulator.base_url, "wrong", retry=RetryPolicy(sleep=sleeps.append))
    with pytest.raises(ProviderAuthError):
        list(CleverIncrementalProvider(bad, mirror, cursor=cursor).fetch(FetchOutcome()))


def test_the_simulator_drops_and_reorders_events(simulator) -> None:
    simulator.set_dataset(NIGHTS[1])
    events = simulator.events.events
    ids = [e["id"] for e in events]
    types = sorted(e["type"] for e in events)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {"users.created", "users.updated", "users.deleted"} <= set(types)
    assert all(e["created"].endswith("Z") for e in events)
    assert all("previous_attributes" in e for e in events if e["type"].endswith(".updated"))
    simulator.events.reorder(seed=3)
    assert [e["id"] for e in simulator.events.events] == ids  # ids still grow
    assert sorted(e["type"] for e in simulator.events.events) == types
    dropped = simulator.events.drop(2, seed=1)
    assert len(simulator.events.events) == len(ids) - 2 and len(dropped) == 2
