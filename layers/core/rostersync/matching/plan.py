"""Turn a fetched roster into a plan of directory writes.

``SyncPlanner`` is fed the snapshot one collection at a time, in dependency order (schools,
classrooms, people, guardians, enrollments, guardian links), and decides for each record: create,
update, restore, unchanged, skipped or error. It keeps only small maps (provider id → directory id),
never the records themselves, so a district's size bounds its memory only through those maps.

The planner does no I/O: writes, report lines and errors go to the sinks it is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rostersync.directory.keys import COLLECTION_OF_KIND, synced_record_id
from rostersync.directory.repository import DirectoryRecord, IndexEntry
from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    SchoolRecord,
    content_hash,
)

WriteOp = Literal["create", "update", "restore"]
EMPTIED_SCHOOL_MIN_STUDENTS = 5
_UNREAD = "names someone not in the part of the roster that could be read (the fetch did not complete)"
COUNT_FIELDS = ("created", "updated", "archived", "restored", "unchanged", "skipped", "errors")


@dataclass(frozen=True)
class PlannedWrite:
    """One write Upsert will make. ``create`` puts a new item; ``update``/``restore`` update in place."""

    op: WriteOp
    record: DirectoryRecord

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "op": self.op,
            "record": {
                "id": r.id,
                "kind": r.kind.value,
                "status": r.status,
                "managed_by_sync": r.managed_by_sync,
                "provider_ids": r.provider_ids,
                "fields": r.fields,
                "content_hash": r.content_hash,
                "parent_id": r.parent_id,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedWrite:
        r = data["record"]
        return cls(
            op=data["op"],
            record=DirectoryRecord(
                id=r["id"],
                kind=Kind(r["kind"]),
                status=r["status"],
                managed_by_sync=r["managed_by_sync"],
                provider_ids=r["provider_ids"],
                fields=r["fields"],
                content_hash=r["content_hash"],
                parent_id=r.get("parent_id", ""),
            ),
        )


@dataclass(frozen=True)
class PlanLine:
    """A line of the report: what happened to one record and why."""

    kind: Kind
    action: str
    id: str
    provider_id: str
    name: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "action": self.action,
            "id": self.id,
            "provider_id": self.provider_id,
            "name": self.name,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ArchiveCandidate:
    """A sync-managed record that is no longer in the roster."""

    kind: Kind
    id: str
    provider_id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "id": self.id, "provider_id": self.provider_id}


@dataclass
class PlanSummary:
    """Counts per kind, the would-be archive list size and the managed totals the threshold needs."""

    counts: dict[Kind, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in Kind})
    managed: Counter[Kind] = field(default_factory=Counter)
    archive_candidates: Counter[Kind] = field(default_factory=Counter)
    # school id → how many students it would lose, for schools the roster would empty entirely
    emptied_schools: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {k.value: {f: self.counts[k][f] for f in COUNT_FIELDS} for k in Kind},
            "managed": {k.value: self.managed[k] for k in Kind},
            "archive_candidates": {k.value: self.archive_candidates[k] for k in Kind},
            "emptied_schools": self.emptied_schools,
        }


Index = dict[str, IndexEntry]  # provider id → entry, one per directory collection


def index_by_provider_id(entries: Iterable[IndexEntry], provider: str) -> Index:
    """Key a collection's index by this provider's ids (records without a link are not matchable)."""
    return {e.provider_ids[provider]: e for e in entries if provider in e.provider_ids}


def _display_name(record: Any) -> str:
    if isinstance(record, PersonRecord):
        return " ".join(p for p in (record.given_name, record.family_name) if p)
    return getattr(record, "name", "")


class SyncPlanner:
    """Decides the writes of one run.

    Parameters
    ----------
    district_id, provider:
        Whose roster, from which provider (``"clever"``, ``"oneroster"``).
    index:
        The directory's matching index per collection, keyed by this provider's ids.
    write, line, error:
        Sinks for planned writes, report lines and record errors.
    delta:
        The snapshot holds only what changed: nothing is archived for being absent, only records the
        provider marked deleted.
    complete:
        False when some pages could not be read: a reference to someone not in the snapshot is then
        skipped (they may be on an unread page), not reported as an error.
    """

    def __init__(
        self,
        district_id: str,
        provider: str,
        index: dict[str, Index],
        write: Callable[[PlannedWrite], None],
        line: Callable[[PlanLine], None],
        error: Callable[[RecordError], None],
        delta: bool = False,
        complete: bool = True,
    ) -> None:
        self.district_id = district_id
        self.delta = delta
        self.complete = complete
        self._deleted: dict[str, set[str]] = {c: set() for c in index}
        self.provider = provider
        self._index = index
        self._write = write
        self._line = line
        self._error = error
        self.summary = PlanSummary()
        self._ids: dict[str, dict[str, str]] = {c: {} for c in ("schools", "classrooms", "people")}
        self._seen: dict[str, set[str]] = {c: set() for c in index}
        self._skipped_people: set[str] = set()
        self._guardians_wanted: set[str] = set()
        for entries in index.values():
            for entry in entries.values():
                if entry.managed_by_sync and entry.status == "active":
                    self.summary.managed[entry.kind] += 1

    # -- the decision every record goes through ------------------------------------------------

    def _reconcile(self, kind: Kind, provider_id: str, fields: dict[str, Any], name: str, parent_id: str) -> str:
        """Plan one record that belongs in the directory; return its directory id."""
        collection = COLLECTION_OF_KIND[kind]
        entry = self._index[collection].get(provider_id)
        digest = content_hash(fields)
        self._seen[collection].add(provider_id)
        record_id = entry.id if entry else synced_record_id(self.district_id, collection, self.provider, provider_id)
        provider_ids = {**(entry.provider_ids if entry else {}), self.provider: provider_id}
        record = DirectoryRecord(
            id=record_id,
            kind=kind,
            status="active",
            managed_by_sync=True,
            provider_ids=provider_ids,
            fields=fields,
            content_hash=digest,
            parent_id=parent_id,
        )
        if entry is None:
            op: WriteOp | None = "create"
        elif entry.status == "archived":
            op = "restore"
        elif entry.content_hash != digest or not entry.managed_by_sync or entry.kind != kind:
            op = "update"
        else:
            op = None
        if op is None:
            self.summary.counts[kind]["unchanged"] += 1
            return record_id
        self._write(PlannedWrite(op, record))
        action = {"create": "created", "update": "updated", "restore": "restored"}[op]
        self.summary.counts[kind][action] += 1
        self._line(PlanLine(kind, action, record_id, provider_id, name))
        return record_id

    def _skip(self, kind: Kind, provider_id: str, name: str, reason: str) -> None:
        self.summary.counts[kind]["skipped"] += 1
        self._line(PlanLine(kind, "skipped", "", provider_id, name, reason))

    def record_error(self, error: RecordError) -> None:
        """Count and pass on an error found while fetching or planning; the run goes on."""
        self.summary.counts[error.kind]["errors"] += 1
        if error.provider_id:
            collection = COLLECTION_OF_KIND[error.kind]
            # A record the provider still has but sent broken is not archived for it.
            self._seen.setdefault(collection, set()).add(error.provider_id)
        self._error(error)

    def _resolve(self, collection: str, provider_id: str) -> str | None:
        """The directory id of a referenced record synced in this run; in a delta, also one already in
        the directory (a delta does not resend what did not change)."""
        found = self._ids[collection].get(provider_id)
        if found is None and self.delta:
            entry = self._index[collection].get(provider_id)
            if entry is not None and entry.status == "active":
                found = entry.id
        return found

    def record_deleted(self, deleted: DeletedRecord) -> None:
        """The provider says this record is gone: archive it (subject to the threshold)."""
        self._deleted.setdefault(COLLECTION_OF_KIND[deleted.kind], set()).add(deleted.provider_id)

    def _first_time(self, collection: str, kind: Kind, provider_id: str, seen: set[str]) -> bool:
        if provider_id in seen:
            self.record_error(
                RecordError(
                    kind=kind,
                    provider_id=provider_id,
                    reason=f"duplicate id {provider_id}: it appears more than once in the roster; the first was used",
                )
            )
            return False
        seen.add(provider_id)
        return True

    # -- collections, in dependency order -------------------------------------------------------

    def plan_schools(self, schools: Iterable[SchoolRecord]) -> None:
        """Schools are matched only through the provider id a product school carries."""
        seen: set[str] = set()
        for school in schools:
            if not self._first_time("schools", Kind.SCHOOLS, school.provider_id, seen):
                continue
            if school.provider_id not in self._index["schools"]:
                self._skip(
                    Kind.SCHOOLS,
                    school.provider_id,
                    school.name,
                    f"no product school carries this {self.provider} id: add it to a school to sync it; "
                    "nothing of this school was written",
                )
                continue
            self._ids["schools"][school.provider_id] = self._reconcile(
                Kind.SCHOOLS, school.provider_id, school.synced_fields(), school.name, ""
            )
        for provider_id, entry in self._index["schools"].items():
            if not self.delta and provider_id not in seen and entry.status == "active":
                self.record_error(
                    RecordError(
                        kind=Kind.SCHOOLS,
                        provider_id=provider_id,
                        reason=f"school {entry.id} is no longer shared by {self.provider}; schools are never "
                        "archived by sync: check the sharing rules, or archive it by hand",
                    )
                )

    def plan_classrooms(self, classrooms: Iterable[ClassroomRecord]) -> None:
        seen: set[str] = set()
        for section in classrooms:
            if not self._first_time("classrooms", Kind.CLASSROOMS, section.provider_id, seen):
                continue
            school_id = self._resolve("schools", section.school)
            if school_id is None:
                self._skip(
                    Kind.CLASSROOMS,
                    section.provider_id,
                    section.name,
                    f"its school {section.school} is not matched to a product school",
                )
                continue
            fields = {**section.synced_fields(), "school": school_id}
            self._ids["classrooms"][section.provider_id] = self._reconcile(
                Kind.CLASSROOMS, section.provider_id, fields, section.name, school_id
            )

    def plan_people(self, people: Iterable[PersonRecord]) -> None:
        """Students, teachers and staff: synced when one of their schools is matched.

        Staff the roster names no school for (district admins) belong to the district and are synced.
        """
        seen: set[str] = set()
        for person in people:
            if not self._first_time("people", person.kind, person.provider_id, seen):
                continue
            school_ids = [i for i in (self._resolve("schools", s) for s in person.schools) if i]
            district_staff = not person.schools and person.kind == Kind.STAFF
            if not school_ids and not district_staff:
                self._skipped_people.add(person.provider_id)
                reason = (
                    "none of their schools is matched to a product school"
                    if person.schools
                    else "the roster names no school for them"
                )
                self._skip(person.kind, person.provider_id, _display_name(person), reason)
                continue
            fields = {**person.synced_fields(), "schools": school_ids}
            self._ids["people"][person.provider_id] = self._reconcile(
                person.kind, person.provider_id, fields, _display_name(person), school_ids[0] if school_ids else ""
            )

    def want_guardians_of(self, links: Iterable[GuardianLinkRecord]) -> None:
        """First pass over guardian links: a guardian is synced when one of their students is."""
        for link in links:
            if self._resolve("people", link.student):
                self._guardians_wanted.add(link.guardian)

    def plan_guardians(self, guardians: Iterable[PersonRecord]) -> None:
        seen = self._seen_people_guard()
        for guardian in guardians:
            if not self._first_time("people", guardian.kind, guardian.provider_id, seen):
                continue
            if guardian.provider_id not in self._guardians_wanted:
                self._skipped_people.add(guardian.provider_id)
                self._skip(
                    guardian.kind,
                    guardian.provider_id,
                    _display_name(guardian),
                    "none of their students is synced",
                )
                continue
            fields = guardian.synced_fields()
            self._ids["people"][guardian.provider_id] = self._reconcile(
                guardian.kind, guardian.provider_id, fields, _display_name(guardian), ""
            )

    def _seen_people_guard(self) -> set[str]:
        # Guardians share the people collection: a guardian id that is also a student id is a duplicate.
        return set(self._ids["people"]) | self._skipped_people

    def plan_enrollments(self, enrollments: Iterable[EnrollmentRecord]) -> None:
        seen: set[str] = set()
        for enrollment in enrollments:
            if not self._first_time("enrollments", Kind.ENROLLMENTS, enrollment.provider_id, seen):
                continue
            classroom_id = self._resolve("classrooms", enrollment.classroom)
            person_id = self._resolve("people", enrollment.person)
            if classroom_id is None:
                self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", "its section is not synced")
                continue
            if person_id is None:
                if enrollment.person in self._skipped_people:
                    self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", f"{enrollment.role} is not synced")
                elif not self.complete:
                    self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", _UNREAD)
                else:
                    self.record_error(
                        RecordError(
                            kind=Kind.ENROLLMENTS,
                            provider_id=enrollment.provider_id,
                            reason=f"section {enrollment.classroom} names {enrollment.role} {enrollment.person}, "
                            "who is not in the roster",
                        )
                    )
                continue
            fields = {"classroom": classroom_id, "person": person_id, "role": enrollment.role}
            self._reconcile(Kind.ENROLLMENTS, enrollment.provider_id, fields, "", classroom_id)

    def plan_guardian_links(self, links: Iterable[GuardianLinkRecord]) -> None:
        seen: set[str] = set()
        for link in links:
            if not self._first_time("guardian_links", Kind.GUARDIAN_LINKS, link.provider_id, seen):
                continue
            guardian_id = self._resolve("people", link.guardian)
            student_id = self._resolve("people", link.student)
            if guardian_id is None or student_id is None:
                missing = link.guardian if guardian_id is None else link.student
                if missing in self._skipped_people:
                    self._skip(Kind.GUARDIAN_LINKS, link.provider_id, "", "the guardian or student is not synced")
                elif not self.complete:
                    self._skip(Kind.GUARDIAN_LINKS, link.provider_id, "", _UNREAD)
                else:
                    who = "guardian" if guardian_id is None else "student"
                    self.record_error(
                        RecordError(
                            kind=Kind.GUARDIAN_LINKS,
                            provider_id=link.provider_id,
                            reason=f"contact {link.guardian} is linked to {who} {missing}, who is not in the roster",
                        )
                    )
                continue
            fields = {
                "guardian": guardian_id,
                "student": student_id,
                "relationship": link.relationship,
                "contact_type": link.contact_type,
            }
            self._reconcile(Kind.GUARDIAN_LINKS, link.provider_id, fields, "", student_id)

    # -- deprovisioning -------------------------------------------------------------------------

    def _cascade_deletions(self) -> None:
        """In a delta, the enrollments and guardian links of a person or classroom the provider deleted go
        with them: the provider has no deletion of their own to send (``<section>:<person>``,
        ``<guardian>:<student>``)."""
        people = self._deleted.get("people", set())
        classrooms = self._deleted.get("classrooms", set())
        if not people and not classrooms:
            return
        for provider_id in self._index["enrollments"]:
            classroom, _, person = provider_id.partition(":")
            if classroom in classrooms or person in people:
                self._deleted.setdefault("enrollments", set()).add(provider_id)
        for provider_id in self._index["guardian_links"]:
            guardian, _, student = provider_id.partition(":")
            if guardian in people or student in people:
                self._deleted.setdefault("guardian_links", set()).add(provider_id)

    def archive_candidates(self) -> list[ArchiveCandidate]:
        """Sync-managed, active records no longer in the roster: managed ids minus snapshot ids (a full
        snapshot), plus those the provider marked deleted (a delta mentions only those).

        Schools are never archived by sync (they belong to the product); they are reported instead.
        """
        candidates: list[ArchiveCandidate] = []
        self.summary.archive_candidates.clear()
        if self.delta:
            self._cascade_deletions()
        students_of: Counter[str] = Counter()
        leaving_from: Counter[str] = Counter()
        for collection, entries in self._index.items():
            if collection == "schools":
                continue
            seen = self._seen.get(collection, set())
            deleted = self._deleted.get(collection, set())
            for provider_id, entry in entries.items():
                gone = provider_id in deleted or (not self.delta and provider_id not in seen)
                if not (entry.managed_by_sync and entry.status == "active"):
                    continue
                if entry.kind == Kind.STUDENTS:
                    students_of[entry.parent_id] += 1
                if gone:
                    candidates.append(ArchiveCandidate(entry.kind, entry.id, provider_id))
                    self.summary.archive_candidates[entry.kind] += 1
                    if entry.kind == Kind.STUDENTS:
                        leaving_from[entry.parent_id] += 1
        # A roster that takes every student of a school away is far likelier a broken export than a
        # closed school: the deletion threshold holds for students, whatever the district-wide share.
        self.summary.emptied_schools = {
            school: count
            for school, count in leaving_from.items()
            if school and count == students_of[school] and count >= EMPTIED_SCHOOL_MIN_STUDENTS
        }
        return candidates
