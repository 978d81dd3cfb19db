"""Match the fetched roster against the directory and write the plan (DESIGN step 2, §3)."""

from __future__ import annotations

import contextvars
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from rostersync import aws
from rostersync.contracts import (
    FetchResult,
    MatchPartitionRequest,
    MatchPrepared,
    MatchResult,
    RunRef,
    SyncState,
)
from rostersync.directory.keys import COLLECTION_OF_KIND, COLLECTIONS, MATCH_BUCKETS, check_match_partitions
from rostersync.directory.repository import (
    UNLINKED_HELD_MAX,
    DirectoryRecord,
    DirectoryRepository,
    IndexEntry,
    PackedIndex,
)
from rostersync.domain.records import DeletedRecord, Kind, RecordError, RosterRecord
from rostersync.errors import BadInputError
from rostersync.lifecycle.holds import kept_ids
from rostersync.matching.partition import (
    PAIR_COLLECTIONS,
    PAIR_KINDS,
    PEOPLE_FOLDER,
    PeopleFacts,
    merge_summaries,
    partition_folder,
    partition_of,
    partition_planner,
    people_facts,
    plan_people_and_route_pairs,
    routed_pairs,
    settle_deferred_guardians,
    with_contexts,
)
from rostersync.matching.people import CandidateIndex, prepare_candidate
from rostersync.matching.plan import ArchiveCandidate, PlanLine, PlannedWrite, SyncPlanner, index_by_provider_id
from rostersync.matching.rekey import classroom_key, counted_id_change
from rostersync.observability import logger
from rostersync.reports.details import display_name, field_changes, line_details
from rostersync.settings import SyncSettings
from rostersync.steps.context import DistrictContext
from rostersync.storage import ChunkWriter

_record = TypeAdapter(RosterRecord)


class _ProviderId(TypedDict):
    provider_id: str


# A snapshot record's provider id alone: pydantic parses the line without building the rest of it.
_provider_id = TypeAdapter(_ProviderId)


def _active_managed(entry: Any) -> bool:
    return bool(entry.managed_by_sync) and entry.status == "active"


def _rekey_indexes(
    ctx: DistrictContext, provider: str, index: dict[str, Any], manifest: dict[str, list[str]], delta: bool
) -> tuple[CandidateIndex | None, dict[str, list[IndexEntry]] | None]:
    """When the roster's ids of people or sections were replaced wholesale (a provider re-key), the
    records about to be archived, by district ids, for the planner to link the new ids to."""
    if delta:
        return None, None
    found: list[Any] = [None, None]
    for position, (collection, snapshot) in enumerate(
        (("people", ("people", "guardians")), ("classrooms", ("classrooms",)))
    ):
        entries = index[collection]

        def is_managed(provider_id: str, entries: dict[str, Any] = entries) -> bool:
            entry = entries.get(provider_id)
            return entry is not None and _active_managed(entry)

        def roster_ids(snapshot: tuple[str, ...] = snapshot) -> Iterator[str]:
            for name in snapshot:
                for line in ctx.store.read_all_lines(manifest.get(name, [])):
                    yield _provider_id.validate_json(line)["provider_id"]

        # Counted as the ids pass: three sets of every id (the roster's, the managed and the known ones)
        # would hold ≈ 0.5 GB at NYC's 3.1 M people, every night, for a check that is rarely true.
        managed = sum(1 for entry in entries.values() if _active_managed(entry))
        if not managed:
            continue
        change = counted_id_change(managed, roster_ids(), is_managed, entries.__contains__)
        if not change.is_rekey():
            continue
        roster = set(roster_ids())  # a re-key night: the ids again, to name the records they left
        gone = {pid for pid in entries if is_managed(pid) and pid not in roster}
        records = [r for r in ctx.directory.records(collection) if r.provider_ids.get(provider) in gone]
        logger.info("provider re-key", extra={"collection": collection, "gone": change.gone, "new": change.new})
        if position == 0:
            found[0] = CandidateIndex.from_records(records)
        else:
            by_key: dict[str, list[IndexEntry]] = {}
            for record in records:
                key = classroom_key(
                    str(record.fields.get("school", "")),
                    str(record.fields.get("sis_id", "")),
                    str(record.fields.get("name", "")),
                )
                by_key.setdefault(key, []).append(record.index_entry())
            found[1] = by_key
    return found[0], found[1]


_CHANGED = ("updated", "linked", "restored")
_BATCH = 100
_Described = list[tuple[dict[str, Any], dict[str, Any]]]  # lines (their JSON) with their records' new fields


