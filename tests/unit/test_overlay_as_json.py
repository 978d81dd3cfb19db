"""A night's changed objects are held as their JSON, parsed where they are applied: the plan folding the
events and each slice of a list hold a fraction of what the objects parsed took (``object_text``), and
the lines Fetch keeps them in are read back as written, by this code's lines and by older ones."""

from __future__ import annotations

import json
import random
import tracemalloc
from typing import Any

from rostersync.providers.base import FetchOutcome
from rostersync.providers.clever_events import EventPage, EventTally, OverlayApplier, object_text, read_overlay
from rostersync.steps.fetch import _night_entry


def user(n: int, rng: random.Random) -> dict[str, Any]:
    """A Clever student as an event carries it (the synthetic district's shape: ≈ 650 bytes of JSON)."""
    return {
        "id": f"{rng.getrandbits(96):024x}",
        "district": "5a0c91b95c7cc000010d417c",
        "email": f"student{n}@example.org",
        "name": {"first": f"First{n % 997}", "last": f"Lást{n % 991}", "middle": "Q"},
        "created": "2021-03-02T22:24:57.491Z",
        "last_modified": "2026-11-30T22:24:57.491Z",
        "roles": {
            "student": {
                "school": f"{rng.getrandbits(96):024x}",
                "schools": [f"{rng.getrandbits(96):024x}"],
                "grade": str(n % 12 + 1),
                "sis_id": str(100000 + n),
                "student_number": str(200000 + n),
                "state_id": f"NY{300000 + n}",
                "dob": "1/2/2012",
                "gender": "X",
                "location": {"address": f"{n} Main St", "city": "New York", "state": "NY", "zip": "10001"},
            }
        },
    }


class _EventPages:
    """``CleverEventsClient`` whose pages arrive as JSON and are parsed as they are read, as Clever's are."""

    def __init__(self, users: list[dict[str, Any]], per_page: int) -> None:
        self.pages = [
            json.dumps(
                [
                    {"data": {"id": f"ev-{n}", "type": "users.updated", "data": {"object": u}}}
                    for n, u in enumerate(users[start : start + per_page], start)
                ]
            )
            for start in range(0, len(users), per_page)
        ]

    def iter_pages(self, after: str) -> Any:
        for page in self.pages:
            yield EventPage(json.loads(page), None)


def test_the_plan_holds_a_nights_objects_as_their_json() -> None:
    # Given a night of 5,000 users updated, read in pages of 1,000
    rng = random.Random(11)
    users = [user(n, rng) for n in range(5_000)]
    events = _EventPages(users, 1_000)
    tracemalloc.start()
    try:
        overlay, last = read_overlay(events, "ev-0", FetchOutcome(), EventTally())  # type: ignore[arg-type]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then every object is there, as its JSON ...
    assert last == "ev-4999" and len(overlay.objects) == 5_000
    assert [json.loads(text) for _, text in overlay.entries("users")] == users  # type: ignore[arg-type]
    # ... and the overlay holds under 1,300 bytes a user (parsed, the same objects held ≈ 3,700-4,200)
    assert held / len(users) < 1_300, held / len(users)


def test_an_applier_parses_the_objects_it_applies() -> None:
    rng = random.Random(5)
    changed, created = user(1, rng), user(2, rng)
    entries = [(changed["id"], object_text(changed)), (created["id"], object_text(created)), ("gone", None)]
    mirror = [{"data": {"id": changed["id"], "name": "before"}}, {"data": {"id": "gone"}}, {"data": {"id": "kept"}}]
    applied = list(OverlayApplier(entries).apply(mirror, last=True))
    assert applied == [{"data": changed}, {"data": {"id": "kept"}}, {"data": created}]


def test_a_kept_line_reads_back_as_written_by_this_code_and_by_older_code() -> None:
    rng = random.Random(3)
    obj = user(7, rng)
    odd_id = 'a "quoted" id\\with a backslash'
    this_code = f'{{"id":{json.dumps(odd_id)},"object":{object_text(obj)}}}'
    # older code wrote the line with json.dumps of a dict, its text unescaped (ensure_ascii=False)
    older = json.dumps({"id": "5e01", "object": obj}, separators=(",", ":"), ensure_ascii=False)
    deleted = json.dumps({"id": "5e02", "object": None}, separators=(",", ":"))
    reordered = json.dumps({"object": obj, "id": "5e03"})  # any other shape is parsed whole
    entries = [_night_entry(line) for line in (this_code, older, deleted, reordered)]
    assert [oid for oid, _ in entries] == [odd_id, "5e01", "5e02", "5e03"]
    assert [None if text is None else json.loads(text) for _, text in entries] == [obj, obj, None, obj]
    assert entries[0][1] == object_text(obj)  # cut from the line, not parsed and written again
