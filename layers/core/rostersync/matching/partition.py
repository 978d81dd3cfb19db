"""Match in partitions: the rules of ``matching.plan``, run as a people phase, N partitions and a combine.

A district's enrollments and guardian links are most of its directory (NYC: 4M enrollments and about 2M
guardian links of 10M items). The people phase (``SyncPlanner.plan_people_phase``) plans schools,
classrooms, people and guardians as the single pass does, and routes each enrollment and guardian link to
a partition by a stable hash of its provider id, with its references already resolved
(``SyncPlanner.pair_context``: a few ids). A partition holds only its share of the enrollments' and links'
index and of the roster, and plans them with the same ``SyncPlanner`` methods; Combine sums the counts,
holds what an emptied school's links reach, and the deletion threshold then applies to the district's sums.

Pure: the step functions (``steps.match``) do the reading and writing; ``plan_partitioned`` runs the
whole flow in memory, which is how the tests hold it to the single pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter
from pydantic_core import to_json
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from rostersync.directory.keys import COLLECTION_OF_KIND, PAIR_COLLECTIONS
from rostersync.directory.repository import IndexEntry
from rostersync.domain.records import DeletedRecord, Kind, RecordError, RosterRecord
from rostersync.matching.plan import (
    UNREADABLE_HELD,
    ArchiveCandidate,
    Index,
    PlanLine,
    PlannedWrite,
    SyncPlanner,
    emptied_school_reason,
    school_label,
)

PAIR_KINDS = (Kind.ENROLLMENTS, Kind.GUARDIAN_LINKS)
# The run's folders each phase writes its plan chunks, lines, errors and candidates in (``plan/…``).
PEOPLE_FOLDER = "plan/people"


def partition_folder(partition: int) -> str:
    """A partition's folder in the run's files (``plan/p0003``)."""
    return f"plan/p{partition:04d}"


def partition_of(provider_id: str, partitions: int) -> int:
    """The partition of an enrollment or guardian link: a stable hash of its provider id, so the roster's
    record and the directory's record of it meet in the same partition, night after night.

    The same hash as the directory's ``match_bucket`` (``directory.keys.match_bucket_of``): when
    ``partitions`` divides ``MATCH_BUCKETS`` (the steps refuse any other count), a partition's records are
    exactly those in the buckets ``b % partitions == partition``, which is what it reads of the
    ``ByMatchBucket`` index. The in-memory flow (``plan_partitioned``) takes any count."""
    return zlib.crc32(provider_id.encode("utf-8")) % max(1, partitions)


@dataclass
class PeopleFacts:
    """What the people phase hands every partition (small: nothing grows with the students)."""

    held_collections: list[str] = field(default_factory=list)
    emptied_schools: dict[str, int] = field(default_factory=dict)
    emptied_school_of: dict[str, str] = field(default_factory=dict)
    emptied_people_pids: dict[str, str] = field(default_factory=dict)
    # False on a re-key night: the people phase planned the enrollments and links itself (see below).
    pairs_partitioned: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "held_collections": sorted(self.held_collections),
            "emptied_schools": self.emptied_schools,
            "emptied_school_of": self.emptied_school_of,
            "emptied_people_pids": self.emptied_people_pids,
            "pairs_partitioned": self.pairs_partitioned,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PeopleFacts:
        return cls(
            held_collections=list(data.get("held_collections") or []),
            emptied_schools=dict(data.get("emptied_schools") or {}),
            emptied_school_of=dict(data.get("emptied_school_of") or {}),
            emptied_people_pids=dict(data.get("emptied_people_pids") or {}),
            pairs_partitioned=bool(data.get("pairs_partitioned", True)),
        )


def people_facts(planner: SyncPlanner, pairs_partitioned: bool) -> PeopleFacts:
    """After the people phase's ``archive_candidates``: what the partitions need to know."""
    school_of, people_pids = planner.emptied_school_maps()
    return PeopleFacts(
        held_collections=sorted(planner.held_collections),
        emptied_schools=dict(planner.summary.emptied_schools),
        emptied_school_of=school_of,
        emptied_people_pids=people_pids,
        pairs_partitioned=pairs_partitioned,
    )


