"""Which students a clean-up archives: the rules, as plain functions over directory records.

A clean-up archives the *active students in scope who are not sync-managed*. A sync-managed student is
never archived this way, even when the admin names them (they are counted as kept); people with other
roles are never considered; nothing is deleted. The scope is one or more schools (each handled on its
own, as the admin would), or the whole district, which is refused while some of the district's students
sit in schools the sync does not cover (their students would all look "not in the sync").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync.settings import CleanupSettings

DISTRICT = "district"


class CleanupRefusedError(Exception):
    """The clean-up cannot run as asked (scope, unknown school or student); the message says why and how."""


@dataclass(frozen=True)
class ArchiveCandidate:
    """One student a clean-up would archive, and why."""

    id: str
    school_id: str
    name: str
    reason: str
    # What the record looked like when previewed: a confirm applies only to records still like this.
    stamp: str


@dataclass
class SchoolSelection:
    school_id: str
    school_name: str
    active_students: int = 0
    to_archive: list[ArchiveCandidate] = field(default_factory=list)
    kept_sync_managed: int = 0


@dataclass
class CleanupSelection:
    """What a clean-up would do, school by school (the preview)."""

    district_id: str
    scope: str  # "district" or "schools"
    schools: list[SchoolSelection]
    named_but_sync_managed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(s.to_archive) for s in self.schools)

    def ids(self) -> dict[str, str]:
        """student id → stamp, for every student to archive."""
        return {c.id: c.stamp for s in self.schools for c in s.to_archive}

    def fingerprint(self) -> str:
        body = json.dumps({"scope": self.scope, "students": sorted(self.ids().items())}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "district_id": self.district_id,
            "scope": self.scope,
            "fingerprint": self.fingerprint(),
            "schools": [
                {
                    "school_id": s.school_id,
                    "school_name": s.school_name,
                    "active_students": s.active_students,
                    "kept_sync_managed": s.kept_sync_managed,
                    "to_archive": [asdict(c) for c in s.to_archive],
                }
                for s in self.schools
            ],
            "named_but_sync_managed": self.named_but_sync_managed,
        }


def record_stamp(record: DirectoryRecord) -> str:
    """A digest of what a clean-up depends on in a student record: if it changes, the preview is stale."""
    body = {
        "status": record.status,
        "managed_by_sync": record.managed_by_sync,
        "provider_ids": record.provider_ids,
        "fields": record.fields,
        "product_fields": record.product_fields,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def student_schools(record: DirectoryRecord) -> list[str]:
    shown = record.effective_fields()
    schools = record.fields.get("schools") or shown.get("school_ids") or []
    return [str(s) for s in schools] if isinstance(schools, list) else []


def display_name(record: DirectoryRecord) -> str:
    shown = record.effective_fields()
    return " ".join(str(shown.get(k) or "") for k in ("given_name", "family_name")).strip() or record.id


def synced_school_ids(schools: Iterable[DirectoryRecord], provider: str, in_scope: list[str]) -> set[str]:
    """Product schools the sync covers: active, carrying the provider's id, and in scope when a scope is set."""
    return {
        s.id
        for s in schools
        if s.status == "active" and provider in s.provider_ids and (not in_scope or s.id in in_scope)
    }


