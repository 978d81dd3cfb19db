"""Incremental runs and the periodic full reconcile, for every provider that can send only what changed.

Clever events, OneRoster REST ``dateLastModified`` and OneRoster CSV delta bundles all read less than the
whole roster, so each can miss something: an event Clever never sent, a record whose ``dateLastModified``
was not bumped, a delta bundle that left a deletion out. A **reconcile** is a full read on a schedule
(``incremental.reconcile_every_days``, default 7, on ``incremental.reconcile_day``, default the quietest
night) that archives what the deltas missed, under the same deletion threshold as any run.

``IncrementalState`` is what the decision needs, kept per provider in the sync-state table
(``INCREMENTAL#<provider>``), written by the report step once a run did not fail (as the cursor is):
when the last full read was, and the changes each weekday brought (to find the quietest night).
``run_kind`` is pure.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from rostersync.settings import IncrementalSettings

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_RECONCILE_DAY = "saturday"  # Friday night's run: the school week's quietest, until runs show otherwise
HISTORY_WEEKS = 4  # changes remembered per weekday


@dataclass
class IncrementalState:
    """When a provider's roster was last read whole, and how many changes each weekday's runs brought."""

    last_full_at: str = ""  # ISO instant of the last full read that did not fail
    changes_by_weekday: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> IncrementalState:
        item = item or {}
        history = item.get("changes_by_weekday") or {}
        return cls(
            last_full_at=str(item.get("last_full_at") or ""),
            changes_by_weekday={
                str(day): [int(n) for n in counts][-HISTORY_WEEKS:]
                for day, counts in history.items()
                if day in WEEKDAYS and isinstance(counts, list)
            },
        )

    def to_item(self) -> dict[str, Any]:
        return {"last_full_at": self.last_full_at, "changes_by_weekday": self.changes_by_weekday}

    def quietest_day(self) -> str:
        """The weekday whose runs brought the fewest changes on average; Saturday until every weekday that
        has runs has been seen at least once and some weekday is known."""
        averages = {day: sum(counts) / len(counts) for day, counts in self.changes_by_weekday.items() if counts}
        if len(averages) < 2:
            return DEFAULT_RECONCILE_DAY
        return min(WEEKDAYS, key=lambda day: (averages.get(day, float("inf")), WEEKDAYS.index(day)))

    def after_run(self, now: datetime, timezone: str, full: bool, changes: int | None) -> IncrementalState:
        """The state once a run that did not fail ended: a full read moves ``last_full_at``; an incremental
        run's change count joins its weekday's history."""
        history = {day: list(counts) for day, counts in self.changes_by_weekday.items()}
        if changes is not None and not full:
            day = WEEKDAYS[now.astimezone(ZoneInfo(timezone)).weekday()]
            history[day] = [*history.get(day, []), changes][-HISTORY_WEEKS:]
        return IncrementalState(
            last_full_at=now.isoformat(timespec="seconds") if full else self.last_full_at,
            changes_by_weekday=history,
        )


def run_kind(settings: IncrementalSettings, state: IncrementalState, now: datetime, timezone: str) -> str:
    """Why this run must read the whole roster although the provider could send only changes, or "".

    The settings ask for full runs; or a reconcile is due: it is the reconcile day (and no full read
    happened in the last 20 hours), or the last full read is ``reconcile_every_days`` old or more (a
    reconcile day that was skipped, the summer pause, a schedule that is not weekly).
    """
    if settings.mode == "full":
        return "the district's settings ask for full runs (incremental.mode = full)"
    if not state.last_full_at:
        return ""  # the provider has no cursor either: its own reason says so
    try:
        last_full = datetime.fromisoformat(state.last_full_at)
    except ValueError:
        return "the date of the last full read could not be read: a full reconcile"
    local = now.astimezone(ZoneInfo(timezone))
    day = settings.reconcile_day if settings.reconcile_day != "auto" else state.quietest_day()
    age = now - last_full
    if age >= timedelta(days=settings.reconcile_every_days):
        return (
            f"the periodic full reconcile: the last full read was {age.days} days ago "
            f"(incremental.reconcile_every_days = {settings.reconcile_every_days})"
        )
    if WEEKDAYS[local.weekday()] == day and age >= timedelta(hours=20) and settings.reconcile_every_days <= 7:
        how = "the quietest night" if settings.reconcile_day == "auto" else "incremental.reconcile_day"
        return f"the weekly full reconcile ({day}, {how})"
    return ""


class RunStoreMirror:
    """``RosterMirror`` in S3: ``runs/<district>/<run>/mirror/<collection>-NNNNN.ndjson.gz`` and
    ``mirror/manifest.json`` (written last: a mirror without it is not whole and is never used). A
    collection may also be chunks the run already holds as Clever sent them (Fetch's slices,
    ``fetch/<list>/…``), named in the manifest rather than copied (``adopt``).

    Reads only the district's own runs (``store_of(run_id)`` builds stores under its prefix).
    """

    def __init__(self, s3: Any, bucket: str, district_id: str, run_id: str, chunk_records: int = 20_000) -> None:
        from rostersync.storage import RunStore

        self._s3 = s3
        self._bucket = bucket
        self._district = district_id
        self.run_id = run_id
        self._store = RunStore(s3, bucket, district_id, run_id)
        self._chunk = chunk_records
        self._writers: dict[str, Any] = {}
        self._adopted: dict[str, list[str]] = {}
        self._clean: dict[str, bool] = {}
        self._manifests: dict[str, dict[str, Any]] = {}

    def _manifest(self, run_id: str) -> dict[str, Any] | None:
        """Run ``run_id``'s mirror manifest, read once (a sealed mirror's manifest never changes)."""
        from rostersync.storage import RunStore

        if run_id in self._manifests:
            return self._manifests[run_id]
        store = RunStore(self._s3, self._bucket, self._district, run_id)
        try:
            manifest = store.get_json(store.key("mirror/manifest.json"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
                return None  # expired with the run's files (or never written: the run did not finish it)
            raise
        if not isinstance(manifest, dict):
            return None
        self._manifests[run_id] = manifest
        return manifest

    def has(self, run_id: str) -> bool:
        return self._manifest(run_id) is not None

    def read(self, run_id: str, collection: str) -> Iterator[dict[str, Any]]:
        for key in self.keys(run_id, collection) or []:
            yield from self.read_chunk(run_id, key)

    def keys(self, run_id: str, collection: str) -> list[str] | None:
        """The chunks of one collection of run ``run_id``'s mirror, in order (only that run's own keys);
        None when the mirror does not name the collection at all."""
        manifest = self._manifest(run_id) or {}
        keys = manifest.get("collections", {}).get(collection)
        if not isinstance(keys, list):
            return None
        return [key for key in keys if isinstance(key, str) and self._of_run(run_id, key)]

    def read_chunk(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """The items of one chunk of run ``run_id``'s mirror, in order."""
        return self.chunk_items(self.chunk_body(run_id, key))

    def chunk_body(self, run_id: str, key: str) -> bytes:
        """One chunk of run ``run_id``'s mirror as stored (gzip): ``chunk_items`` reads its items."""
        if not self._of_run(run_id, key):
            raise ValueError(f"{key} is not a chunk of run {run_id}'s mirror")  # never another district's keys
        return bytes(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())

    @staticmethod
    def chunk_items(body: bytes) -> list[dict[str, Any]]:
        """The items of a mirror chunk's body (``chunk_body``), in order."""
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as lines:
            return [json.loads(line) for line in lines if line.strip()]

    def _of_run(self, run_id: str, key: str) -> bool:
        return key.startswith(f"runs/{self._district}/{run_id}/") and ".." not in key

    def writer(self, collection: str) -> Any:
        writer = self._store.chunk_writer(f"mirror/{collection}", self._chunk)
        self._writers[collection] = writer
        return writer

    def adopt(self, collection: str, keys: list[str], clean: bool | None = None) -> None:
        """Make ``keys`` (this run's chunks of Clever's objects, as sent) the mirror's ``collection``;
        ``clean``: whether every item of it was a record with an id of its own (no item without data or
        id, no unusable id, no id twice), as its mapping found (None: not known)."""
        self._adopted[collection] = [key for key in keys if self._store.owns(key)]
        if clean is not None:
            self._clean[collection] = clean

    def clean(self, run_id: str, collection: str) -> bool:
        """Whether run ``run_id``'s mirror says its ``collection`` is clean (``adopt``); False when unknown."""
        manifest = self._manifest(run_id) or {}
        return manifest.get("clean", {}).get(collection) is True

    def seal(self, event_id: str) -> None:
        collections = {name: writer.close() for name, writer in self._writers.items()} | self._adopted
        manifest: dict[str, Any] = {"event": event_id, "collections": collections}
        if self._clean:
            manifest["clean"] = self._clean
        self._store.put_json("mirror/manifest.json", manifest)