def partition_planner(
    district_id: str,
    provider: str,
    index: dict[str, Index],
    facts: PeopleFacts,
    write: Callable[[PlannedWrite], None],
    line: Callable[[PlanLine], None],
    error: Callable[[RecordError], None],
    deleted: Iterable[DeletedRecord] = (),
    **options: Any,
) -> SyncPlanner:
    """A planner for one partition: ``index`` holds only the partition's enrollments and guardian links
    (the other collections empty); ``options`` are the single pass's (settings, delta, complete, touched…)."""
    full = {c: index.get(c, {}) for c in ("schools", "classrooms", "people", *PAIR_COLLECTIONS)}
    planner = SyncPlanner(district_id, provider, full, write=write, line=line, error=error, **options)
    planner.hold_collections(facts.held_collections)
    planner.summary.emptied_schools = dict(facts.emptied_schools)
    planner.emptied_school_of = dict(facts.emptied_school_of)
    planner.emptied_people_pids = dict(facts.emptied_people_pids)
    for record in deleted:
        # every deletion: a deleted person's or section's enrollments and links go with them (a delta)
        planner.record_deleted(record)
    return planner


class PairSink(Protocol):
    """Where the people phase routes one partition's enrollments and guardian links, each a line of
    ``encode_routed``: an S3 chunk writer in the Lambda step (``steps.match``), a list in memory
    (``plan_partitioned``)."""

    def write_line(self, line: bytes, /) -> Any: ...


class _RoutedRow(TypedDict):
    collection: str
    context: dict[str, Any]
    record: RosterRecord


_routed_row = TypeAdapter(_RoutedRow)


def encode_routed(
    collection: str, record: RosterRecord, context: dict[str, Any], record_json: bytes | None = None
) -> bytes:
    """One routed enrollment or guardian link as a line of JSON: ``{"collection", "context", "record"}``,
    the collection first (a reader picks one collection's lines by their start, unparsed), the record
    serialised by pydantic (as ``model_dump(mode="json")`` would give it), or given as ``record_json``: its
    line of the snapshot, which Fetch wrote so, taken as it is (the people phase read and validated it
    from that line). Routing was a fifth of the people phase's planning time on an unchanged night (10 k,
    sampled), most of it serialising each record and context again: 5.2 µs a pair, 1.3 now."""
    # pydantic-core's serialiser: compact UTF-8 JSON as json.dumps(separators=(",", ":"), ensure_ascii=False)
    # gives it, in a seventh of the time (a context each pair: 4.1 µs there, 0.6 here)
    context_json = to_json(context)
    return b"".join(
        (
            b'{"collection":"',
            collection.encode(),
            b'","context":',
            context_json,
            b',"record":',
            record.model_dump_json().encode() if record_json is None else record_json.strip(),
            b"}",
        )
    )


