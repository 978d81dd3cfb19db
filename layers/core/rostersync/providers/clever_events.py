"""Clever's Events API (Data API v3.0 ``/events``): a night's sync from the changes alone.

How an incremental Clever run works:

- **A full run** first asks Clever for its latest event (``GET /v3.0/events?ending_before=last&limit=1``),
  *before* reading the roster, then reads the roster as ``CleverProvider`` always does and keeps, next to
  the run, a **mirror** of what it read: Clever's own objects (schools, sections, users, courses, terms),
  as sent. The run's cursor names that event and the run whose mirror it is. An event that lands while
  the roster is being read is therefore read again by the next run: events carry whole objects, so
  applying one twice gives the same object.
- **An event run** reads only the events after the cursor (``starting_after``, ``limit``, ``links
  rel=next``; 429 and 5xx backed off as every Clever request), applies ``*.created`` / ``*.updated``
  (the event's object replaces the mirror's) and ``*.deleted`` (the object leaves the mirror) in order,
  streaming the old mirror into a new one, and yields the new mirror through the same mapping as a full
  read. So the planner sees the whole roster, exactly as a full read of tonight's Clever would give it;
  the provider requests are the event pages alone.
- **What an event run may archive**: only records the night's events touched (``TouchedRecord``: a
  user or section an event named, created, changed or deleted). A deleted user is gone from the mirror,
  so the planner archives them, their enrollments and guardian links; a student an update moved out of
  every synced school, an enrollment an updated section no longer lists, too. A record no event named is
  never archived for being absent: that is the periodic full reconcile's job.
- **Incomplete**: an event page that cannot be read, or an event that cannot be applied (no object, no
  id), makes the fetch incomplete: nothing is archived, and the cursor is not moved (the next run reads
  the same events again; applying them again is harmless).
- **Full instead**, with the reason for the report (``FetchOutcome.full_reason``): no cursor yet, a
  cursor or mirror that cannot be used, Clever's events not available to the app (HTTP 403/404 on
  ``/events``), the cursor too old to be served (Clever keeps events for a limited time), or the
  district's settings (``incremental.mode = full``, the periodic reconcile).

The mirror's storage is a port (``RosterMirror``): S3 under the run's prefix on the stack
(``steps.fetch``), memory in unit tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from rostersync.domain.records import Kind, RecordError, SnapshotItem, TouchedRecord
from rostersync.errors import ProviderAuthError, ProviderRequestError
from rostersync.providers.base import FetchOutcome
from rostersync.providers.clever import (
    COURSES_PATH,
    SCHOOLS_PATH,
    SECTIONS_PATH,
    TERMS_PATH,
    USERS_PATH,
    CleverClient,
    CleverProvider,
    _error_message,
    _rate_limit_wait,
)
from rostersync.providers.http import send_with_retries

logger = logging.getLogger(__name__)

EVENTS_PATH = "/v3.0/events"
# Clever's objects the mirror keeps, by the path a full read takes them from; the event types' prefixes.
MIRRORED = {
    "schools": SCHOOLS_PATH,
    "sections": SECTIONS_PATH,
    "users": USERS_PATH,
    "courses": COURSES_PATH,
    "terms": TERMS_PATH,
}
_COLLECTION_OF_PATH = {path: name for name, path in MIRRORED.items()}
IGNORED_EVENT_OBJECTS = ("districts", "resources")
EVENT_ACTIONS = ("created", "updated", "deleted")
CURSOR_FORMAT = "clever-events/1"


class EventsUnavailableError(Exception):
    """Clever will not serve the events this run needs; the run reads the whole roster instead."""


class NightTooLargeError(EventsUnavailableError):
    """The night holds more events than one invocation reads (``read_overlay``'s ``max_events``): a night
    that large (a district re-rostered, a new school year) is read in full, in Fetch's slices, instead."""


# -- the cursor --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleverCursor:
    """Where the next event run starts: after ``event_id`` ("" = before Clever's first event), on the
    mirror kept by run ``mirror_run``."""

    event_id: str
    mirror_run: str

    def dumps(self) -> str:
        return json.dumps({"format": CURSOR_FORMAT, "event": self.event_id, "mirror_run": self.mirror_run})

    @classmethod
    def loads(cls, text: str | None) -> CleverCursor | None:
        """The stored cursor, or None when there is none or it is not one of ours (then: a full run)."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("format") != CURSOR_FORMAT:
            return None
        event, mirror_run = data.get("event"), data.get("mirror_run")
        if not isinstance(event, str) or not isinstance(mirror_run, str) or not mirror_run:
            return None
        return cls(event, mirror_run)


# -- the mirror's storage (a port) -------------------------------------------------------------------


class MirrorWriter(Protocol):
    def write(self, item: dict[str, Any]) -> None: ...


class RosterMirror(Protocol):
    """Where a run keeps Clever's objects as read, and finds the ones an earlier run kept."""

    run_id: str  # the run writing the new mirror

    def has(self, run_id: str) -> bool:
        """Whether run ``run_id`` left a whole mirror."""
        ...

    def read(self, run_id: str, collection: str) -> Iterator[dict[str, Any]]:
        """The items of one collection of run ``run_id``'s mirror, in the order they were written."""
        ...

    def writer(self, collection: str) -> MirrorWriter:
        """Write one collection of this run's mirror."""
        ...

    def seal(self, event_id: str) -> None:
        """Close this run's mirror: every collection written whole, as of ``event_id``."""
        ...


@dataclass
class MemoryMirror:
    """A ``RosterMirror`` in memory (tests, the property test, the benchmark's planner-only runs)."""

    run_id: str = "run-1"
    runs: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    sealed: set[str] = field(default_factory=set)

    def has(self, run_id: str) -> bool:
        return run_id in self.sealed

    def read(self, run_id: str, collection: str) -> Iterator[dict[str, Any]]:
        yield from self.runs.get(run_id, {}).get(collection, [])

    def writer(self, collection: str) -> MirrorWriter:
        items = self.runs.setdefault(self.run_id, {}).setdefault(collection, [])
        items.clear()

        class _Writer:
            def write(self, item: dict[str, Any]) -> None:
                items.append(item)

        return _Writer()

    def seal(self, event_id: str) -> None:
        self.runs.setdefault(self.run_id, {})
        self.sealed.add(self.run_id)


# -- the events client -------------------------------------------------------------------------------


@dataclass
class EventPage:
    events: list[Any]
    next_url: str | None
    problem: str = ""


class CleverEventsClient:
    """``/v3.0/events`` with the district's token (the same session, paging and backoff as the data)."""

    def __init__(self, client: CleverClient) -> None:
        self._client = client
        self.requests = 0

    def latest_event_id(self) -> str:
        """The id of Clever's newest event for the district, "" when it has none yet.

        Raises ``EventsUnavailableError`` when Clever does not serve events to this app.
        """
        page = self._page(f"{self._client.base_url}{EVENTS_PATH}", {"ending_before": "last", "limit": 1}, None)
        if page.problem:
            raise EventsUnavailableError(f"Clever's latest event could not be read: {page.problem}")
        ids = [event_id(event) for event in page.events]
        return next((i for i in reversed(ids) if i), "")

    def iter_pages(self, after: str) -> Iterator[EventPage]:
        """Every page of events after ``after`` ("" = from the first), oldest first."""
        url: str | None = f"{self._client.base_url}{EVENTS_PATH}"
        params: dict[str, Any] | None = {"limit": self._client.page_limit}
        if after:
            assert params is not None
            params["starting_after"] = after
        while url is not None:
            page = self._page(url, params, after)
            yield page
            if page.problem:
                return
            url, params = page.next_url, None

    def _page(self, url: str, params: dict[str, Any] | None, after: str | None) -> EventPage:
        self.requests += 1
        client = self._client
        response = send_with_retries(
            lambda: client.get(url, params),
            client.retry,
            what=EVENTS_PATH,
            rate_limit_wait=_rate_limit_wait,
            unavailable=lambda attempts, problem: (
                f"Clever did not answer after {attempts} attempts ({problem}); Clever may be down or "
                "rate-limiting this district: run the sync again later"
            ),
            log=logger,
            provider="Clever",
        )
        status = response.status_code
        if status == 401:
            raise ProviderAuthError(
                "Clever refused the district token (HTTP 401): reconnect the rostersync app in Clever, then run "
                "the sync again"
            )
        if status in (400, 404, 410) and after:
            raise EventsUnavailableError(
                f"Clever no longer serves the events after {after} (HTTP {status}{_error_message(response)}); "
                "Clever keeps events for a limited time, and the last incremental run is older than that"
            )
        if status in (403, 404):
            raise EventsUnavailableError(
                f"Clever's Events API is not available to this app for the district (HTTP {status}"
                f"{_error_message(response)})"
            )
        if not 200 <= status < 300:
            raise ProviderRequestError(
                f"Clever rejected the request for {EVENTS_PATH} (HTTP {status}{_error_message(response)})"
            )
        return self._parse(response, url)

    def _parse(self, response: requests.Response, url: str) -> EventPage:
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return EventPage([], None, "an events page was not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return EventPage([], None, "an events page has no data list")
        next_url = None
        links = body.get("links", [])
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("rel") == "next" and isinstance(link.get("uri"), str):
                candidate = urljoin(self._client.base_url, link["uri"])
                base, target = urlsplit(self._client.base_url), urlsplit(candidate)
                if (target.scheme, target.netloc) != (base.scheme, base.netloc) or candidate == url:
                    return EventPage(body["data"], None, "an events page has a next link that was not followed")
                next_url = candidate
        return EventPage(body["data"], next_url)


def _event(item: Any) -> dict[str, Any]:
    """The event inside a list item (``{"data": {event}, "uri": …}``), or the item itself."""
    if isinstance(item, dict) and isinstance(item.get("data"), dict) and "type" in item["data"]:
        return item["data"]
    return item if isinstance(item, dict) else {}


def event_id(item: Any) -> str:
    value = _event(item).get("id")
    return value if isinstance(value, str) else ""


# -- applying events ---------------------------------------------------------------------------------


@dataclass
class EventTally:
    """What a night's events said, for the report and the benchmark."""

    read: int = 0
    applied: dict[str, int] = field(default_factory=dict)  # "users.updated" → count
    ignored: int = 0
    pages: int = 0


def object_text(obj: dict[str, Any]) -> str:
    """An object after the night as the overlay holds it: its JSON (compact, ASCII), parsed again only where
    it is used (``OverlayApplier``): 736 bytes a user and 1,341 a section held so, where parsed they took
    3,752 and 4,675 (the synthetic district's; the plan and each slice of a list hold a night's objects)."""
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class Overlay:
    """The night's events folded per object: the last event about an object decides what it is."""

    # (collection, id) → the object after the night as its JSON (``object_text``), or None when deleted
    objects: dict[tuple[str, str], str | None] = field(default_factory=dict)
    order: list[tuple[str, str]] = field(default_factory=list)  # first mention, for creates

    def apply(self, collection: str, action: str, obj: dict[str, Any]) -> None:
        key = (collection, str(obj["id"]))
        if key not in self.objects:
            self.order.append(key)
        self.objects[key] = None if action == "deleted" else object_text(obj)

    def touched(self, collection: str) -> set[str]:
        return {object_id for (name, object_id) in self.objects if name == collection}

    def entries(self, collection: str) -> list[tuple[str, str | None]]:
        """One collection's objects after the night, in first-mention order: ``(id, object's JSON or None)``."""
        return [(oid, self.objects[(name, oid)]) for name, oid in self.order if name == collection]

    @classmethod
    def of(cls, entries: dict[str, Iterable[tuple[str, str | None]]]) -> Overlay:
        """The overlay whose ``entries`` per collection are these (as written, read back)."""
        overlay = cls()
        for collection, pairs in entries.items():
            for oid, obj in pairs:
                overlay.order.append((collection, oid))
                overlay.objects[(collection, oid)] = obj
        return overlay


@dataclass
class NightEvents:
    """A night's events as read when the run is planned (``CleverIncrementalProvider.plan_read``): the
    overlay, the last event read, what could not be read or applied (each makes the fetch incomplete),
    the tally, and the run whose mirror they apply to."""

    overlay: Overlay
    last: str
    mirror_run: str
    problems: list[str] = field(default_factory=list)
    tally: EventTally = field(default_factory=EventTally)


@dataclass(frozen=True)
class ReadPlan:
    """How a run reads, decided before anything of the roster is read: from the night's events (``night``),
    or in full (``reason``, and Clever's latest event: None, with the ``note`` the report shows, when
    Clever would not say)."""

    reason: str = ""
    latest: str | None = None
    note: str = ""
    night: NightEvents | None = None
    # a full read because the night is too large (``NightTooLargeError``): the assembly does not read its
    # events again to name what they touched
    too_large: bool = False


class OverlayApplier:
    """One collection of the last mirror with the night's events applied, as its items pass: an object an
    event changed is replaced, one it deleted left out, and the objects no mirror item matched (created)
    follow the last item, in the order the events first named them.

    The mirror may pass in pieces (Fetch's slices of an events run, one mirror chunk a page): ``found``
    (the changed ids the mirror held so far) is what carries from piece to piece.
    """

    def __init__(self, entries: Iterable[tuple[str, str | None]], found: Iterable[str] = ()) -> None:
        self._changed = dict(entries)  # id → the object's JSON (``object_text``), parsed as it is applied
        self._order = list(self._changed)
        self.found: set[str] = set(found)

    def apply(self, items: Iterable[Any], last: bool) -> Iterator[Any]:
        """``items`` of the mirror as the night leaves them; with ``last``, the created objects after them."""
        changed = self._changed
        for item in items:
            if changed:
                data = item.get("data") if isinstance(item, dict) else None
                oid = str(data.get("id")) if isinstance(data, dict) and data.get("id") else ""
                if oid in changed:
                    self.found.add(oid)
                    text = changed[oid]
                    if text is None:
                        continue  # deleted
                    item = {"data": json.loads(text)}
            yield item
        if last:
            for oid in self._order:
                text = changed[oid]
                if oid not in self.found and text is not None:
                    yield {"data": json.loads(text)}


def read_overlay(
    events: CleverEventsClient, after: str, outcome: FetchOutcome, tally: EventTally, max_events: int | None = None
) -> tuple[Overlay, str]:
    """Read every event after ``after`` and fold them; returns the overlay and the last event id read.

    A page or an event that cannot be read makes ``outcome`` incomplete (what was read is still applied;
    the events are read again next time). ``max_events``: a page of events after that many were read raises
    ``NightTooLargeError`` (the night is read in one invocation, its objects held: a bound on both).
    """
    overlay = Overlay()
    last = after
    for page in events.iter_pages(after):
        if max_events is not None and tally.read >= max_events and page.events:
            raise NightTooLargeError(f"the night holds more than {max_events:,} Clever events")
        tally.pages += 1
        for item in page.events:
            tally.read += 1
            event = _event(item)
            this_id = event_id(item)
            kind = event.get("type")
            name, _, action = kind.partition(".") if isinstance(kind, str) else ("", "", "")
            if name in IGNORED_EVENT_OBJECTS and action in EVENT_ACTIONS:
                tally.ignored += 1
                last = this_id or last
                continue
            data = event.get("data")
            obj = data.get("object") if isinstance(data, dict) else None
            if name not in MIRRORED or action not in EVENT_ACTIONS or not isinstance(obj, dict) or not obj.get("id"):
                outcome.mark_incomplete(
                    f"Clever event {this_id or '(without an id)'} ({kind if isinstance(kind, str) else 'no type'}) "
                    "could not be applied; nothing is archived this run and the events are read again next run"
                )
                continue
            overlay.apply(name, action, obj)
            tally.applied[f"{name}.{action}"] = tally.applied.get(f"{name}.{action}", 0) + 1
            last = this_id or last
        if page.problem:
            outcome.mark_incomplete(
                f"Clever {page.problem}; the rest of the events were not read, so this run will not archive anything"
            )
    return overlay, last


class _MirrorClient:
    """Serves ``iter_records`` from the old mirror with the night's events applied, writing the new mirror
    as it goes, so ``CleverProvider`` maps the result exactly as it maps a full read."""

    def __init__(self, mirror: RosterMirror, source_run: str, overlay: Overlay, write: bool) -> None:
        self._mirror = mirror
        self._source = source_run
        self._overlay = overlay
        self._write = write

    def iter_records(self, path: str, outcome: FetchOutcome | None = None) -> Iterator[Any]:
        collection = _COLLECTION_OF_PATH[path]
        writer = self._mirror.writer(collection) if self._write else None
        applier = OverlayApplier(self._overlay.entries(collection))
        for item in applier.apply(self._mirror.read(self._source, collection), last=True):
            if writer is not None:
                writer.write(item)
            yield item


class _TeeClient:
    """A full read that also writes what it reads into the run's mirror."""

    def __init__(self, client: Any, mirror: RosterMirror) -> None:
        self._client = client
        self._mirror = mirror

    def iter_records(self, path: str, outcome: FetchOutcome | None = None) -> Iterator[Any]:
        writer = self._mirror.writer(_COLLECTION_OF_PATH[path])
        for item in self._client.iter_records(path, outcome):
            writer.write(item)
            yield item


# -- the provider ------------------------------------------------------------------------------------


class MappedRoster(Protocol):
    """A full read's lists, mapped already (Fetch's slices): what ``CleverProvider.fetch`` would yield,
    in its order, some of it as chunks written already. Records unreadable pages in ``outcome``; hands
    ``mirror`` (when given) the chunks of Clever's objects as read."""

    def fetch(self, outcome: FetchOutcome, mirror: Any) -> Iterator[Any]: ...


class CleverIncrementalProvider:
    """Clever, read from its events when it can, in full when it must (module docstring).

    Parameters
    ----------
    client
        A client holding the district's token.
    mirror
        Where this run keeps Clever's objects and finds the last run's.
    cursor
        The stored cursor (``CleverCursor.dumps``), or None.
    full_reason
        Set when the run must read the whole roster whatever the cursor (the settings, a reconcile); it
        is the report's reason. The cursor is still used to name what tonight's events touched, so a
        reconcile can tell what it caught that the events missed.
    roster
        Serves the roster's lists to a full read (``iter_records``), when they were read before (Fetch's
        slices, ``plan_read``); default: the client reads them.
    latest
        Clever's latest event as ``plan_read`` read it, before the roster: ``(id, "")``, or ``(None,
        why)`` when Clever would not say.
    mapped
        The roster's lists already mapped (Fetch's slices map what they read): a full read, or an events
        run's lists (the last mirror with the night's events applied, read by the slices), takes them
        from it, and its mirror names the chunks the slices read, instead of mapping and copying here.
    night
        The night's events, when ``plan_read`` read them already: the run is an events run, its events
        are not read again, and ``mapped`` holds the roster they leave.
    night_max_events
        The most events a night is read from (``read_overlay``'s ``max_events``); a larger night is read
        in full. None: no bound (a run in one process).
    night_too_large
        ``plan_read`` found the night too large: the full read does not read its events again.
    """

    name = "clever"

    def __init__(
        self,
        client: CleverClient,
        mirror: RosterMirror,
        cursor: str | None = None,
        full_reason: str = "",
        events_client: CleverEventsClient | None = None,
        roster: Any = None,
        latest: tuple[str | None, str] | None = None,
        mapped: MappedRoster | None = None,
        night: NightEvents | None = None,
        night_max_events: int | None = None,
        night_too_large: bool = False,
    ) -> None:
        self._client = client
        self._max_events = night_max_events
        self._too_large = night_too_large
        self._mapped = mapped
        self._night = night
        # Where a full read takes the roster's lists from: the client, or the lists Fetch's slices read.
        self._roster = roster or client
        # Clever's latest event as read before the roster (id or None, and why None), when already read.
        self._latest = latest
        self._mirror = mirror
        self._cursor = CleverCursor.loads(cursor)
        self._stored_cursor = cursor
        self._full_reason = full_reason
        self.events = events_client or CleverEventsClient(client)
        self.tally = EventTally()

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        reason = ""
        if self._night is None and self._latest is None:  # not planned before (in-process): decide now
            read = self.plan_read()
            self._night = read.night
            self._latest = None if read.night is not None else (read.latest, read.note)
            reason = read.reason
        elif self._night is None:
            reason = self._full_reason or self._why_not_events()
        if self._night is not None:
            for problem in self._night.problems:
                outcome.mark_incomplete(problem)
            self.tally = self._night.tally
            yield from self._from_events(self._night.overlay, self._night.last, outcome)
            return
        yield from self._full(reason, outcome)

    def plan_read(self) -> ReadPlan:
        """Decide, before anything of the roster is read, how this run reads: from the night's events
        (read here, once: ``ReadPlan.night``), or in full (why, and Clever's latest event). A cursor Clever
        no longer serves, or events Clever will not serve to the app, make it a full read here.
        """
        reason = self._full_reason or self._why_not_events()
        too_large = False
        if not reason:
            assert self._cursor is not None
            outcome = FetchOutcome()
            try:
                overlay, last = read_overlay(self.events, self._cursor.event_id, outcome, self.tally, self._max_events)
            except EventsUnavailableError as exc:
                reason = f"{exc}; this run read the whole roster instead"
                too_large = isinstance(exc, NightTooLargeError)
            else:
                return ReadPlan(night=NightEvents(overlay, last, self._cursor.mirror_run, outcome.problems, self.tally))
        try:
            return ReadPlan(reason, self.events.latest_event_id(), too_large=too_large)
        except EventsUnavailableError as exc:
            note = f"{reason}; {exc}, so the next run reads the whole roster too"
            return ReadPlan(reason, None, note, too_large=too_large)

    def _why_not_events(self) -> str:
        if self._cursor is None:
            if self._stored_cursor:
                return "the stored Clever events cursor could not be read; this run read the whole roster"
            return "no Clever events cursor yet (the first sync, or the last runs read the whole roster)"
        if not self._mirror.has(self._cursor.mirror_run):
            return (
                f"the copy of the Clever roster kept by run {self._cursor.mirror_run} is gone (run files expire); "
                "this run read the whole roster"
            )
        return ""

    def _from_events(self, overlay: Overlay, last: str, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        assert self._cursor is not None
        source_run = self._night.mirror_run if self._night is not None else self._cursor.mirror_run
        for problem in outcome.problems:  # events that could not be read or applied: report lines
            yield RecordError(kind=Kind.STUDENTS, provider_id="", reason=problem)
        outcome.sync_kind = "events"
        outcome.touched_only = True
        changed = bool(overlay.objects)
        yield from self._touched(overlay)
        if self._mapped is not None:
            # Fetch's slices applied the events to the last mirror and mapped it; with changes, what they
            # read (the new mirror) is adopted as this run's mirror.
            yield from self._mapped.fetch(outcome, self._mirror if changed else None)
        else:
            source = _MirrorClient(self._mirror, source_run, overlay, write=changed)
            yield from CleverProvider(source).fetch(outcome)  # type: ignore[arg-type]
        outcome.changes = len(overlay.objects)
        if not outcome.complete:
            outcome.cursor = None  # read the same events again next run, on the same mirror
        elif changed:
            self._mirror.seal(last)
            outcome.cursor = CleverCursor(last, self._mirror.run_id).dumps()
        else:
            outcome.cursor = CleverCursor(last, source_run).dumps()
        logger.info(
            "Read Clever's events: %d events on %d pages, %d objects changed",
            self.tally.read,
            self.tally.pages,
            len(overlay.objects),
        )

    def _touched(self, overlay: Overlay) -> Iterator[SnapshotItem]:
        for oid in sorted(overlay.touched("users")):
            yield TouchedRecord(collection="people", provider_id=oid)
        for oid in sorted(overlay.touched("sections")):
            yield TouchedRecord(collection="classrooms", provider_id=oid)

    def _full(self, reason: str, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        outcome.sync_kind = "full"
        outcome.full_reason = reason
        latest: str | None = None
        if self._latest is not None:
            latest, note = self._latest
            outcome.full_reason = note or reason
        else:
            try:
                latest = self.events.latest_event_id()
            except EventsUnavailableError as exc:
                outcome.full_reason = f"{reason}; {exc}, so the next run reads the whole roster too"
        # A reconcile still names what tonight's events touched, so the report can tell what it caught.
        if self._cursor is not None and latest is not None and not self._too_large:
            try:
                overlay, _ = read_overlay(
                    self.events, self._cursor.event_id, FetchOutcome(), EventTally(), self._max_events
                )
            except EventsUnavailableError:  # a night too large among them: what it touched goes unnamed
                pass
            else:
                outcome.tonight_known = True
                yield from self._touched(overlay)
        if self._mapped is not None:
            yield from self._mapped.fetch(outcome, self._mirror)
        else:
            yield from CleverProvider(_TeeClient(self._roster, self._mirror)).fetch(outcome)  # type: ignore[arg-type]
        if outcome.complete and latest is not None:
            self._mirror.seal(latest)
            outcome.cursor = CleverCursor(latest, self._mirror.run_id).dumps()
        else:
            outcome.cursor = None  # keep the stored cursor: its mirror is whole
        if latest is None:
            outcome.cursor = None


def build_clever_provider(
    connection: dict[str, Any],
    secret: str,
    retry: Any,
    mirror: RosterMirror | None,
    cursor: str | None,
    full_reason: str,
) -> CleverProvider | CleverIncrementalProvider:
    """The Clever provider for a run: incremental when the run keeps a mirror, plain otherwise."""
    page_limit = int(connection.get("page_limit") or 10_000)
    client = CleverClient(connection["base_url"], secret, page_limit=page_limit, retry=retry)
    if mirror is None:
        return CleverProvider(client)
    return CleverIncrementalProvider(client, mirror, cursor=cursor, full_reason=full_reason)
