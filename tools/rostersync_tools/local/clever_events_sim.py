"""The simulator's Clever Events API (``GET /v3.0/events``): the changes between successive datasets.

When the simulator switches from one Clever dataset folder to the next (night N−1 → N), ``EventLog.record``
diffs them object by object, as Clever would emit it: ``<type>.created`` for an object the new dataset adds,
``<type>.updated`` (with ``previous_attributes``: the old values of the top-level fields that changed) for one
it changes, ``<type>.deleted`` (with the last object) for one it no longer holds; for schools, terms,
courses, sections and users. Each event gets an id (24 hex digits, increasing, like Clever's ObjectIds) and
a ``created`` time from the simulator's clock.

The list answers like Clever's: ``{"data": [{"data": event, "uri": "/v3.0/events/<id>"}], "links": [...]}``
oldest first, ``limit`` (1-10,000), ``starting_after=<id>`` and ``links rel=next``;
``ending_before=last&limit=1`` is the newest event. Events older than the retention
(``retain_events``) are dropped, and a ``starting_after`` naming one of them is answered 404 ("too old").

Faults for tests: ``drop`` loses some events (a missed delta), ``reorder`` shuffles them.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

EVENT_OBJECTS = ("schools", "terms", "courses", "sections", "users")  # the order a night's events are emitted in
EVENTS_PATH = "/v3.0/events"
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100


def _objects(dataset: Path | None, name: str) -> dict[str, dict[str, Any]]:
    """id → object of one Clever list file (items without an id cannot be told apart: left out)."""
    if dataset is None or not (dataset / f"{name}.json").is_file():
        return {}
    body = json.loads((dataset / f"{name}.json").read_text(encoding="utf-8"))
    found: dict[str, dict[str, Any]] = {}
    for item in body.get("data", []) if isinstance(body, dict) else []:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
            found.setdefault(data["id"], data)
    return found


Objects = dict[str, dict[str, dict[str, Any]]]  # object type → id → object


def load_objects(dataset: Path | None) -> Objects:
    """Every object of a Clever dataset folder, by type and id."""
    return {name: _objects(dataset, name) for name in EVENT_OBJECTS}


def diff_events(previous: Objects, new: Objects) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(type, object, previous_attributes) for everything ``new`` changes from ``previous``, in emit order:
    created and updated objects kind by kind (schools first, users last), then deletions (users first)."""
    changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    deletions: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for name in EVENT_OBJECTS:
        old, now = previous.get(name, {}), new.get(name, {})
        for object_id, obj in now.items():
            before = old.get(object_id)
            if before is None:
                changes.append((f"{name}.created", obj, None))
            elif before != obj:
                keys = sorted(set(before) | set(obj))
                previous_attributes = {k: before.get(k) for k in keys if before.get(k) != obj.get(k)}
                changes.append((f"{name}.updated", obj, previous_attributes))
        for object_id, obj in old.items():
            if object_id not in now:
                deletions.append((f"{name}.deleted", obj, None))
    return changes + list(reversed(deletions))


class EventLog:
    """Every event the simulated district has had, oldest first, and how to page them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.events: list[dict[str, Any]] = []
        self._next = 0x5F0000000000000000000000  # ids grow like ObjectIds (24 hex digits)
        self.oldest_kept = ""  # the id of the oldest event still served ("" = every event since the start)
        self.retain: int | None = None

    def record(self, previous: Path | None, new: Path | None) -> int:
        """Append the events of one dataset switch; returns how many."""
        return self.record_objects(load_objects(previous), load_objects(new))

    def record_objects(self, previous: Objects, new: Objects) -> int:
        """Append the events that turn ``previous`` into ``new``; returns how many."""
        stamp = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        added = 0
        for kind, obj, previous_attributes in diff_events(previous, new):
            self._next += 1
            event: dict[str, Any] = {
                "id": f"{self._next:024x}",
                "type": kind,
                "created": stamp,
                "data": {"object": obj},
            }
            if previous_attributes is not None:
                event["previous_attributes"] = previous_attributes
            self.events.append(event)
            added += 1
        self._apply_retention()
        return added

    def _apply_retention(self) -> None:
        if self.retain is not None and len(self.events) > self.retain:
            dropped = self.events[: len(self.events) - self.retain]
            self.events = self.events[len(self.events) - self.retain :]
            self.oldest_kept = dropped[-1]["id"]

    def keep_only_last(self, count: int) -> None:
        """Retention: serve only the newest ``count`` events from now on (older cursors are too old)."""
        self.retain = count
        self._apply_retention()

    def drop(self, count: int = 1, kind: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Lose ``count`` of the newest night's events (of ``kind`` if given), as a missed delta; returns them."""
        candidates = [e for e in self.events if kind is None or e["type"] == kind]
        chosen = random.Random(seed).sample(candidates, min(count, len(candidates)))  # noqa: S311
        ids = {e["id"] for e in chosen}
        self.events = [e for e in self.events if e["id"] not in ids]
        return chosen

    def reorder(self, seed: int = 0) -> None:
        """Deliver the events in a shuffled order (ids follow the new order, as a late writer's would)."""
        ids = [e["id"] for e in self.events]
        random.Random(seed).shuffle(self.events)  # noqa: S311
        for event, event_id in zip(self.events, ids, strict=True):
            event["id"] = event_id

    def page_number(self, query: str) -> int:
        """Which page (1-based) of the events after the cursor a request asks for (injected faults name it)."""
        params = parse_qs(query)
        try:
            limit = max(1, int(params.get("limit", [str(DEFAULT_LIMIT)])[0]))
        except ValueError:
            return 1
        after = params.get("starting_after", [""])[0]
        if not after:
            return 1
        position = bisect.bisect_right([e["id"] for e in self.events], after)
        return position // limit + 1

    def answer(self, query: str, rate_headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(status, body) for ``GET /v3.0/events?<query>``."""
        params = parse_qs(query)
        try:
            limit = int(params.get("limit", [str(DEFAULT_LIMIT)])[0])
        except ValueError:
            return 400, {"message": "limit must be an integer"}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"message": f"limit must be between 1 and {MAX_LIMIT}"}
        ids = [e["id"] for e in self.events]
        if params.get("ending_before", [""])[0] == "last":
            page = self.events[-limit:]
            return 200, {"data": [_item(e) for e in page], "links": [{"rel": "self", "uri": f"{EVENTS_PATH}?{query}"}]}
        start = 0
        if "starting_after" in params:
            after = params["starting_after"][0]
            if after in ids:
                start = ids.index(after) + 1
            elif self.oldest_kept and after <= self.oldest_kept:
                return 404, {"message": f"event {after} is too old: events are kept for a limited time"}
            else:
                start = bisect.bisect_right(ids, after)  # ids grow: the first event after it
        page = self.events[start : start + limit]
        links = [{"rel": "self", "uri": f"{EVENTS_PATH}?{query}" if query else EVENTS_PATH}]
        if start + limit < len(self.events):
            links.append(
                {"rel": "next", "uri": f"{EVENTS_PATH}?{urlencode({'limit': limit, 'starting_after': page[-1]['id']})}"}
            )
        return 200, {"data": [_item(e) for e in page], "links": links}


def _item(event: dict[str, Any]) -> dict[str, Any]:
    return {"data": event, "uri": f"{EVENTS_PATH}/{event['id']}"}