def routed_pairs(lines: Iterable[bytes], collection: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A partition's routed lines (``encode_routed``) of one collection, as (record, context): the other
    collection's lines are passed over unparsed, each line is parsed and validated in one pass."""
    start = b'{"collection":"' + collection.encode() + b'"'
    for line in lines:
        if line.startswith(start):
            row = _routed_row.validate_json(line)
            yield row["record"], row["context"]


def plan_people_and_route_pairs(
    planner: SyncPlanner,
    records: Callable[[str], Iterable[Any]],
    partitions: Sequence[PairSink],
    errors: Iterable[RecordError] = (),
    deleted: Iterable[DeletedRecord] = (),
    rekey: bool = False,
    pair_lines: Callable[[str], Iterable[tuple[Any, bytes]]] | None = None,
) -> None:
    """Match's people phase on ``planner`` (its index without enrollments and guardian links): plan schools,
    classrooms, people and guardians, and route every enrollment and guardian link to its partition's sink
    (``partitions[partition_of(...)]``) as ``{"collection", "record", "context"}``, its references resolved.
    ``rekey``: the run is a provider re-key, whose pairs link through records across the district, so the
    phase (its index then whole) plans everything itself and routes nothing. ``pair_lines``: the snapshot's
    enrollments and links with the line each was read from, routed as read (``encode_routed``)."""
    planner.pairs_elsewhere = not rekey
    for error in errors:
        planner.record_error(error)
    for record in deleted:
        planner.record_deleted(record)
    if rekey:
        planner.plan(records)
        return
    planner.plan_people_phase(records)
    for collection in PAIR_COLLECTIONS:
        pairs = pair_lines(collection) if pair_lines is not None else ((r, None) for r in records(collection))
        for record, line in pairs:
            partitions[partition_of(record.provider_id, len(partitions))].write_line(
                encode_routed(collection, record, planner.pair_context(record), line)
            )


def with_contexts(planner: SyncPlanner, routed: Iterable[tuple[Any, dict[str, Any]]]) -> Iterable[Any]:
    """Feed a partition's records to its planner, each after the references it carries."""
    for record, context in routed:
        planner.take_pair_context(context)
        yield record


# -- Combine --------------------------------------------------------------------------------------


def _add_counts(into: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        into[key] = into.get(key, 0) + value


def merge_summaries(people: dict[str, Any], parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The district's summary: the people phase's, with each partition's counts added (schools, findings,
    re-key and emptied schools come from the people phase alone)."""
    summary = {k: v for k, v in people.items()}
    summary["counts"] = {kind: dict(counts) for kind, counts in people["counts"].items()}
    summary["managed"] = dict(people["managed"])
    summary["archive_candidates"] = dict(people["archive_candidates"])
    summary["held_schools"] = {
        school: {"name": held["name"], "held": dict(held["held"])} for school, held in people["held_schools"].items()
    }
    summary["held_unreadable"] = dict(people["held_unreadable"])
    summary["untouched_absent"] = dict(people["untouched_absent"])
    caught = people.get("reconcile_caught")
    summary["reconcile_caught"] = None if caught is None else {k: dict(v) for k, v in caught.items()}
    for part in parts:
        for kind, counts in part["counts"].items():
            _add_counts(summary["counts"].setdefault(kind, {}), counts)
        _add_counts(summary["managed"], part["managed"])
        _add_counts(summary["archive_candidates"], part["archive_candidates"])
        for school, held in part["held_schools"].items():
            mine = summary["held_schools"].setdefault(school, {"name": held["name"], "held": {}})
            _add_counts(mine["held"], held["held"])
        _add_counts(summary["held_unreadable"], part["held_unreadable"])
        _add_counts(summary["untouched_absent"], part["untouched_absent"])
        if summary["reconcile_caught"] is not None and part.get("reconcile_caught"):
            for kind, counts in part["reconcile_caught"].items():
                _add_counts(summary["reconcile_caught"].setdefault(kind, {}), counts)
    for held in summary["held_schools"].values():
        held["held"] = dict(sorted(held["held"].items()))
    summary["held_schools"] = dict(sorted(summary["held_schools"].items()))
    return summary


def settle_deferred_guardians(
    deferred: Iterable[ArchiveCandidate],
    guardian_school: dict[str, str],
    facts: PeopleFacts,
    summary: dict[str, Any],
    line: Callable[[PlanLine], None],
) -> list[ArchiveCandidate]:
    """The guardians the people phase could not decide on (a school was emptied): held when a held link of
    that school reaches them (as the single pass's ``_hold_emptied_schools``), or when people could not be
    read whole (``_hold_unreadable``); the others stay candidates. Updates ``summary`` in place."""
    kept: list[ArchiveCandidate] = []
    unreadable = "people" in facts.held_collections
    for candidate in deferred:
        kind = candidate.kind.value
        school = guardian_school.get(candidate.provider_id)
        if school is not None and school in facts.emptied_schools:
            # the people phase named every emptied school in the summary (``held_schools``)
            held = summary["held_schools"].setdefault(school, {"name": "", "held": {}})
            held["held"][kind] = held["held"].get(kind, 0) + 1
            held["held"] = dict(sorted(held["held"].items()))
            reason = emptied_school_reason(school_label(school, held["name"]))
        elif unreadable:
            summary["held_unreadable"][kind] = summary["held_unreadable"].get(kind, 0) + 1
            reason = UNREADABLE_HELD
        else:
            kept.append(candidate)
            continue
        summary["archive_candidates"][kind] -= 1
        line(PlanLine(candidate.kind, "would_archive", candidate.id, candidate.provider_id, "", reason))
    return kept


# -- the whole flow in memory ----------------------------------------------------------------------


class _RoutedPairs(list[bytes]):
    """One partition's routed enrollments and guardian links, in memory, as the lines S3 would hold."""

    def write_line(self, line: bytes, /) -> None:
        self.append(line)


@dataclass
class PartitionedPlan:
    """What a partitioned Match produces, gathered (for the tests that hold it to the single pass)."""

    writes: list[PlannedWrite] = field(default_factory=list)
    # the same writes by the folder their phase writes its chunks in (``PEOPLE_FOLDER``, ``partition_folder``)
    writes_by_folder: dict[str, list[PlannedWrite]] = field(default_factory=dict)
    lines: list[PlanLine] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    candidates: list[ArchiveCandidate] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    # records each partition held (its share of the enrollments' and links' index and of the roster)
    partition_sizes: list[int] = field(default_factory=list)


def plan_partitioned(
    district_id: str,
    provider: str,
    index: dict[str, Index],
    records: Callable[[str], Iterable[Any]],
    partitions: int,
    errors: Iterable[RecordError] = (),
    deleted: Iterable[DeletedRecord] = (),
    rekey: bool = False,
    **options: Any,
) -> PartitionedPlan:
    """Run the people phase, ``partitions`` partitions and Combine in memory, as the state machine runs them
    in separate invocations. ``rekey``: the run is a provider re-key (the people phase plans everything)."""
    out = PartitionedPlan()

    def writer(folder: str) -> Callable[[PlannedWrite], None]:
        mine = out.writes_by_folder.setdefault(folder, [])

        def write(planned: PlannedWrite) -> None:
            out.writes.append(planned)
            mine.append(planned)

        return write

    errors, deleted = list(errors), list(deleted)
    people_index = index if rekey else {c: (e if c not in PAIR_COLLECTIONS else {}) for c, e in index.items()}
    guardians_of_touched = None
    touched_people = (options.get("touched") or {}).get("people", set())
    if not rekey:
        guardians_of_touched = {
            pid.partition(":")[0] for pid in index.get("guardian_links", {}) if pid.partition(":")[2] in touched_people
        }
    people = SyncPlanner(
        district_id,
        provider,
        people_index,
        write=writer(PEOPLE_FOLDER),
        line=out.lines.append,
        error=out.errors.append,
        guardians_of_touched=guardians_of_touched,
        **options,
    )
    routed = [_RoutedPairs() for _ in range(partitions)]
    plan_people_and_route_pairs(people, records, routed, errors=errors, deleted=deleted, rekey=rekey)
    out.candidates.extend(people.archive_candidates())
    facts = people_facts(people, pairs_partitioned=not rekey)
    parts: list[dict[str, Any]] = []
    guardian_school: dict[str, str] = {}
    for p in range(partitions if not rekey else 0):
        mine = {
            c: {pid: e for pid, e in index.get(c, {}).items() if partition_of(pid, partitions) == p}
            for c in PAIR_COLLECTIONS
        }
        planner = partition_planner(
            district_id,
            provider,
            mine,
            facts,
            write=writer(partition_folder(p)),
            line=out.lines.append,
            error=out.errors.append,
            deleted=deleted,
            **options,
        )
        for error in errors:
            if error.kind in PAIR_KINDS and error.provider_id and partition_of(error.provider_id, partitions) == p:
                planner.mark_seen(COLLECTION_OF_KIND[error.kind], error.provider_id)
        for collection, plan in (
            ("enrollments", planner.plan_enrollments),
            ("guardian_links", planner.plan_guardian_links),
        ):
            plan(with_contexts(planner, routed_pairs(routed[p], collection)))
        out.candidates.extend(planner.archive_candidates())
        for guardian, school in planner.guardian_school.items():
            guardian_school.setdefault(guardian, school)
        parts.append(planner.summary.to_json())
        out.partition_sizes.append(sum(len(e) for e in mine.values()) + len(routed[p]))
    summary = merge_summaries(people.summary.to_json(), parts)
    out.candidates.extend(
        settle_deferred_guardians(people.deferred_guardians, guardian_school, facts, summary, out.lines.append)
    )
    out.summary = summary
    return out


__all__ = [
    "PAIR_COLLECTIONS",
    "PEOPLE_FOLDER",
    "IndexEntry",
    "PairSink",
    "PartitionedPlan",
    "PeopleFacts",
    "encode_routed",
    "merge_summaries",
    "partition_folder",
    "partition_of",
    "partition_planner",
    "people_facts",
    "plan_partitioned",
    "plan_people_and_route_pairs",
    "routed_pairs",
    "settle_deferred_guardians",
]
