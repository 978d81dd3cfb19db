"""Fetch the district's roster from its provider into snapshot chunks in S3, in three phases.

1. ``plan_fetch``: how this run reads (full, events, delta) and which lists; ``fetch/plan.json``. A Clever
   events run reads the night's events here and plans its lists as the last run's mirror.
2. ``read_fetch_slice``: one bounded slice of one list, as the provider sent it (the state machine reads
   every list in parallel, one Map item each, and loops a list's slices until it is done), or, for a
   Clever events run, as the last mirror holds it with the night's events applied (a chunk a page).
   A Clever slice also maps the pages it read into the snapshot's records (its own chunks per
   collection, its record errors and counts); a list's duplicate check carries from slice to slice.
3. ``assemble_snapshot``: the snapshot's manifest that Match reads. For Clever it combines what the slices
   mapped (their chunks and counts, in the order they were read), names the classrooms' courses and
   terms, records unreadable pages and keeps the mirror; for OneRoster REST and a CSV bundle (whose
   mapping checks references across collections) it maps what the slices read (a bundle: a file a list).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rostersync import aws, metering
from rostersync.contracts import UPLOAD_PREFIX, FetchPlanResult, FetchResult, FetchSliceResult, RunRef
from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    SnapshotItem,
    TouchedRecord,
    limit_error,
)
from rostersync.errors import (
    BadInputError,
    ConnectionNotConfiguredError,
    ProviderAuthError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from rostersync.incremental import IncrementalState, RunStoreMirror, run_kind
from rostersync.observability import logger
from rostersync.providers import oneroster_csv
from rostersync.providers.base import FetchOutcome, ListPage, RetryPolicy, RosterProvider
from rostersync.providers.clever import (
    COURSES_PATH,
    IDS_AS_NAMES,
    SCHOOLS_PATH,
    SECTIONS_PATH,
    TERMS_PATH,
    USER_ROLES,
    USERS_PATH,
    CleverClient,
    CleverProvider,
    _page_errors,
    field_text,
    map_schools,
    map_sections,
    map_users,
    name_classroom,
    names_by_id,
    user_listed_here,
)
from rostersync.providers.clever_events import (
    MIRRORED,
    CleverIncrementalProvider,
    EventTally,
    NightEvents,
    Overlay,
    OverlayApplier,
    object_text,
)
from rostersync.providers.http import RequestPacer, paged, unreadable_page
from rostersync.providers.oneroster_mapping import COLLECTIONS as ONEROSTER_COLLECTIONS
from rostersync.providers.oneroster_rest import (
    OneRosterRestProvider,
    build_oneroster_rest_client,
    delta_filter,
    now_cursor,
    sourced_id,
)
from rostersync.providers.registry import build_provider, provider_name
from rostersync.providers.seen_ids import SeenIds, id_key
from rostersync.settings import LimitSettings, SyncSettings
from rostersync.steps.context import DistrictContext
from rostersync.storage import ChunkWriter, RunStore, download_bundle, open_bundle_object, uploaded_at

# Where each record lands in the snapshot; guardians apart, so Match can sync only the guardians of
# synced students.
SNAPSHOT_COLLECTIONS = (
    "schools",
    "classrooms",
    "people",
    "guardians",
    "enrollments",
    "guardian_links",
    "deleted",
    "touched",
)
_COLLECTION_OF_TYPE = {
    "school": "schools",
    "classroom": "classrooms",
    "enrollment": "enrollments",
    "guardian_link": "guardian_links",
}


# Clever's lists, as the mirror keeps them and an events run reads them (the last mirror's chunks).
CLEVER_LISTS = {
    "courses": COURSES_PATH,
    "terms": TERMS_PATH,
    "schools": SCHOOLS_PATH,
    "sections": SECTIONS_PATH,
    "users": USERS_PATH,
}
# Records a page of a list asks for, where fewer than the connection's page limit (Clever's 10,000): a
# section carries the ids of its students and teachers (about 27 at NYC, 26 in the synthetic district), so
# a page of 10,000 sections is 37.7 MiB parsed and 12.5 MiB sent, where 10,000 users are 26.8 MiB. Pages of
# 5,000 keep a sections page under a users page, and Fetch's largest invocation the same from 10 k students
# to NYC's (docs/SCALE.md); NYC's 150 k sections are then 30 requests instead of 15, read beside the users.
CLEVER_PAGE_LIMITS = {SECTIONS_PATH: 5_000}
# A full read (and a self-check) reads Clever's users by role, a list each (``users-<role>``): the longest
# list, read page after page, was most of a large district's fetch. Each user is kept by the list of its
# first role (``user_listed_here``); the parts, combined in ``USER_ROLES`` order, are the users list.
CLEVER_FULL_READ = {
    **{name: {"path": path} for name, path in CLEVER_LISTS.items() if name != "users"},
    **{f"users-{role}": {"path": USERS_PATH, "role": role, "list": "users"} for role in USER_ROLES},
}
ONEROSTER_LISTS = ONEROSTER_COLLECTIONS
PLAN_NAME = "fetch/plan.json"
# Clever allows 1,200 requests a minute per district token (DESIGN §1); a connection may say otherwise.
CLEVER_REQUESTS_PER_MINUTE = 1_200


def fetch_roster(run: RunRef) -> FetchResult:
    """The whole fetch in one process: plan, every slice of every list, then the snapshot (what the state
    machine does across invocations; used where no state machine runs, e.g. in-process tests)."""
    plan = plan_fetch(run)
    for resource in plan.resources:
        while not read_fetch_slice(run.district_id, run.run_id, resource).done:
            pass
    return assemble_snapshot(run)


@dataclass
class _Reading:
    ctx: DistrictContext
    connection: dict[str, Any]
    secret: str
    retry: RetryPolicy
    secret_version: str | None = None  # the version of the connection's secret that ``secret`` is


def _reading(district_id: str, run_id: str) -> _Reading:
    """How the plan reads the provider: the district's connection and secret as they are now. The plan keeps
    them (``plan["reading"]``: the connection item, which holds no credentials, and the secret's version id),
    and every later invocation of the run reads with those (``_planned_reading``), so an admin who connects
    the district again while a run reads it (another tenant, another token: ``connect_provider`` overwrites
    both under the same names) changes the next run, never half of this one."""
    return _reading_in(DistrictContext.for_run(district_id, run_id), None)


def _reading_in(ctx: DistrictContext, plan: dict[str, Any] | None) -> _Reading:
    pinned = (plan or {}).get("reading")
    connection = dict(pinned["connection"]) if pinned else ctx.state.get_item("CONNECTION") or {}
    secret, version = "", None
    if connection.get("secret_id"):
        by_version = {"VersionId": pinned["secret_version"]} if pinned and pinned.get("secret_version") else {}
        answer = aws.client("secretsmanager").get_secret_value(SecretId=connection["secret_id"], **by_version)
        secret, version = answer["SecretString"], answer.get("VersionId")
    retry = RetryPolicy(
        max_attempts=ctx.config.provider_max_attempts, base_delay=ctx.config.provider_retry_base_seconds
    )
    return _Reading(ctx, connection, secret, retry, version)


def _planned_reading(district_id: str, run_id: str) -> tuple[_Reading, dict[str, Any] | None]:
    """A slice's or the assembly's reading, with the connection and secret the run's plan read; and the plan."""
    ctx = DistrictContext.for_run(district_id, run_id)
    plan = _get_json_or_none(ctx.store, PLAN_NAME)
    return _reading_in(ctx, plan), plan


def branch_interval(requests_per_minute: int | None, branches: int) -> float:
    """Seconds between two requests of one reader, so that ``branches`` readers together stay within
    ``requests_per_minute`` in every minute.

    Each gets ``requests_per_minute // branches - 1`` a minute: a reader spacing its requests that far
    apart sends at most one more than that in any 60 s, so all of them at most ``requests_per_minute``.
    None (no known limit) paces nothing.
    """
    if not requests_per_minute:
        return 0.0
    share = max(1, requests_per_minute // max(1, branches) - 1)
    return 60.0 / share


def _requests_per_minute(connection: dict[str, Any]) -> int | None:
    value = connection.get("requests_per_minute")
    if value is not None:
        return max(1, int(value))
    return CLEVER_REQUESTS_PER_MINUTE if connection.get("provider") == "clever" else None


def _night_max_events(connection: dict[str, Any], ctx: DistrictContext) -> int:
    """The most events a Clever night is read from (a larger night is read in full): the connection's
    ``night_max_events``, else ``FETCH_NIGHT_MAX_EVENTS``."""
    return int(connection.get("night_max_events") or ctx.config.fetch_night_max_events)


def _clever_client(reading: _Reading, pacer: RequestPacer) -> CleverClient:
    page_limit = int(reading.connection.get("page_limit") or 10_000)
    return CleverClient(
        reading.connection["base_url"], reading.secret, page_limit=page_limit, retry=reading.retry, pacer=pacer
    )


def plan_fetch(run: RunRef) -> FetchPlanResult:
    """Decide how the run reads its roster and which lists the state machine reads, one Map item each.

    Writes ``fetch/plan.json`` (the run's reads: lists, cursors, the rate limit's share); returns the
    list names only. Clever: an events run reads the night's event pages here (a few, on a usual night)
    and plans the five lists as the last run's mirror with the night's objects (``_night_lists``); a
    cursor Clever no longer serves makes it a full read; a full read asks for Clever's latest event
    first, before any list, and reads the users by role, a list each (``CLEVER_FULL_READ``,
    ``plan["parts"]["users"]``). OneRoster REST: every collection, with the delta filter when there is a cursor.
    OneRoster CSV: the bundle is checked as a whole here (manifest, files, headers); each file it reads is
    then a list (``{"file": …}``), read by its own Map item in pages of rows. A bundle that fails the check
    plans no list: the assembly reads it and says why, as it always did.
    """
    reading = _reading(run.district_id, run.run_id)
    ctx, connection = reading.ctx, reading.connection
    provider_name(connection)  # refuse a connection rostersync cannot sync before anything is read
    kind = connection.get("provider")
    if run.connection and kind != run.connection:
        # Start recorded the run for another provider (its cursor, the directory's links by provider id):
        # read with this connection, every record would look new and every synced one gone.
        raise ConnectionNotConfiguredError(
            f"the district was connected to {kind} after this run started for {run.connection}: nothing was "
            "read, and the next run reads with the new connection."
        )
    cursor = (ctx.state.get_item(f"CURSOR#{run.provider}") or {}).get("cursor")
    settings = ctx.state.settings_at(run.settings_version)
    incremental = IncrementalState.from_item(ctx.state.get_item(f"INCREMENTAL#{run.provider}"))
    full_reason = (
        ""
        if run.dry_run
        else run_kind(settings.incremental, incremental, datetime.now(UTC), settings.schedule.timezone)
    )
    if run.dry_run:
        cursor = None  # a self-check reads the whole roster and leaves no cursor
    plan: dict[str, Any] = {
        "connection": kind,
        "reading": {"connection": connection, "secret_version": reading.secret_version},
        "cursor": cursor,
        "full_reason": full_reason,
        "lists": {},
        "limits": settings.limits.model_dump(mode="json"),
        # Clever's slices map what they read (``_SliceMapping``); the assembly combines their chunks.
        "mapped_in_slices": kind == "clever",
    }
    rpm = _requests_per_minute(connection)
    if kind == "clever":
        pacer = RequestPacer(interval=branch_interval(rpm, len(CLEVER_FULL_READ)))
        plan["interval"] = pacer.interval
        read_lists = True
        if not run.dry_run:
            mirror = RunStoreMirror(aws.client("s3"), ctx.config.sync_bucket, run.district_id, run.run_id)
            provider = CleverIncrementalProvider(
                _clever_client(reading, pacer),
                mirror,
                cursor,
                full_reason,
                night_max_events=_night_max_events(connection, ctx),
            )
            read = provider.plan_read()
            plan["clever"] = {
                "reason": read.reason,
                "latest": read.latest,
                "note": read.note,
                "too_large": read.too_large,
            }
            if read.night is not None:
                # An events run: the slices read the last mirror, the night's events applied, and map it.
                plan["clever"]["events"] = _write_night(ctx.store, read.night, ctx.config.snapshot_chunk_records)
                per_part = int(connection.get("mirror_chunks_per_part") or ctx.config.fetch_mirror_chunks_per_part)
                plan["lists"], plan["parts"] = _night_lists(
                    mirror, read.night, plan["clever"]["events"]["overlay"], per_part
                )
                read_lists = False
        if read_lists:
            plan["lists"] = {name: dict(spec) for name, spec in CLEVER_FULL_READ.items()}
            plan["parts"] = {"users": [name for name, spec in CLEVER_FULL_READ.items() if spec.get("list") == "users"]}
        plan["last_request_at"] = pacer.last
    elif kind == "oneroster-rest":
        # A due reconcile drops the cursor (a full read).
        since = None if full_reason else cursor
        record_filter = delta_filter(since)
        plan["oneroster"] = {"since": since, "started_at": now_cursor()}
        specs = {
            name: {"collection": name, "filter": None if name == "demographics" else record_filter}
            for name in ONEROSTER_LISTS
        }
        part_records = int(connection.get("part_records") or ctx.config.fetch_oneroster_part_records)
        # the plan's count requests come alone, before any list: the whole rate is theirs
        counting = RequestPacer(interval=branch_interval(rpm, 1))
        counter = build_oneroster_rest_client(connection, reading.secret, reading.retry, counting)
        plan["lists"], plan["parts"] = _oneroster_lists(specs, counter, part_records, full=since is None)
        plan["interval"] = branch_interval(rpm, len(plan["lists"]))
        plan["last_request_at"] = counting.last
    elif kind == "oneroster-csv" and run.bundle_key:
        key = _check_upload_key(run)
        # The objects the plan reads, at their versions: every later read of this run reads those (the
        # district may upload again meanwhile, under the same name).
        versions: dict[str, str] = {}
        with _bundle_source(ctx, key, versions=versions) as bundle:  # its manifest and headers
            try:
                layout = oneroster_csv.check_bundle(bundle, settings.limits)
            except oneroster_csv.BadBundleError:
                layout = None  # the assembly reads the bundle whole and refuses it with the reasons, as before
        plan["bundle_versions"] = versions
        # when the bundle was uploaded, for the report (an SIS export that stopped leaves the same bundle)
        plan["uploaded_at"] = uploaded_at(aws.client("s3"), ctx.config.sync_bucket, key, versions)
        if layout is not None:
            plan["csv"] = {"bundle_key": key, "layout": layout}
            plan["lists"] = {name: {"file": name} for name in oneroster_csv.files_to_read(layout)}
    key = ctx.store.put_json(PLAN_NAME, plan)
    logger.info("fetch planned", extra={"run_id": run.run_id, "lists": len(plan["lists"])})
    return FetchPlanResult(resources=list(plan["lists"]), plan_key=key)


def _oneroster_lists(
    specs: dict[str, dict[str, Any]], client: Any, part_records: int, full: bool = True
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """OneRoster's lists: each collection, and one the server counts above ``part_records`` (its
    ``X-Total-Count``) cut into parts by offset (``enrollments``, ``enrollments-2``, …: a Map item each,
    read side by side; the last part reads on to the collection's end, whatever it holds by then). A
    collection the server does not count, or that cannot be counted, is one list, read as before.

    ``full``: the run reads the roster whole and archives what it lacks, so every list carries ``total``,
    the count its pages must still give (None: its first page's), checked by ``_changed_while_read``. A
    delta archives nothing for being absent, and its cursor (taken before the read) asks again for what
    changed meanwhile: it is not checked, so a district whose data changes as it is read still moves on."""
    lists: dict[str, Any] = {}
    parts: dict[str, list[str]] = {}
    countable = True
    for name, spec in specs.items():
        total = None
        if countable:
            try:
                total = client.count(spec["collection"], spec["filter"])
            except (ProviderAuthError, ProviderRequestError, ProviderUnavailableError) as exc:
                # Counted no further: the lists' own slices meet the same answer and report it where it
                # belongs (a server that is down is not asked once more per collection here).
                logger.info("OneRoster not counted", extra={"collection": name, "error": type(exc).__name__})
                countable = False
        if full:
            # what every page of the list must still count: a collection that changes while it is read may
            # move a record across a page boundary unread (``_changed_while_read``)
            spec = {**spec, "total": total}
        count = -(-total // part_records) if total else 1
        if count < 2:
            lists[name] = spec
            continue
        parts[name] = [name] + [f"{name}-{n}" for n in range(2, count + 1)]
        for n, part in enumerate(parts[name]):
            end = (n + 1) * part_records if n + 1 < count else None
            lists[part] = {**spec, "list": name, "offset": n * part_records, "end": end}
    return lists, parts


def _write_night(store: RunStore, night: NightEvents, size: int) -> dict[str, Any]:
    """Keep the night's events for the slices and the assembly: each collection's objects after the night
    (``fetch/events/<collection>-NNNNN.ndjson.gz``, lines ``{"id", "object"}``, ``object`` null when
    deleted, in first-mention order); returns what the plan keeps of them."""
    overlay: dict[str, list[str]] = {}
    for collection in MIRRORED:
        entries = night.overlay.entries(collection)
        if entries:
            writer = store.chunk_writer(f"fetch/events/{collection}", size)
            for oid, text in entries:
                # {"id": ..., "object": ...}, the object as the overlay holds its JSON
                writer.write_line(f'{{"id":{json.dumps(oid)},"object":{text or "null"}}}'.encode())
            overlay[collection] = writer.close()
    tally = night.tally
    return {
        "last": night.last,
        "mirror_run": night.mirror_run,
        "problems": night.problems,
        "overlay": overlay,
        "tally": {"read": tally.read, "applied": tally.applied, "ignored": tally.ignored, "pages": tally.pages},
    }


def _night_entries(store: RunStore, keys: list[str]) -> Iterator[tuple[str, str | None]]:
    """The night's objects of one collection as ``_write_night`` kept them: ``(id, the object's JSON or
    None)``, the JSON held as it was written (an ``OverlayApplier`` parses an object when it applies it)."""
    for key in keys:
        if store.owns(key):
            for line in store.read_ndjson_lines(key):
                yield _night_entry(line.decode("utf-8").rstrip())


_JSON = json.JSONDecoder()
_OBJECT_FIELD = ',"object":'


def _night_entry(line: str) -> tuple[str, str | None]:
    """One line ``{"id": ..., "object": ...}``: the id parsed, the object's JSON cut from the line as it is,
    not parsed (a line of another shape is parsed whole, and its object written again)."""
    if line.startswith('{"id":"') and line.endswith("}"):
        oid, end = _JSON.raw_decode(line, 6)
        if isinstance(oid, str) and line.startswith(_OBJECT_FIELD, end):
            text = line[end + len(_OBJECT_FIELD) : -1]
            return oid, None if text == "null" else text
    entry = json.loads(line)
    obj = entry.get("object")
    return str(entry["id"]), None if obj is None else object_text(obj)


def _read_night(store: RunStore, events: dict[str, Any]) -> NightEvents:
    """The night's events as the plan kept them (``_write_night``)."""
    overlay = Overlay.of({c: list(_night_entries(store, keys)) for c, keys in events.get("overlay", {}).items()})
    tally = EventTally(**events.get("tally", {}))
    return NightEvents(overlay, events["last"], events["mirror_run"], list(events.get("problems", [])), tally)


def _night_lists(
    mirror: RunStoreMirror, night: NightEvents, overlay: dict[str, list[str]], per_part: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """An events run's lists, each the last mirror's chunks (one page each) with the night's events; and
    the lists read in parts.

    The slices write what they read (the new mirror) only when the events changed something; the lists
    they do not map (courses, terms: the assembly names classrooms from them) always. A users list longer
    than ``per_part`` chunks whose last mirror is clean (``RunStoreMirror.clean``: no item without an id
    of its own, no id twice) is read in parts side by side (``users``, ``users-2``, …; each a Map item):
    with no id twice and none missing, a part's duplicate check and positions need nothing of the parts
    before it, and the objects the night created, which follow the last part, are mapped by the assembly
    once every part has said which changed objects it found.
    """
    changed = bool(night.overlay.objects)
    lists: dict[str, Any] = {}
    parts: dict[str, list[str]] = {}
    for name, path in CLEVER_LISTS.items():
        keys = mirror.keys(night.mirror_run, name)
        spec = {
            "path": path,
            "mirror": {"run": night.mirror_run, "keys": keys},
            "overlay": overlay.get(name, []),
            "write": changed or name not in _CLEVER_MAPPERS,
        }
        if name in _PARTED and keys and len(keys) > per_part and mirror.clean(night.mirror_run, name):
            count = -(-len(keys) // per_part)
            parts[name] = [name] + [f"{name}-{n}" for n in range(2, count + 1)]
            for n, part in enumerate(parts[name]):
                chunks = keys[n * per_part : (n + 1) * per_part]
                lists[part] = {
                    **spec,
                    "mirror": {"run": night.mirror_run, "keys": chunks},
                    "list": name,
                    "creates": False,
                }
        else:
            lists[name] = spec
    return lists, parts


def fetch_slices(store: RunStore) -> dict[str, int]:
    """The lists the run's fetch plan named, each with the slices its checkpoint counts."""
    plan = _get_json_or_none(store, PLAN_NAME) or {}
    return {
        resource: int((_get_json_or_none(store, _checkpoint_name(resource)) or {}).get("slice", 0))
        for resource in plan.get("lists", {})
    }


def fetched_upload_time(store: RunStore) -> str:
    """When the bundle the run's fetch plan read was uploaded (``storage.uploaded_at``); "" when the plan read
    none or was not written."""
    return str((_get_json_or_none(store, PLAN_NAME) or {}).get("uploaded_at") or "")


def _checkpoint_name(resource: str) -> str:
    return f"fetch/{resource}/checkpoint.json"


def _get_json_or_none(store: RunStore, name: str) -> Any:
    try:
        return store.get_json(store.key(name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def read_fetch_slice(
    district_id: str, run_id: str, resource: str, remaining_ms: Callable[[], int] | None = None
) -> FetchSliceResult:
    """Read the next slice of one list into ``fetch/<list>/sNNNNN-MMMMM.ndjson.gz``, as the provider sent it.

    The slice starts where the list's checkpoint (``fetch/<list>/checkpoint.json``, in the run's S3
    prefix) says the last one stopped and stops at a page boundary: after the slice's page bound, when
    less than the margin is left of the invocation (``remaining_ms``), at the list's end or at a page
    that cannot be read (kept in the checkpoint: the snapshot then reports it and is incomplete). Only
    then is the checkpoint written, naming the slice's chunks. A slice retried before its checkpoint
    was written reads the same pages again into the same keys; the checkpoint names only what its
    successful attempt wrote, so nothing is read twice into the snapshot.

    A Clever events run's list (its spec names the last mirror's chunks) reads those chunks instead of
    Clever's pages, with the night's events applied (``_NightList``); it writes what it read (the new
    mirror) only when the spec says ``write``.
    """
    reading, planned = _planned_reading(district_id, run_id)
    ctx, store = reading.ctx, reading.ctx.store
    plan = planned or {}
    spec = plan.get("lists", {}).get(resource)
    if spec is None:
        raise BadInputError(f"this run's fetch plan has no list {resource!r}")
    checkpoint = _get_json_or_none(store, _checkpoint_name(resource)) or {
        "slice": 0,
        "cursor": None,
        "done": False,
        "pages": 0,
        "records": 0,
        "slices": [],
        "problems": [],
        "last_request_at": plan.get("last_request_at"),
    }
    if checkpoint["done"]:
        metering.name_part(metering.fetch_slice_part(resource, None))
        return FetchSliceResult(resource=resource, done=True, slice=checkpoint["slice"], pages=checkpoint["pages"])
    metering.name_part(metering.fetch_slice_part(resource, checkpoint["slice"]))
    pacer = RequestPacer(interval=float(plan.get("interval") or 0.0), last=checkpoint.get("last_request_at"))
    max_pages = int(reading.connection.get("max_pages_per_slice") or ctx.config.fetch_max_pages_per_slice)
    margin_ms = ctx.config.fetch_slice_margin_seconds * 1000
    name = f"fetch/{resource}/s{checkpoint['slice']:05d}"
    writer = store.chunk_writer(name, ctx.config.snapshot_chunk_records)
    write = spec.get("write", True)
    role = spec.get("role")  # Clever's users of one role: a user of several is kept by its first role's list
    # the users this list left to the list of their first role, kept aside: if their roles change while the
    # lists are read, that list may not hold them, and the assembly maps them from here (``_MappedLists``)
    aside = store.chunk_writer(f"{name}-elsewhere", ctx.config.snapshot_chunk_records) if role else None
    read = count = elsewhere = 0
    problems: list[str] = []

    def going_on(page: ListPage) -> bool:
        """Asked as a page arrives: whether the slice reads on after it (else the next slice starts at its
        next link: a page boundary). The next page is asked for meanwhile (``paged``)."""
        return read + 1 < max_pages and (remaining_ms is None or remaining_ms() >= margin_ms)

    cursor = checkpoint["cursor"]
    night: _NightList | None = None
    if "mirror" in spec:
        night = _NightList(ctx, district_id, run_id, spec, checkpoint)
        pages = night.pages(cursor, going_on)
    elif plan.get("connection") == "clever":
        client = _clever_client(reading, pacer)
        pages = client.iter_pages(
            spec["path"],
            start_url=cursor,
            first_page=checkpoint["pages"] + 1,
            role=spec.get("role"),
            limit=CLEVER_PAGE_LIMITS.get(spec["path"]),
            ahead=going_on,
        )
    elif "file" in spec:
        page_rows = int(reading.connection.get("csv_page_rows") or ctx.config.fetch_csv_page_rows)
        pages = _bundle_pages(ctx, plan, spec["file"], cursor, going_on, page_rows)
    else:
        rest = build_oneroster_rest_client(reading.connection, reading.secret, reading.retry, pacer)
        if cursor is None and spec.get("offset"):  # a part of a collection starts at its offset ...
            # ... asked from the record before it, which the part before it must have ended with
            cursor = {"offset": spec["offset"], "page": spec["offset"] // rest.page_limit, "boundary": True}
        pages = rest.iter_pages(
            spec["collection"], spec.get("filter"), start=cursor, end=spec.get("end"), ahead=going_on
        )

    def items() -> Iterator[Any]:
        """The slice's items, page by page as they are read (this page, and the next one's answer on its
        way: ``paged``), written as sent."""
        nonlocal read, count, cursor, elsewhere
        for page in pages:
            for item in page.items if night is None else night.apply(page):
                if aside is not None and not user_listed_here(item, role):
                    elsewhere += 1
                    aside.write(item)
                    continue
                if write:
                    writer.write(item)
                count += 1
                yield item
            read += 1
            cursor = page.next
            if page.problem:
                problems.append(page.problem)
            _changed_while_read(spec, checkpoint, page, int(spec.get("offset") or 0) + checkpoint["records"] + count)
            if page.before is not None:
                checkpoint["before"] = page.before  # a part's first page: the record just before it
            if "collection" in spec and page.items:
                checkpoint["last_id"] = sourced_id(page.items[-1])  # for the next part's check
            del page  # before the next page is read into memory: one page at a time, not two

    mapping = _SliceMapping.for_list(
        plan,
        spec.get("list", resource),
        store,
        f"fetch/{resource}/mapped/s{checkpoint['slice']:05d}",
        checkpoint,
        ctx.config.snapshot_chunk_records,
        role,
    )
    if mapping is None:
        for _ in items():
            pass
    else:
        mapping.map(items())
    checkpoint["slices"].append(writer.close())
    if mapping is not None:
        # Named by the slice's number, like its pages: a retry before the checkpoint rewrites the same keys,
        # and the checkpoint counts only the attempt that wrote it.
        checkpoint.setdefault("mapped", []).append(mapping.close(more_slices=cursor is not None))
        if mapping.seen_key:
            checkpoint.setdefault("seen", []).append(mapping.seen_key)
        # items that were not a record with an id of its own (none: the list is clean, ``_night_lists``):
        # every other item added its id to the duplicate check
        checkpoint["irregular"] = int(checkpoint.get("irregular", 0)) + count - mapping.added
    checkpoint["records"] += count
    if aside is not None:
        # users of several roles this list left to the list of their first role (counted, kept aside)
        checkpoint["listed_elsewhere"] = int(checkpoint.get("listed_elsewhere", 0)) + elsewhere
        checkpoint.setdefault("elsewhere", []).append(aside.close())
    checkpoint["problems"] += problems
    if night is not None:
        checkpoint["found"] = sorted(night.applier.found)
    checkpoint.update(
        slice=checkpoint["slice"] + 1,
        cursor=cursor,
        done=cursor is None,
        pages=checkpoint["pages"] + read,
        last_request_at=pacer.last,
    )
    store.put_json(_checkpoint_name(resource), checkpoint)
    logger.info(
        "fetch slice read",
        extra={
            "run_id": run_id,
            "list": resource,
            "slice": checkpoint["slice"] - 1,
            "pages": read,
            "records": count,
            "done": checkpoint["done"],
        },
    )
    return FetchSliceResult(
        resource=resource, done=checkpoint["done"], slice=checkpoint["slice"], pages=checkpoint["pages"]
    )


def _bundle_pages(
    ctx: DistrictContext,
    plan: dict[str, Any],
    collection: str,
    cursor: dict[str, Any] | None,
    ahead: Callable[[ListPage], bool],
    page_rows: int,
) -> Iterator[ListPage]:
    """One file of the run's OneRoster bundle from ``cursor`` (a ``FilePosition``) on, in pages of
    ``page_rows`` entries (rows as REST objects, and the file's problems where they fell:
    ``file_entries``). A page's ``next`` is the position after it (None: the file is done); the slice
    stops after a page ``ahead`` says not to read on from. Only this file of a folder upload is
    downloaded; a zip is read where it lies in S3, its member's bytes in ranged requests
    (``open_bundle_object``), never downloaded whole."""
    csv_plan = plan["csv"]
    position = oneroster_csv.FilePosition.from_json(cursor)
    limits = LimitSettings.model_validate(plan.get("limits") or {})
    wanted = {oneroster_csv.FILES[collection].filename.lower()}
    versions = dict(plan.get("bundle_versions") or {})
    with _bundle_source(ctx, csv_plan["bundle_key"], only=wanted, versions=versions) as source:
        with oneroster_csv.file_entries(source, csv_plan["layout"], collection, limits, position) as entries:
            while True:
                items = list(itertools.islice(entries, page_rows))
                if len(items) < page_rows:
                    yield ListPage(items=items, next=None)
                    return
                page = ListPage(items=items, next=position.to_json())
                going = ahead(page)
                yield page
                if not going:
                    return


class _FilesSliced:
    """A bundle's files as the slices read them: a file's entries in the order read, from the chunks its
    checkpoint names. A file whose list was not read to its end is a page not read (incomplete)."""

    def __init__(self, store: RunStore, plan: dict[str, Any]) -> None:
        self._store = store
        self._lists = plan.get("lists", {})

    def entries(self, collection: str, outcome: FetchOutcome) -> Iterator[dict[str, Any]]:
        if collection not in self._lists:
            return
        checkpoint = _get_json_or_none(self._store, _checkpoint_name(collection))
        if not checkpoint or not checkpoint.get("done"):
            filename = oneroster_csv.FILES[collection].filename
            unreadable_page("OneRoster", "file was not read to its end", filename, outcome, logger)
            return
        for keys in checkpoint["slices"]:
            for key in keys:
                if self._store.owns(key):
                    yield from self._store.read_ndjson(key)


def _changed_while_read(spec: dict[str, Any], checkpoint: dict[str, Any], page: ListPage, read: int) -> None:
    """Note in the checkpoint when a OneRoster page counts the collection otherwise than the plan did (or, not
    counted then, than the list's first page): the collection changed while it was read, and offset paging
    may then have passed over a record (one deleted before a page boundary moves the next back across it)
    that the run would archive as gone. The assembly makes such a fetch incomplete (``_SlicedLists``). So
    does a page that did not start with the last record read (``ListPage.moved``: records before it were
    deleted, which a count can miss when as many were added)."""
    if "total" not in spec or checkpoint.get("changed"):
        return  # a delta's list (``_oneroster_lists``), or noted already
    expected = spec["total"] if spec["total"] is not None else checkpoint.get("total")
    if page.total is None:
        pass  # a server that does not count
    elif expected is None:
        checkpoint["total"] = page.total
    elif page.total != expected:
        checkpoint["changed"] = {"read": read, "counted": expected, "now": page.total}
        return
    if page.moved:
        checkpoint["changed"] = {"read": read - len(page.items), "moved": True}


class _NightList:
    """One list of an events run, read by its slices: the last mirror's chunks, one page each (the cursor
    is the next chunk's number), with the night's events applied as each page is taken (``apply``: in the
    slice's own thread, so what a page read ahead but not taken found does not count). The objects the
    events created follow the last chunk. An unreadable chunk is an unreadable page (the run is
    incomplete and archives nothing)."""

    def __init__(
        self, ctx: DistrictContext, district_id: str, run_id: str, spec: dict[str, Any], checkpoint: dict[str, Any]
    ) -> None:
        self._mirror = RunStoreMirror(aws.client("s3"), ctx.config.sync_bucket, district_id, run_id)
        self._run = spec["mirror"]["run"]
        self._keys: list[str] | None = spec["mirror"]["keys"]
        self.applier = OverlayApplier(_night_entries(ctx.store, spec.get("overlay", [])), checkpoint.get("found", []))
        self._creates = bool(spec.get("creates", True))  # a part before the last: the assembly adds them

    def pages(self, cursor: str | None, ahead: Callable[[ListPage], bool]) -> Iterator[ListPage]:
        """The list's pages from chunk ``cursor`` on, read ahead as a provider's list is (``paged``): the
        next chunk's body is fetched while the slice handles this page, and read into items only when the
        slice asks for it (a chunk's items parsed are many times its compressed body)."""
        keys = self._keys
        if keys is None:
            yield ListPage([], None, f"the last run's copy of the roster ({self._run}) has no such list")
            return
        if not keys:
            yield ListPage([], None)
            return
        first = int(cursor or 0)
        if first >= len(keys):
            return

        def answer(number: int) -> bytes | Exception:
            try:
                return self._mirror.chunk_body(self._run, keys[number])
            except (ClientError, OSError, ValueError) as exc:
                return exc

        def page_of(body: bytes | Exception, number: int) -> tuple[ListPage, int | None]:
            if not isinstance(body, Exception):
                try:
                    items = self._mirror.chunk_items(body)
                except (OSError, EOFError, zlib.error, ValueError) as exc:  # not gzip, cut short, not JSON lines
                    body = exc
                else:
                    following = number + 1 if number + 1 < len(keys) else None
                    return ListPage(items, None if following is None else str(following)), following
            problem = (
                f"chunk {number + 1} of the last run's copy of the roster could not be read ({type(body).__name__})"
            )
            return ListPage([], None, problem), None

        yield from paged(first, answer, page_of, ahead)

    def apply(self, page: ListPage) -> Iterator[Any]:
        return self.applier.apply(page.items, last=self._creates and page.next is None and not page.problem)


@dataclass(frozen=True)
class PremappedChunks:
    """Snapshot chunks of one collection that a slice wrote already (``count`` records), in stream order."""

    collection: str
    keys: list[str]
    count: int


def _snapshot_collection(item: Any, limits: LimitSettings) -> tuple[str, Any]:
    """Where a mapped item goes in the snapshot, and what goes there (a record over a limit: its error; a
    record within them: its line of JSON, serialised once for the size check and the chunk)."""
    if isinstance(item, RecordError):
        return "errors", item
    if isinstance(item, TouchedRecord):
        return "touched", item
    if isinstance(item, DeletedRecord):
        return "deleted", item
    line = item.model_dump_json().encode("utf-8")
    if (too_large := limit_error(item, limits.max_id_bytes, limits.max_record_bytes, len(line))) is not None:
        return "errors", too_large
    if isinstance(item, PersonRecord):
        return ("guardians" if item.roles == [Role.GUARDIAN] else "people"), line
    return _COLLECTION_OF_TYPE[item.record_type], line


# The Clever lists a slice maps, and how. Courses and terms are only names (read when assembling);
# sections are mapped with their course and term ids, which the assembly names (``name_classroom``).
# Each takes the items, the duplicate check, the first item's position and the users' role (a role list).
_CLEVER_MAPPERS: dict[str, Callable[[Iterable[Any], SeenIds, int, str | None], Iterator[SnapshotItem]]] = {
    "schools": lambda items, seen, start, role: map_schools(items, seen, start),
    "sections": lambda items, seen, start, role: map_sections(items, IDS_AS_NAMES, IDS_AS_NAMES, seen, start),
    "users": lambda items, seen, start, role: map_users(items, seen, start, role),
}


# The lists an events run may read in parts (``_night_lists``): the users list is the long one.
_PARTED = ("users",)


def _load_seen(store: RunStore, keys: list[str]) -> SeenIds:
    """The ids a list's slices wrote for its duplicate check (``sNNNNN-ids.bin.gz``), this run's keys only."""
    seen = SeenIds()
    for key in keys:
        if store.owns(key):
            body = store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read()
            # a run begun before the ids were written as columns wrote them one per line
            (seen.load_lines if key.endswith(".txt.gz") else seen.load)(body)
            del body
    return seen


class _SliceMapping:
    """Maps one slice of a Clever list into snapshot chunks of its own
    (``fetch/<list>/mapped/sNNNNN-<collection>-MMMMM.ndjson.gz``).

    The duplicate check and the positions in report lines carry over from the list's earlier slices
    (their ids, ``fetch/<list>/mapped/sNNNNN-ids.bin.gz``: ``SeenIds``, 12 bytes an id; and the count of
    items before this slice), so the
    slices together give what the list mapped whole gives. Classrooms keep their course and term ids,
    and their size limit is checked once they are named (the assembly).
    """

    def __init__(
        self,
        store: RunStore,
        name: str,
        resource: str,
        checkpoint: dict[str, Any],
        plan: dict[str, Any],
        size: int,
        role: str | None = None,
    ) -> None:
        self._store = store
        self._name = name
        self._resource = resource
        self._role = role
        self._limits = LimitSettings.model_validate(plan.get("limits") or {})
        self._size = size
        self._writers: dict[str, ChunkWriter] = {}
        self._seen = _load_seen(store, checkpoint.get("seen", []))
        self._start = int(checkpoint["records"]) + 1
        self.seen_key = ""
        self.added = 0  # ids this slice added to the duplicate check

    @classmethod
    def for_list(
        cls,
        plan: dict[str, Any],
        resource: str,
        store: RunStore,
        name: str,
        checkpoint: dict[str, Any],
        size: int,
        role: str | None = None,
    ) -> _SliceMapping | None:
        if not plan.get("mapped_in_slices") or plan.get("connection") != "clever" or resource not in _CLEVER_MAPPERS:
            return None
        return cls(store, name, resource, checkpoint, plan, size, role)

    def map(self, items: Iterable[Any]) -> None:
        before = len(self._seen)
        for item in _CLEVER_MAPPERS[self._resource](items, self._seen, self._start, self._role):
            if isinstance(item, ClassroomRecord):
                collection, value = "classrooms", item  # checked against the limits once named
            else:
                collection, value = _snapshot_collection(item, self._limits)
            writer = self._writers.get(collection)
            if writer is None:
                writer = self._writers[collection] = self._store.chunk_writer(f"{self._name}-{collection}", self._size)
            writer.write(value)
        self.added = len(self._seen) - before

    def close(self, more_slices: bool) -> dict[str, dict[str, Any]]:
        """Flush the chunks; with slices still to come, write this slice's ids for their duplicate check (a
        list of one role's users at its last slice too: the assembly checks which users no list kept)."""
        if (more_slices or self._role) and self._seen.added:
            self.seen_key = self._store.put_bytes(
                f"{self._name}-ids.bin.gz", self._seen.slice_bytes(), "application/gzip"
            )
        return {c: {"keys": w.close(), "count": w.count} for c, w in self._writers.items()}


class _MappedLists:
    """A Clever full read or events run as its slices mapped it (``MappedRoster``): yields what
    ``CleverProvider.fetch`` yields, in its order, the slices' chunks as ``PremappedChunks``; maps nothing
    but the classrooms' course and term names (read here from the small courses and terms lists) and, for
    a list an events run read in parts, the objects the night created (``night``: they follow the last
    part, once every part has said which changed objects it found). A full read's users by role are parts
    too: combined in ``USER_ROLES`` order, with nothing created after them."""

    _LISTS = (("schools", Kind.SCHOOLS), ("sections", Kind.CLASSROOMS), ("users", Kind.STUDENTS))

    def __init__(self, store: RunStore, plan: dict[str, Any], size: int, night: NightEvents | None = None) -> None:
        self._store = store
        self._raw = _SlicedLists(store, plan, "Clever")
        self._lists: dict[str, Any] = plan.get("lists", {})
        self._parts: dict[str, list[str]] = plan.get("parts") or {}
        self._size = size
        self._night = night

    def _by_role(self, parts: list[str]) -> bool:
        """Whether the parts are a full read's lists of users by role (not an events run's mirror parts)."""
        return all("role" in self._lists.get(part, {}) for part in parts)

    def _done(self, part: str, resource: str, outcome: FetchOutcome) -> dict[str, Any] | None:
        checkpoint = _get_json_or_none(self._store, _checkpoint_name(part))
        if not checkpoint or not checkpoint.get("done"):
            unreadable_page("Clever", "list was not read to its end", CLEVER_LISTS[resource], outcome, logger)
            return None
        return dict(checkpoint)

    def fetch(self, outcome: FetchOutcome, mirror: Any) -> Iterator[Any]:
        before = len(outcome.problems)
        courses = names_by_id(self._raw.iter_records(COURSES_PATH, outcome))
        terms = names_by_id(self._raw.iter_records(TERMS_PATH, outcome))
        yield from _page_errors(outcome, before, Kind.CLASSROOMS)
        read: dict[str, list[str]] = {}  # each list's chunks as read (the new mirror)
        clean: dict[str, bool] = {}
        for resource, kind in self._LISTS:
            before = len(outcome.problems)
            parts = self._parts.get(resource, [resource])
            read[resource], irregular, found, items = [], 0, set(), 0
            aside: list[str] = []  # a full read's users by role: the users each list left to another
            seen: list[list[str]] = []  # and the ids each list kept
            for part in parts:
                checkpoint = self._done(part, resource, outcome) or {}
                for mapped in checkpoint.get("mapped", []):
                    for collection, chunks in mapped.items():
                        keys = [key for key in chunks["keys"] if self._store.owns(key)]
                        if collection == "classrooms":
                            for data in self._store.read_all(keys):
                                yield name_classroom(ClassroomRecord.model_validate(data), courses, terms)
                        else:
                            yield PremappedChunks(collection, keys, int(chunks["count"]))
                for problem in checkpoint.get("problems", []):
                    unreadable_page("Clever", problem, CLEVER_LISTS[resource], outcome, logger)
                read[resource] += [key for keys in checkpoint.get("slices", []) for key in keys]
                irregular += int(checkpoint.get("irregular", 1))  # not counted (or not read): not known clean
                found |= set(checkpoint.get("found", []))
                items += int(checkpoint.get("records", 0))
                aside += [key for keys in checkpoint.get("elsewhere", []) for key in keys]
                seen.append(list(checkpoint.get("seen", [])))
            if len(parts) > 1 and self._by_role(parts):
                rescued = yield from self._kept_by_none(resource, aside, seen, items)
                read[resource] += rescued[0]
                irregular += rescued[1]
            elif len(parts) > 1:
                created = yield from self._created(resource, found, items)
                read[resource] += created[0]
                irregular += created[1]
            clean[resource] = irregular == 0
            yield from _page_errors(outcome, before, kind)
        if mirror is not None:
            for resource in CLEVER_LISTS:
                if resource not in read:
                    checkpoint = _get_json_or_none(self._store, _checkpoint_name(resource)) or {}
                    read[resource] = [key for keys in checkpoint.get("slices", []) for key in keys]
                mirror.adopt(resource, read[resource], clean.get(resource))

    def _kept_by_none(
        self, resource: str, aside: list[str], seen: list[list[str]], items: int
    ) -> Generator[Any, None, tuple[list[str], int]]:
        """The users a list left to the list of their first role that no list kept: their roles changed while
        the lists were read (a teacher who is also a contact, left by the contacts' list to the teachers',
        who was no longer a teacher when the teachers' list reached them). Mapped from the copy set aside,
        with the positions after the lists' items, and written as read (``fetch/<list>/rescued-NNNNN``) for
        the mirror. Returns their chunks and how many were irregular. Each list's ids are loaded in turn
        (the largest, at NYC the contacts', ≈ 24 MB), only when some user was set aside."""
        waiting: dict[int | str, dict[str, Any]] = {}
        for item in self._store.read_all([key for key in aside if self._store.owns(key)]):
            data = item.get("data") if isinstance(item, dict) else None
            user_id = field_text(data.get("id")) if isinstance(data, dict) else ""
            if user_id:
                waiting.setdefault(id_key(user_id), item)
        for keys in seen:
            if not waiting:
                break
            kept = _load_seen(self._store, keys)
            waiting = {key: item for key, item in waiting.items() if key not in kept}
            del kept
        if not waiting:
            return [], 0
        logger.warning("users no role list kept, their roles changed while read", extra={"users": len(waiting)})
        writer = self._store.chunk_writer(f"fetch/{resource}/rescued", self._size)
        for item in waiting.values():
            writer.write(item)
        mapped = SeenIds()
        yield from _CLEVER_MAPPERS[resource](list(waiting.values()), mapped, items + 1, None)
        return writer.close(), len(waiting) - len(mapped)

    def _created(self, resource: str, found: set[str], items: int) -> Generator[Any, None, tuple[list[str], int]]:
        """The users the night created, after a list read in parts: mapped with the positions after the
        parts' items, and written as read for the new mirror (``fetch/<list>/created-NNNNN``). Returns
        their chunks and how many were irregular."""
        if self._night is None:
            raise BadInputError(f"this run read {resource} in parts without the night's events")
        objects = [
            {"data": json.loads(text)}
            for oid, text in self._night.overlay.entries(resource)
            if text is not None and oid not in found
        ]
        writer = self._store.chunk_writer(f"fetch/{resource}/created", self._size)
        for item in objects:
            writer.write(item)
        seen = SeenIds()
        yield from _CLEVER_MAPPERS[resource](objects, seen, items + 1, None)
        return writer.close(), len(objects) - len(seen)


class _MappedProvider:
    """A Clever full read without a mirror (a self-check), from what its slices mapped."""

    name = "clever"

    def __init__(self, mapped: _MappedLists) -> None:
        self._mapped = mapped

    def fetch(self, outcome: FetchOutcome) -> Iterator[Any]:
        return self._mapped.fetch(outcome, None)


class _SlicedLists:
    """Serves the lists the slices read, in the order they were read, as the provider clients serve them
    (``iter_records`` for Clever, ``iter_collection`` for OneRoster), so the providers map them exactly
    as a read from the network. A page a slice could not read is recorded in the outcome at the same
    place, with the same words."""

    def __init__(self, store: RunStore, plan: dict[str, Any], provider: str) -> None:
        self._store = store
        self._lists = plan.get("lists", {})
        self._parts: dict[str, list[str]] = plan.get("parts") or {}
        self._provider = provider
        self._by_path: dict[str, str] = {}
        for name, spec in self._lists.items():  # a list read in parts: its first part's name
            if "role" not in spec:  # a list of users by role is served only as a part (``_MappedLists``)
                self._by_path.setdefault(spec.get("path") or spec.get("collection"), name)

    def iter_records(self, path: str, outcome: FetchOutcome | None = None) -> Iterator[Any]:
        name = self._by_path.get(path)
        if name is None:
            raise BadInputError(f"this run's fetch plan did not read {path}")
        noted = False
        ended: str | None = None  # the last record the part before this one read
        for part in self._parts.get(name, [name]):  # a list read in parts (by offset): the parts in order
            checkpoint = _get_json_or_none(self._store, _checkpoint_name(part))
            if not checkpoint or not checkpoint.get("done"):
                # The state machine assembles only after every list is done; never take a part for the whole.
                unreadable_page(self._provider, "list was not read to its end", path, outcome, logger)
                ended = None
                continue  # incomplete: nothing is archived; the other parts' records still sync
            for keys in checkpoint["slices"]:
                for key in keys:
                    if self._store.owns(key):
                        yield from self._store.read_ndjson(key)
            for problem in checkpoint["problems"]:
                unreadable_page(self._provider, problem, path, outcome, logger)
            changed = checkpoint.get("changed")
            spec = self._lists.get(part, {})
            before = checkpoint.get("before")
            if not changed and "total" in spec and ended is not None and before is not None and before != ended:
                # the record before this part's first, read by this part, is not the one the part before ended
                # with: records before the boundary changed between the two reads
                changed = {"read": int(spec.get("offset") or 0), "moved": True}
            ended = checkpoint.get("last_id")
            if changed and not noted:
                noted = True  # one line a list, whichever of its parts saw it first
                # every record read still syncs; only archiving waits for a read of a collection at rest
                _changed_list(self._provider, path, changed, outcome)

    def iter_collection(
        self, name: str, filter: str | None = None, outcome: FetchOutcome | None = None
    ) -> Iterator[Any]:
        return self.iter_records(name, outcome)


def _changed_list(provider: str, path: str, changed: dict[str, int], outcome: FetchOutcome | None) -> None:
    """A list that changed while it was read (``_changed_while_read``): the fetch is incomplete."""
    if changed.get("moved"):
        what = (
            f"the page after the first {changed['read']:,} did not start with the last one read (records before "
            "it changed)"
        )
    else:
        what = (
            f"the server counted {changed['counted']:,} when the run began and {changed['now']:,} after "
            f"{changed['read']:,} had been read"
        )
    message = (
        f"{provider}'s {path} changed while they were read: {what}, so a record may have moved across a page "
        "boundary unread; this run will not archive anything (the next run reads them again)"
    )
    logger.warning("list changed while read", extra={"list": path, **changed})
    if outcome is None:
        raise ProviderUnavailableError(message)
    if message not in outcome.problems:  # a list served twice is one line
        outcome.mark_incomplete(message)


def assemble_snapshot(run: RunRef) -> FetchResult:
    """Map what the slices read (or, for a Clever events run and a OneRoster CSV bundle, read it now) into
    ``snapshot/<collection>-NNNNN.ndjson.gz`` and ``snapshot/manifest.json``.

    Raises the provider's ``ProviderAuthError`` / ``ProviderUnavailableError`` when nothing usable can
    be read; a page that could not be read leaves the result ``complete=False`` (no archiving).
    """
    reading, plan = _planned_reading(run.district_id, run.run_id)
    ctx, connection = reading.ctx, reading.connection
    if plan is None:
        raise BadInputError("this run's fetch was not planned (no fetch/plan.json)")
    cursor, full_reason = plan.get("cursor"), plan.get("full_reason", "")
    settings = ctx.state.settings_at(run.settings_version)
    limits = settings.limits
    incremental = IncrementalState.from_item(ctx.state.get_item(f"INCREMENTAL#{run.provider}"))
    kind = plan.get("connection")
    with tempfile.TemporaryDirectory() as scratch:
        files_read = kind == "oneroster-csv" and "csv" in plan  # the slices read the bundle's files
        versions = dict(plan.get("bundle_versions") or {})  # the objects the plan read (none: the latest)
        bundle = _download_bundle(ctx, run, Path(scratch), versions) if run.bundle_key and not files_read else None
        provider: RosterProvider
        if kind == "clever":
            lists = _SlicedLists(ctx.store, plan, "Clever")
            night = _read_night(ctx.store, plan["clever"]["events"]) if "events" in plan.get("clever", {}) else None
            size = ctx.config.snapshot_chunk_records
            mapped = _MappedLists(ctx.store, plan, size, night) if plan.get("mapped_in_slices") else None
            pacer = RequestPacer(interval=float(plan.get("interval") or 0.0))
            if "clever" in plan:
                mirror = RunStoreMirror(aws.client("s3"), ctx.config.sync_bucket, run.district_id, run.run_id)
                decided = plan["clever"]
                provider = CleverIncrementalProvider(
                    _clever_client(reading, pacer),
                    mirror,
                    cursor=cursor,
                    full_reason=decided["reason"] or full_reason,
                    roster=lists if decided["reason"] else None,
                    latest=(decided["latest"], decided["note"]) if decided["reason"] else None,
                    mapped=mapped if decided["reason"] or night is not None else None,
                    night=night,
                    night_max_events=_night_max_events(connection, ctx),
                    night_too_large=bool(decided.get("too_large")),
                )
            elif mapped is not None:
                provider = _MappedProvider(mapped)  # type: ignore[assignment]
            else:
                provider = CleverProvider(lists)  # type: ignore[arg-type]
        elif kind == "oneroster-rest":
            oneroster = plan["oneroster"]
            provider = OneRosterRestProvider(
                _SlicedLists(ctx.store, plan, "OneRoster"),  # type: ignore[arg-type]
                since=oneroster["since"],
                started_at=oneroster["started_at"],
            )
        elif files_read:
            provider = oneroster_csv.OneRosterFilesRead(plan["csv"]["layout"], _FilesSliced(ctx.store, plan).entries)
        else:
            provider = build_provider(connection, reading.secret, reading.retry, bundle=bundle, limits=limits)
        result = _write_snapshot(ctx, run, provider, limits)
    if full_reason and result.sync_kind == "full" and not result.full_reason and cursor is not None:
        result.full_reason = full_reason
    if result.sync_kind == "delta" and _reconcile_overdue(settings, incremental):
        result.full_reason = (
            "a full reconcile is due but this run read a delta (a OneRoster delta bundle): upload a bulk bundle "
            "to archive what the deltas missed"
        )
    result.reconcile = (
        bool(full_reason) and settings.incremental.mode != "full" and result.sync_kind == "full" and cursor is not None
    )
    if result.sync_kind == "full" and not result.full_reason and connection.get("provider") == "oneroster-rest":
        result.full_reason = "no cursor yet (the first sync, or no run since the last full read finished)"
    result.incremental_state = incremental.after_run(
        datetime.now(UTC), settings.schedule.timezone, result.sync_kind == "full" and result.complete, result.changes
    ).to_item()
    return result


def _reconcile_overdue(settings: SyncSettings, state: IncrementalState) -> bool:
    return bool(run_kind(settings.incremental, state, datetime.now(UTC), settings.schedule.timezone))


def _download_bundle(ctx: DistrictContext, run: RunRef, scratch: Path, versions: dict[str, str]) -> Path | bytes:
    """The uploaded bundle: a zip's bytes, or the folder holding the uploaded ``manifest.csv`` (the objects
    at the ``versions`` the plan read, when it read them)."""
    key = _check_upload_key(run)
    return download_bundle(aws.client("s3"), ctx.config.sync_bucket, key, scratch, versions=versions)


@contextlib.contextmanager
def _bundle_source(
    ctx: DistrictContext, key: str, versions: dict[str, str], only: set[str] | None = None
) -> Iterator[Any]:
    """An uploaded bundle to read its files from: a zip where it lies in S3 (its members' bytes in ranged
    requests, ``open_bundle_object``), or a folder upload's CSV files (``only``: these) in a scratch folder.
    ``versions`` (key → version id): the objects are read at these versions; those read are added."""
    s3 = aws.client("s3")
    if key.lower().endswith(".zip"):
        with open_bundle_object(s3, ctx.config.sync_bucket, key, versions) as zipped:
            yield zipped
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield download_bundle(s3, ctx.config.sync_bucket, key, Path(scratch), only=only, versions=versions)


def _check_upload_key(run: RunRef) -> str:
    """The run's bundle key, refused unless it is in the district's own upload folder."""
    key = run.bundle_key or ""
    if not key.startswith(f"{UPLOAD_PREFIX}{run.district_id}/"):
        raise BadInputError("the bundle was not uploaded to this district's folder")
    return key


def _write_snapshot(
    ctx: DistrictContext, run: RunRef, provider: RosterProvider, limits: LimitSettings | None = None
) -> FetchResult:
    limits = limits or LimitSettings()
    size = ctx.config.snapshot_chunk_records
    writers = {c: ctx.store.chunk_writer(f"snapshot/{c}", size) for c in SNAPSHOT_COLLECTIONS}
    errors: ChunkWriter = ctx.store.chunk_writer("snapshot/errors", size)
    outcome = FetchOutcome()
    for item in provider.fetch(outcome):
        if isinstance(item, PremappedChunks):  # mapped by a slice: its chunks join the stream where they fall
            (errors if item.collection == "errors" else writers[item.collection]).append_chunks(item.keys, item.count)
            continue
        collection, value = _snapshot_collection(item, limits)
        (errors if collection == "errors" else writers[collection]).write(value)

    manifest = {c: w.close() for c, w in writers.items()} | {"errors": errors.close()}
    key = ctx.store.put_json("snapshot/manifest.json", manifest)
    records = {c: w.count for c, w in writers.items()}
    logger.info(
        "roster fetched",
        extra={"run_id": run.run_id, "records": records, "errors": errors.count, "complete": outcome.complete},
    )
    return FetchResult(
        snapshot_manifest_key=key,
        complete=outcome.complete,
        delta=outcome.delta,
        cursor=outcome.cursor,
        sync_kind="delta" if outcome.delta and outcome.sync_kind == "full" else outcome.sync_kind,
        full_reason=outcome.full_reason,
        touched_only=outcome.touched_only,
        tonight_known=outcome.tonight_known,
        changes=outcome.changes if outcome.changes is not None else (records_total(records) if outcome.delta else None),
        problems=outcome.problems,
        records=records,
        error_count=errors.count,
    )


def records_total(records: dict[str, int]) -> int:
    """Records a delta sent (what the quietest night is judged by)."""
    return sum(n for name, n in records.items() if name not in ("touched",))