class BeforeImages:
    """Gives the report lines of updated, linked and restored records their before → after.

    The planner knows a record's new fields, not its old ones (its index holds hashes only, no personal
    data); the before-image is read here, 100 records a BatchGetItem, several at once, and travels with the
    run's lines in S3 to the report's CSV files. Never logged. Lines of other actions pass straight through.

    The reads run behind the planner: a batch of lines is read in a thread of its own while the planner
    goes on, and its lines are passed on (from the planner's thread: the sink is not shared) once at most
    ``AHEAD`` batches are reading.

    With ``defer``, nothing is read here: each line that needs its before-image is handed to ``defer`` with
    its new fields (``{"line": …, "after": …}``), and whoever takes it up gives it to ``describe`` of a
    ``BeforeImages`` of its own. Match's people phase defers its lines to the partitions: a first sync that
    links the accounts a district already had has a before-image for every person (NYC: 3.1 M,
    ≈ 31,000 BatchGetItems), read N ways in the partitions rather than in the people phase's one invocation.
    """

    AHEAD = 2

    def __init__(
        self,
        directory: DirectoryRepository,
        school_names: dict[str, str],
        sink: Callable[[dict[str, Any]], None],
        defer: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._directory = directory
        self._school_names = school_names
        self._sink = sink
        self._defer = defer
        # 100 records a BatchGetItem, as many at once as the repository sends
        self._batch = _BATCH * max(1, directory.threads)
        self._after: dict[str, dict[str, Any]] = {}
        self._waiting: _Described = []
        self._reading: deque[tuple[_Described, Future[dict[str, DirectoryRecord]]]] = deque()
        self._reader: ThreadPoolExecutor | None = None

    def write(self, planned: PlannedWrite) -> None:
        """Note a planned update's new fields (its line follows)."""
        if planned.op != "create":
            self._after[planned.record.id] = planned.record.fields

    def line(self, line: PlanLine) -> None:
        data = line.to_json()
        after = self._after.pop(line.id, None) if line.action in _CHANGED else None
        if after is None:
            self._sink(data)
        elif self._defer is not None:
            self._defer({"line": data, "after": after})
        else:
            self.describe(data, after)

    def describe(self, line: dict[str, Any], after: dict[str, Any]) -> None:
        """Read the before-image of a line's record (``line``: its JSON) and pass it on with its changes."""
        self._waiting.append((line, after))
        if len(self._waiting) >= self._batch:
            self._send()

    def flush(self) -> None:
        """Read every waiting line's before-image and pass the lines on (a failed read is raised here)."""
        if self._waiting:
            self._send()
        try:
            while self._reading:
                self._pass_on_oldest()
        finally:
            if self._reader is not None:
                self._reader.shutdown(wait=True, cancel_futures=True)
                self._reader = None

    def _send(self) -> None:
        """Start reading the waiting lines' before-images; pass on the oldest batch's lines beyond ``AHEAD``."""
        lines, self._waiting = self._waiting, []
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="before-images")
        # in a copy of the caller's context: the reads are the invocation's, under its role (rostersync.aws)
        self._reading.append((lines, self._reader.submit(contextvars.copy_context().run, self._read, lines)))
        while len(self._reading) > self.AHEAD:
            self._pass_on_oldest()

    def _read(self, lines: _Described) -> dict[str, DirectoryRecord]:
        by_kind: dict[str, list[str]] = {}
        for line, _ in lines:
            by_kind.setdefault(line["kind"], []).append(line["id"])
        before: dict[str, DirectoryRecord] = {}
        for kind, ids in by_kind.items():
            before.update(self._directory.get_many(Kind(kind), ids))
        return before

    def _pass_on_oldest(self) -> None:
        lines, reading = self._reading.popleft()
        before = reading.result()
        for line, after in lines:
            record = before.get(line["id"])
            if record is not None:
                # A record the sync takes over showed the product's values; one it manages, its synced fields.
                old = record.effective_fields() if line["action"] == "linked" else record.fields
                changes = field_changes(old, after, self._school_names)
                if changes:
                    line["changes"] = changes
            self._sink(line)