def select_unmanaged_students(
    district_id: str,
    people: Iterable[DirectoryRecord],
    schools: dict[str, DirectoryRecord],
    synced: set[str],
    scope_schools: list[str] | None,
    named: list[str] | None = None,
) -> CleanupSelection:
    """The preview of a clean-up.

    ``scope_schools`` None is the district scope; otherwise the schools, in the admin's order (a student
    in several of them is handled with the first). ``named`` restricts it to those students (ids).
    ``CleanupRefusedError`` for a district scope while students sit in schools the sync does not cover,
    for a school that is unknown or not synced, and for a named id that is not a student of the district.
    """
    students = [p for p in people if p.kind == Kind.STUDENTS or "student" in (p.fields.get("roles") or [])]
    active = [s for s in students if s.status == "active"]
    if scope_schools is None:
        outside: dict[str, int] = {}
        for student in active:
            for school in student_schools(student):
                if school not in synced:
                    outside[school] = outside.get(school, 0) + 1
        if outside:
            listed = ", ".join(f"{_school_name(schools, s)} ({n})" for s, n in sorted(outside.items()))
            per_school = " ".join(f"--school {s}" for s in sorted(synced))
            raise CleanupRefusedError(
                f"--scope district: district {district_id} syncs only some of its schools; active students sit in "
                f"schools the sync does not cover: {listed}. Run it per synced school: rostersync cleanup "
                f"archive-unmanaged --district {district_id} {per_school}"
            )
        order = sorted(synced, key=lambda s: _school_name(schools, s)) + [""]
    else:
        for school in scope_schools:
            if school not in schools:
                raise CleanupRefusedError(f"--school {school}: no such school in district {district_id}")
            if school not in synced:
                raise CleanupRefusedError(
                    f"--school {school}: {_school_name(schools, school)} is not synced (no provider id, or out of "
                    "scope): none of its students came from the roster, so none can be told apart"
                )
        order = list(dict.fromkeys(scope_schools))
    by_id = {s.id: s for s in students}
    named_set = set(named or [])
    for student_id in named_set:
        if student_id not in by_id:
            raise CleanupRefusedError(f"--student {student_id}: not a student of district {district_id}")
    selections = {s: SchoolSelection(s, _school_name(schools, s)) for s in order}
    placed: set[str] = set()
    named_managed: list[str] = []
    for school in order:
        selection = selections[school]
        for student in sorted(active, key=lambda r: r.id):
            if student.id in placed:
                continue
            mine = student_schools(student)
            if school and school not in mine:
                continue
            if not school and mine:  # the district scope's students without a school
                continue
            placed.add(student.id)
            selection.active_students += 1
            if named_set and student.id not in named_set:
                continue
            if student.managed_by_sync:
                selection.kept_sync_managed += 1
                if student.id in named_set:
                    named_managed.append(student.id)
                continue
            selection.to_archive.append(
                ArchiveCandidate(student.id, school, display_name(student), _reason(student), record_stamp(student))
            )
    for student_id in sorted(named_set - placed):
        student = by_id[student_id]
        if student.status != "active":
            raise CleanupRefusedError(f"--student {student_id}: already {student.status}")
        raise CleanupRefusedError(f"--student {student_id}: not in the clean-up's schools")
    kept = [selections[s] for s in order if s or selections[s].active_students]
    return CleanupSelection(district_id, DISTRICT if scope_schools is None else "schools", kept, sorted(named_managed))


def _reason(student: DirectoryRecord) -> str:
    if student.provider_ids:
        linked = ", ".join(sorted(student.provider_ids))
        return f"not sync-managed: linked to {linked} but not in the last sync's roster"
    return "not sync-managed: made in the product, no roster record matched them"


def _school_name(schools: dict[str, DirectoryRecord], school_id: str) -> str:
    if not school_id:
        return "(no school)"
    record = schools.get(school_id)
    return str(record.fields.get("name") or school_id) if record else school_id


def confirmation_needed(selection: CleanupSelection, settings: CleanupSettings) -> str:
    """Why this clean-up needs ``--yes-archive N`` (empty when it does not)."""
    reasons = []
    if selection.total > settings.confirm_over_students:
        reasons.append(f"{selection.total} students is over {settings.confirm_over_students}")
    for school in selection.schools:
        if school.active_students and school.to_archive:
            share = 100 * len(school.to_archive) / school.active_students
            if share > settings.confirm_over_school_percent:
                reasons.append(
                    f"{len(school.to_archive)} of {school.active_students} students of {school.school_name} "
                    f"({share:.0f} %) is over {settings.confirm_over_school_percent:g} %"
                )
    return "; ".join(reasons)


def preview_changes(previewed: dict[str, Any], current: CleanupSelection) -> list[str]:
    """What changed since the preview (empty: ``--confirm`` may apply it)."""
    before: dict[str, str] = {
        c["id"]: c["stamp"] for s in previewed.get("schools", []) for c in s.get("to_archive", [])
    }
    now = current.ids()
    changes = []
    for student_id in sorted(before.keys() - now.keys()):
        changes.append(f"{student_id} would no longer be archived (changed, restored, linked or archived since)")
    for student_id in sorted(now.keys() - before.keys()):
        changes.append(f"{student_id} would now be archived too (new or changed since the preview)")
    for student_id in sorted(before.keys() & now.keys()):
        if before[student_id] != now[student_id]:
            changes.append(f"{student_id} changed since the preview")
    return changes