KIND_WORDS = {"full": "full read", "events": "Clever events", "delta": "delta"}


def describe_run(fetch: Any, summary: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The report's ``sync`` section and notes: which kind of run it was and why, and for a reconcile what
    it caught that the deltas missed.

    ``fetch`` is the run's ``FetchResult`` (None when Fetch never finished).
    """
    if fetch is None:
        return {"kind": "none", "reason": "the roster was not fetched"}, []
    summary = summary or {}
    caught = summary.get("reconcile_caught") if fetch.reconcile else None
    section: dict[str, Any] = {
        "kind": "reconcile" if fetch.reconcile else fetch.sync_kind,
        "reason": fetch.full_reason,
        "changes": fetch.changes,
    }
    notes: list[str] = []
    if fetch.sync_kind == "events":
        untouched = summary.get("untouched_absent") or {}
        notes.append(
            f"Incremental run from Clever's events: {fetch.changes or 0:,} changed objects applied; only what the "
            "events named can be archived."
            + (
                f" {sum(untouched.values()):,} records absent from the roster that no event named were left for "
                "the next full reconcile."
                if untouched
                else ""
            )
        )
    elif fetch.sync_kind == "delta":
        notes.append("Incremental run (a delta): only what changed was read; only deleted records are archived.")
        if fetch.full_reason:
            notes.append(fetch.full_reason)
    elif fetch.reconcile and caught is None:
        notes.append(
            f"Full reconcile ({fetch.full_reason}): the whole roster was read; what it wrote and archived is "
            "tonight's changes together with what the deltas missed (this provider's deltas cannot tell them apart)."
        )
    elif fetch.reconcile:
        found = {kind: counts for kind, counts in caught.items() if counts}
        section["caught"] = found
        what = "; ".join(
            f"{kind}: " + ", ".join(f"{n:,} {action.replace('_', ' ')}" for action, n in sorted(counts.items()))
            for kind, counts in found.items()
        )
        notes.append(
            f"Full reconcile ({fetch.full_reason}): the whole roster was read. "
            + (
                f"It caught what the incremental runs missed: {what}."
                if found
                else "The incremental runs had missed nothing."
            )
        )
    elif fetch.full_reason:
        notes.append(f"Full read: {fetch.full_reason}.")
    return section, notes