def described_candidates(
    directory: DirectoryRepository,
    school_names: dict[str, str],
    candidates: list[ArchiveCandidate],
    leaving: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """The archive candidates with their name, district id, school and grade (for the report's archived and
    would-archive lines), read 100 a BatchGetItem; ``leaving`` counts the students, teachers and classrooms
    leaving each school (for the district's index page)."""
    for start in range(0, len(candidates), _BATCH):
        group = candidates[start : start + _BATCH]
        found: dict[str, Any] = {}
        for kind in dict.fromkeys(c.kind for c in group):
            found.update(directory.get_many(kind, [c.id for c in group if c.kind is kind]))
        # An enrollment or guardian link is named by its people and classroom ("Ava Li in Algebra 1").
        refs = {
            kind: [str(r.fields.get(f, "")) for r in found.values() if r.kind in _PAIRS for f in fields]
            for kind, fields in ((Kind.STUDENTS, ("person", "guardian", "student")), (Kind.CLASSROOMS, ("classroom",)))
        }
        names = {
            i: display_name(r.fields)
            for kind, ids in refs.items()
            for i, r in directory.get_many(kind, [i for i in ids if i]).items()
        }
        for candidate in group:
            data: dict[str, Any] = candidate.to_json()
            record = found.get(candidate.id)
            if record is not None:
                data["name"] = display_name(record.fields) or _pair_name(record.fields, names)
                data.update({k: v for k, v in line_details(candidate.kind, record.fields, school_names).items() if v})
                if leaving is not None and candidate.kind in (Kind.STUDENTS, Kind.TEACHERS, Kind.CLASSROOMS):
                    ids = record.fields.get("schools") if "schools" in record.fields else [record.fields.get("school")]
                    for school in ids or ():
                        leaving[str(school)] = leaving.get(str(school), 0) + 1
            yield data


_PAIRS = (Kind.ENROLLMENTS, Kind.GUARDIAN_LINKS)


def _pair_name(fields: dict[str, Any], names: dict[str, str]) -> str:
    if "classroom" in fields:
        first, word, second = fields.get("person"), "in", fields.get("classroom")
    else:
        first, word, second = fields.get("guardian"), "guardian of", fields.get("student")
    one, two = names.get(str(first or "")), names.get(str(second or ""))
    return f"{one} {word} {two}" if one and two else ""


@dataclass
class _DirectoryRead:
    """What Match reads of the directory's schools, classrooms and people before it plans: each collection's
    index by provider id; the schools whole, once (their names, their index, and the product's own schools
    all come from that one read); and the index entries of the people without a link to the provider, whose
    records person matching then reads (``DirectoryRepository.unlinked_of``)."""

    index: dict[str, Any]
    schools: list[DirectoryRecord]
    # kind and id of each, or None when there were more than ``UNLINKED_HELD_MAX`` (read by the Query then)
    unlinked_people: list[tuple[Kind, str]] | None
    people_indexed: int

    @classmethod
    def read(cls, ctx: DistrictContext, provider: str, collections: Iterable[str]) -> _DirectoryRead:
        schools = list(ctx.directory.records("schools"))
        index: dict[str, Any] = {"schools": index_by_provider_id((r.index_entry() for r in schools), provider)}
        people = PackedIndex(provider)  # one entry per person of the district: held packed
        unlinked: list[tuple[Kind, str]] | None = []
        indexed = 0
        for provider_id, held in ctx.directory.held_index("people", provider):
            indexed += 1
            if provider_id is not None:
                people.add_held(provider_id, held)
            elif unlinked is not None:
                unlinked.append((held.kind, held.id))  # type: ignore[union-attr]
                if len(unlinked) > UNLINKED_HELD_MAX:
                    unlinked = None
        index["people"] = people
        for collection in collections:
            if collection not in index:
                index[collection] = index_by_provider_id(ctx.directory.index(collection), provider)
        return cls(index, schools, unlinked, indexed)


@dataclass
class _PlanInputs:
    """What a phase of Match that plans people reads of the district and the run besides the index."""

    settings: SyncSettings
    # The product's accounts nobody linked to this provider yet: person matching looks among them.
    candidates: CandidateIndex
    school_names: dict[str, str]
    product_schools: dict[str, str]
    rekey_people: CandidateIndex | None
    rekey_classrooms: dict[str, list[IndexEntry]] | None
    touched: dict[str, set[str]]

    @classmethod
    def read(
        cls,
        ctx: DistrictContext,
        run: RunRef,
        fetch: FetchResult,
        manifest: dict[str, list[str]],
        directory: _DirectoryRead,
    ) -> _PlanInputs:
        settings = ctx.state.settings_at(run.settings_version)
        # made into candidates as they are read: on a first sync, every account the product has
        candidates = CandidateIndex.from_prepared(
            ctx.directory.unlinked_of(
                "people", run.provider, directory.unlinked_people, directory.people_indexed, prepare_candidate
            )
        )
        school_names = {r.id: str(r.effective_fields().get("name", "")) for r in directory.schools}
        product_schools = {
            r.id: str(r.effective_fields().get("name", ""))
            for r in directory.schools
            if run.provider not in r.provider_ids and r.status == "active"
        }
        rekey_people, rekey_classrooms = _rekey_indexes(ctx, run.provider, directory.index, manifest, fetch.delta)
        touched = _touched(ctx, manifest)
        return cls(settings, candidates, school_names, product_schools, rekey_people, rekey_classrooms, touched)


@dataclass
class _PlanningPhase:
    """A phase of Match planned by one ``SyncPlanner``: the planner, the chunk writers of its plan in the run's
    files (``<folder>/writes``, ``/lines``, ``/errors``) and the reader of the snapshot's records."""

    planner: SyncPlanner
    writes: ChunkWriter
    lines: ChunkWriter
    errors: ChunkWriter
    before_images: BeforeImages
    records: Callable[[str], Iterator[Any]]
    records_and_lines: Callable[[str], Iterator[tuple[Any, bytes]]]  # each with the snapshot line it was read from

    @classmethod
    def start(
        cls,
        ctx: DistrictContext,
        run: RunRef,
        fetch: FetchResult,
        manifest: dict[str, list[str]],
        folder: str,
        index: dict[str, Any],
        inputs: _PlanInputs,
        guardians_of_touched: set[str] | None = None,
        defer: Callable[[dict[str, Any]], None] | None = None,
    ) -> _PlanningPhase:
        store = ctx.store
        writes = store.chunk_writer(f"{folder}/writes", ctx.config.plan_chunk_records)
        lines = store.chunk_writer(f"{folder}/lines", 50_000)
        errors = store.chunk_writer(f"{folder}/errors", 50_000)
        before_images = BeforeImages(ctx.directory, inputs.school_names, lines.write, defer)

        def write(planned: PlannedWrite) -> None:
            before_images.write(planned)
            writes.write(planned.to_json())

        planner = SyncPlanner(
            run.district_id,
            run.provider,
            index,
            delta=fetch.delta,
            complete=fetch.complete,
            write=write,
            line=before_images.line,
            error=errors.write,
            settings=inputs.settings,
            candidates=inputs.candidates,
            product_schools=inputs.product_schools,
            school_names=inputs.school_names,
            rekey_people=inputs.rekey_people,
            rekey_classrooms=inputs.rekey_classrooms,
            touched=inputs.touched,
            touched_only=fetch.touched_only,
            tonight_known=fetch.tonight_known,
            guardians_of_touched=guardians_of_touched,
        )

        def records_and_lines(collection: str) -> Iterator[tuple[Any, bytes]]:
            for line in store.read_all_lines(manifest.get(collection, [])):
                yield _record.validate_json(line), line  # parsed and validated in one pass

        def records(collection: str) -> Iterator[Any]:
            return (record for record, _ in records_and_lines(collection))

        return cls(planner, writes, lines, errors, before_images, records, records_and_lines)


def match_roster_single_pass(state: SyncState) -> MatchResult:
    """Plan the run's writes and archive candidates in one invocation; write them as chunks with a manifest.

    The reference the partitioned Match (``match_people`` → ``match_partition`` × N → ``combine_match``) is
    held to by the tests; the state machine runs the partitioned one.
    """
    run, fetch = state.run_ref(), state.fetch
    if fetch is None:
        raise BadInputError("Match needs the result of Fetch")
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    store = ctx.store
    if not store.owns(fetch.snapshot_manifest_key):
        raise BadInputError("the snapshot manifest does not belong to this run")
    manifest: dict[str, list[str]] = store.get_json(fetch.snapshot_manifest_key)

    directory = _DirectoryRead.read(ctx, run.provider, COLLECTIONS)
    index = directory.index
    inputs = _PlanInputs.read(ctx, run, fetch, manifest, directory)
    settings, candidates, school_names = inputs.settings, inputs.candidates, inputs.school_names
    phase = _PlanningPhase.start(ctx, run, fetch, manifest, "plan", index, inputs)
    planner, writes, lines, errors, records = phase.planner, phase.writes, phase.lines, phase.errors, phase.records
    for data in store.read_all(manifest.get("errors", [])):
        planner.record_error(RecordError.model_validate(data))
    for data in store.read_all(manifest.get("deleted", [])):
        planner.record_deleted(DeletedRecord.model_validate(data))
    archive = store.chunk_writer("plan/archive", 50_000)
    candidates_to_archive = planner.plan(records)
    phase.before_images.flush()
    # Records whose archiving the admin discarded stay (lifecycle.holds): not candidates, a skipped line each.
    kept = kept_ids(ctx.state, aws.client("s3"), ctx.config.sync_bucket)
    kept_by_admin: Counter[str] = Counter()
    to_archive: list[ArchiveCandidate] = []
    for candidate in candidates_to_archive:
        if candidate.id in kept:
            planner.summary.archive_candidates[candidate.kind] -= 1
            kept_by_admin[candidate.kind.value] += 1
            reason = f"kept: the admin discarded its archiving (run {kept[candidate.id]})"
            lines.write(PlanLine(candidate.kind, "skipped", candidate.id, candidate.provider_id, "", reason).to_json())
            continue
        to_archive.append(candidate)
    leaving: dict[str, int] = {}
    for data in described_candidates(ctx.directory, school_names, to_archive, leaving):
        archive.write(data)

    chunk_keys = writes.close()
    plan_manifest_key = store.put_json("plan/manifest.json", [{"chunk_key": k} for k in chunk_keys])
    synced_schools = {
        e.id
        for e in index["schools"].values()
        if e.status == "active" and (not settings.schools_in_scope or e.id in settings.schools_in_scope)
    }
    not_in_sync, in_schools = candidates.not_in_sync(synced_schools)
    summary = planner.summary.to_json()
    summary.setdefault("findings", {}).update(
        {"students_not_in_sync": not_in_sync, "schools_with_students_not_in_sync": in_schools}
    )
    for school, n in leaving.items():
        summary["schools"].setdefault(school, {})["leaving"] = n
    for school, counts in summary["schools"].items():
        counts["name"] = school_names.get(school, school)
    summary |= {
        "lines_keys": lines.close(),
        "errors_keys": errors.close(),
        "archive_keys": archive.close(),
        "kept_by_admin": dict(kept_by_admin),
    }
    summary_key = store.put_json("plan/summary.json", summary)
    logger.info(
        "plan written",
        extra={
            "run_id": run.run_id,
            "writes": writes.count,
            "chunks": len(chunk_keys),
            "errors": errors.count,
            "settings_version": run.settings_version,
            "match_candidates": len(candidates),
        },
    )
    return MatchResult(
        plan_manifest_key=plan_manifest_key,
        plan_chunks=len(chunk_keys),
        writes=writes.count,
        summary_key=summary_key,
    )


# -- Match in partitions (matching.partition) ------------------------------------------------------

_PAIR_CHUNK = 2_000  # records per routed-pairs object: N writers are open at once in the people phase
# lines of the people phase per object whose before-images a partition reads (NYC's onboarding night:
# 3.1 M lines, 310 objects, about 5 for each of 64 partitions)
_CHANGED_CHUNK = 10_000
# The sync-state item that says every enrollment and guardian link of the district linked to a provider
# carries its ``match_bucket``: from then on the partitions read their share from the ByMatchBucket index.
# Until then (items written before the index existed) they read the table and keep their share, and a run
# whose partitions found no item without its bucket writes it (Write report: ``summary["pair_index_ready"]``).
PAIR_INDEX = "PAIR_INDEX"


def pair_index_ready(ctx: DistrictContext) -> bool:
    """Whether the district's partitions may read their share from the ByMatchBucket index."""
    item = ctx.state.get_item(PAIR_INDEX)
    return item is not None and int(item.get("buckets", 0)) == MATCH_BUCKETS


def _snapshot(ctx: DistrictContext, fetch_manifest_key: str) -> dict[str, list[str]]:
    if not ctx.store.owns(fetch_manifest_key):
        raise BadInputError("the snapshot manifest does not belong to this run")
    manifest: dict[str, list[str]] = ctx.store.get_json(fetch_manifest_key)
    return manifest


def _touched(ctx: DistrictContext, manifest: dict[str, list[str]]) -> dict[str, set[str]]:
    touched: dict[str, set[str]] = {"people": set(), "classrooms": set()}
    for data in ctx.store.read_all(manifest.get("touched", [])):
        touched.setdefault(str(data["collection"]), set()).add(str(data["provider_id"]))
    return touched


def match_people(state: SyncState) -> MatchPrepared:
    """Match's people phase: plan schools, classrooms, people and guardians as the single pass does, and
    route every enrollment and guardian link, its references resolved, to its partition (S3)."""
    run, fetch = state.run_ref(), state.fetch
    if fetch is None:
        raise BadInputError("Match needs the result of Fetch")
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    store = ctx.store
    manifest = _snapshot(ctx, fetch.snapshot_manifest_key)
    partitions = ctx.config.match_partitions
    try:
        check_match_partitions(partitions)
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    directory = _DirectoryRead.read(ctx, run.provider, ("schools", "classrooms", "people"))
    index: dict[str, Any] = directory.index | {c: {} for c in PAIR_COLLECTIONS}
    inputs = _PlanInputs.read(ctx, run, fetch, manifest, directory)
    settings, candidates, school_names = inputs.settings, inputs.candidates, inputs.school_names
    touched = inputs.touched
    # A provider re-key (a rare night: the district re-rostered) links enrollments and links through the
    # records their old ids were made of, across the district: this phase plans them itself.
    rekey = inputs.rekey_people is not None or inputs.rekey_classrooms is not None
    guardians_of_touched: set[str] | None = None
    if rekey:
        index |= {c: index_by_provider_id(ctx.directory.index(c), run.provider) for c in PAIR_COLLECTIONS}
    elif touched["people"] and (fetch.touched_only or fetch.tonight_known):
        guardians_of_touched = set()
        for entry in ctx.directory.index("guardian_links"):
            guardian, _, student = entry.provider_ids.get(run.provider, "").partition(":")
            if student in touched["people"]:
                guardians_of_touched.add(guardian)
    name = PEOPLE_FOLDER
    # the lines whose before-images are read by the partitions (BeforeImages), a share of the files each
    changed = store.chunk_writer(f"{name}/changed", _CHANGED_CHUNK)
    phase = _PlanningPhase.start(ctx, run, fetch, manifest, name, index, inputs, guardians_of_touched, changed.write)
    planner, writes, lines, errors = phase.planner, phase.writes, phase.lines, phase.errors
    routed = [store.chunk_writer(f"{partition_folder(p)}/pairs", _PAIR_CHUNK) for p in range(partitions)]
    plan_people_and_route_pairs(
        planner,
        phase.records,
        routed,
        errors=(RecordError.model_validate(data) for data in store.read_all(manifest.get("errors", []))),
        deleted=(DeletedRecord.model_validate(data) for data in store.read_all(manifest.get("deleted", []))),
        rekey=rekey,
        pair_lines=phase.records_and_lines,
    )
    candidates_out = store.chunk_writer(f"{name}/candidates", 50_000)
    for candidate in planner.archive_candidates():
        candidates_out.write(candidate.to_json())
    deferred = store.chunk_writer(f"{name}/deferred-guardians", 50_000)
    for candidate in planner.deferred_guardians:
        deferred.write(candidate.to_json())
    phase.before_images.flush()
    synced_schools = {
        e.id
        for e in index["schools"].values()
        if e.status == "active" and (not settings.schools_in_scope or e.id in settings.schools_in_scope)
    }
    not_in_sync, in_schools = candidates.not_in_sync(synced_schools)
    summary = planner.summary.to_json()
    summary["findings"].update({"students_not_in_sync": not_in_sync, "schools_with_students_not_in_sync": in_schools})
    people = {
        "provider": run.provider,
        "settings_version": run.settings_version,
        "snapshot_manifest_key": fetch.snapshot_manifest_key,
        "delta": fetch.delta,
        "complete": fetch.complete,
        "touched_only": fetch.touched_only,
        "tonight_known": fetch.tonight_known,
        "partitions": partitions,
        "pair_index": pair_index_ready(ctx),
        "facts": people_facts(planner, pairs_partitioned=not rekey).to_json(),
        "pairs_keys": [w.close() for w in routed],
        "summary": summary,
        "school_names": school_names,
        "writes_keys": writes.close(),
        "writes": writes.count,
        "lines_keys": lines.close(),
        "changed_keys": changed.close(),
        "errors_keys": errors.close(),
        "candidates_keys": candidates_out.close(),
        "deferred_keys": deferred.close(),
    }
    people_key = store.put_json(f"{name}/result.json", people)
    partitions_key = store.put_json("plan/partitions.json", [{"partition": p} for p in range(partitions)])
    logger.info(
        "people planned",
        extra={
            "run_id": run.run_id,
            "writes": writes.count,
            "partitions": partitions,
            "pairs": sum(w.count for w in routed),
            "rekey": rekey,
            "match_candidates": len(candidates),
        },
    )
    return MatchPrepared(people_key=people_key, partitions_key=partitions_key, partitions=partitions)


def match_partition(request: MatchPartitionRequest) -> None:
    """Plan one partition's enrollments and guardian links: its share of their directory index and of the
    roster (routed by the people phase), nothing else of the district; and describe its share of the people
    phase's updated, linked and restored lines (their before-images, ``BeforeImages``). Its result goes to S3."""
    ctx = DistrictContext.for_run(request.district_id, request.run_id)
    store = ctx.store
    if not store.owns(request.people_key):
        raise BadInputError("the people phase's result does not belong to this run")
    people = store.get_json(request.people_key)
    partitions, p = int(people["partitions"]), request.partition
    if not 0 <= p < partitions:
        raise BadInputError(f"partition {p} is not one of the run's {partitions}")
    facts = PeopleFacts.from_json(people["facts"])
    name = partition_folder(p)
    result: dict[str, Any] = {"partition": p, "planned": facts.pairs_partitioned}
    school_names = dict(people["school_names"])
    lines = store.chunk_writer(f"{name}/lines", 50_000)
    before_images = BeforeImages(ctx.directory, school_names, lines.write)
    # this partition's share of the people phase's lines that need their before-images
    described = 0
    for data in store.read_all(people["changed_keys"][p::partitions]):
        before_images.describe(data["line"], data["after"])
        described += 1
    result["described"] = described
    if not facts.pairs_partitioned:
        before_images.flush()
        store.put_json(f"{name}/result.json", result | {"lines_keys": lines.close()})
        return
    provider = str(people["provider"])
    manifest = _snapshot(ctx, str(people["snapshot_manifest_key"]))

    try:
        check_match_partitions(partitions)
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    index: dict[str, Any] = {}
    if people.get("pair_index"):
        # only the partition's buckets of the ByMatchBucket index: 1/N of the pairs' index, not all of it
        for c in PAIR_COLLECTIONS:
            index[c] = index_by_provider_id(ctx.directory.pair_index(c, provider, partitions, p), provider)
    else:
        # items written before the index may lack their bucket: read the table, count those that do
        unbucketed = 0
        for c in PAIR_COLLECTIONS:
            entries, missing = ctx.directory.pair_index_from_table(c, provider, partitions, p)
            index[c] = index_by_provider_id(entries, provider)
            unbucketed += missing
        result["unbucketed"] = unbucketed
    writes = store.chunk_writer(f"{name}/writes", ctx.config.plan_chunk_records)
    errors = store.chunk_writer(f"{name}/errors", 50_000)

    def write(planned: PlannedWrite) -> None:
        before_images.write(planned)
        writes.write(planned.to_json())

    deleted = [DeletedRecord.model_validate(d) for d in store.read_all(manifest.get("deleted", []))]
    planner = partition_planner(
        request.district_id,
        provider,
        index,
        facts,
        write=write,
        line=before_images.line,
        error=errors.write,
        deleted=deleted,
        delta=bool(people["delta"]),
        complete=bool(people["complete"]),
        settings=ctx.state.settings_at(int(people["settings_version"])),
        school_names=school_names,
        touched=_touched(ctx, manifest),
        touched_only=bool(people["touched_only"]),
        tonight_known=bool(people["tonight_known"]),
    )
    for data in store.read_all(manifest.get("errors", [])):
        error = RecordError.model_validate(data)
        if error.kind in PAIR_KINDS and error.provider_id and partition_of(error.provider_id, partitions) == p:
            planner.mark_seen(COLLECTION_OF_KIND[error.kind], error.provider_id)

    def routed(collection: str) -> Iterator[tuple[Any, dict[str, Any]]]:
        return routed_pairs(store.read_all_lines(people["pairs_keys"][p]), collection)

    planner.plan_enrollments(with_contexts(planner, routed("enrollments")))
    planner.plan_guardian_links(with_contexts(planner, routed("guardian_links")))
    candidates = store.chunk_writer(f"{name}/candidates", 50_000)
    for candidate in planner.archive_candidates():
        candidates.write(candidate.to_json())
    before_images.flush()
    result |= {
        "summary": planner.summary.to_json(),
        "guardian_school": planner.guardian_school,
        "writes_keys": writes.close(),
        "writes": writes.count,
        "lines_keys": lines.close(),
        "errors_keys": errors.close(),
        "candidates_keys": candidates.close(),
        "index_entries": sum(len(e) for e in index.values()),
    }
    store.put_json(f"{name}/result.json", result)
    logger.info(
        "partition planned",
        extra={
            "run_id": request.run_id,
            "partition": p,
            "writes": writes.count,
            "index": result["index_entries"],
            "described": described,
        },
    )


def combine_match(state: SyncState) -> MatchResult:
    """Sum the people phase and the partitions into the district's plan: one manifest, one summary (the
    deletion threshold then weighs the district's sums), the archive candidates described."""
    run, prepared = state.run_ref(), state.matching
    if prepared is None:
        raise BadInputError("Combine needs the result of Match's people phase")
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    store = ctx.store
    if not store.owns(prepared.people_key):
        raise BadInputError("the people phase's result does not belong to this run")
    people = store.get_json(prepared.people_key)
    facts = PeopleFacts.from_json(people["facts"])
    parts = []
    for p in range(int(people["partitions"])):
        key = store.key(f"{partition_folder(p)}/result.json")
        try:
            parts.append(store.get_json(key))
        except ClientError as exc:  # no such key: a partition did not finish
            raise BadInputError(f"Match partition {p} left no result") from exc
    planned = [part for part in parts if part.get("planned")]
    summary = merge_summaries(people["summary"], [part["summary"] for part in planned])
    # Every partition read the table (no PAIR_INDEX yet) and none found a pair without its bucket: the
    # district's next runs may read the index (Write report records it).
    summary["pair_index_ready"] = (
        not people.get("pair_index")
        and bool(planned)
        and len(planned) == len(parts)
        and all("unbucketed" in part and int(part["unbucketed"]) == 0 for part in planned)
    )
    lines = store.chunk_writer("plan/lines", 50_000)
    guardian_school: dict[str, str] = {}
    for part in planned:
        for guardian, school in part["guardian_school"].items():
            guardian_school.setdefault(guardian, school)
    deferred = [
        ArchiveCandidate(Kind(d["kind"]), d["id"], d["provider_id"]) for d in store.read_all(people["deferred_keys"])
    ]
    settled = settle_deferred_guardians(
        deferred, guardian_school, facts, summary, lambda line: lines.write(line.to_json())
    )
    school_names: dict[str, str] = people["school_names"]
    # Records whose archiving the admin discarded stay (lifecycle.holds): not candidates, a skipped line each.
    kept = kept_ids(ctx.state, aws.client("s3"), ctx.config.sync_bucket)
    kept_by_admin: Counter[str] = Counter()

    def candidates() -> Iterator[ArchiveCandidate]:
        for key_list in [people["candidates_keys"], *(part["candidates_keys"] for part in planned)]:
            for d in store.read_all(key_list):
                yield ArchiveCandidate(Kind(d["kind"]), d["id"], d["provider_id"])
        yield from settled

    def to_archive() -> Iterator[ArchiveCandidate]:
        for candidate in candidates():
            if candidate.id in kept:
                summary["archive_candidates"][candidate.kind.value] -= 1
                kept_by_admin[candidate.kind.value] += 1
                reason = f"kept: the admin discarded its archiving (run {kept[candidate.id]})"
                lines.write(
                    PlanLine(candidate.kind, "skipped", candidate.id, candidate.provider_id, "", reason).to_json()
                )
                continue
            yield candidate

    archive = store.chunk_writer("plan/archive", 50_000)
    leaving: dict[str, int] = {}
    batch: list[ArchiveCandidate] = []
    for candidate in to_archive():
        batch.append(candidate)
        if len(batch) >= _BATCH:
            for data in described_candidates(ctx.directory, school_names, batch, leaving):
                archive.write(data)
            batch = []
    for data in described_candidates(ctx.directory, school_names, batch, leaving):
        archive.write(data)
    chunk_keys = [*people["writes_keys"], *(k for part in planned for k in part["writes_keys"])]
    plan_manifest_key = store.put_json("plan/manifest.json", [{"chunk_key": k} for k in chunk_keys])
    for school, n in leaving.items():
        summary["schools"].setdefault(school, {})["leaving"] = n
    for school, counts in summary["schools"].items():
        counts["name"] = school_names.get(school, school)
    summary |= {
        # every partition's lines: those that plan no pairs (a re-key night) still describe the people's changes
        "lines_keys": [*people["lines_keys"], *(k for part in parts for k in part["lines_keys"]), *lines.close()],
        "errors_keys": [*people["errors_keys"], *(k for part in planned for k in part["errors_keys"])],
        "archive_keys": archive.close(),
        "kept_by_admin": dict(kept_by_admin),
        "partitions": len(parts),
    }
    summary_key = store.put_json("plan/summary.json", summary)
    write_count = int(people["writes"]) + sum(int(part["writes"]) for part in planned)
    logger.info(
        "plan written",
        extra={
            "run_id": run.run_id,
            "writes": write_count,
            "chunks": len(chunk_keys),
            "partitions": len(parts),
            "settings_version": run.settings_version,
        },
    )
    return MatchResult(
        plan_manifest_key=plan_manifest_key, plan_chunks=len(chunk_keys), writes=write_count, summary_key=summary_key
    )
