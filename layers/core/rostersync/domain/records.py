"""Canonical roster records, as every provider yields them.

A provider (Clever, OneRoster REST, OneRoster CSV) turns its own wire format into these records and
nothing provider-specific leaves ``rostersync.providers``. References between records (a section's
school, an enrollment's person) are *provider ids*; matching resolves them to directory ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Kind(StrEnum):
    """The kinds of record a sync manages, in the order they are matched and reported."""

    SCHOOLS = "schools"
    CLASSROOMS = "classrooms"
    STUDENTS = "students"
    TEACHERS = "teachers"
    STAFF = "staff"
    GUARDIANS = "guardians"
    ENROLLMENTS = "enrollments"
    GUARDIAN_LINKS = "guardian_links"


PEOPLE_KINDS = (Kind.STUDENTS, Kind.TEACHERS, Kind.STAFF, Kind.GUARDIANS)


class Role(StrEnum):
    """A person's roles in the product's directory."""

    STUDENT = "student"
    TEACHER = "teacher"
    STAFF = "staff"
    GUARDIAN = "guardian"


# A person is counted (and threshold-checked) under the first of their roles in this order.
_ROLE_KIND = {
    Role.STUDENT: Kind.STUDENTS,
    Role.TEACHER: Kind.TEACHERS,
    Role.STAFF: Kind.STAFF,
    Role.GUARDIAN: Kind.GUARDIANS,
}


def kind_of_roles(roles: list[Role]) -> Kind:
    """Return the kind a person with these roles is counted under (student > teacher > staff > guardian)."""
    for role in _ROLE_KIND:
        if role in roles:
            return _ROLE_KIND[role]
    raise ValueError("a person needs at least one role")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    provider_id: str

    def synced_fields(self) -> dict[str, object]:
        """The fields the sync owns: everything but the provider identity."""
        return self.model_dump(mode="json", exclude={"provider", "provider_id", "record_type"})


class SchoolRecord(_Record):
    record_type: Literal["school"] = "school"
    name: str
    school_number: str = ""
    nces_id: str = ""
    state_id: str = ""
    sis_id: str = ""
    low_grade: str = ""
    high_grade: str = ""
    phone: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.SCHOOLS


class ClassroomRecord(_Record):
    """A provider section, which becomes a classroom in its school."""

    record_type: Literal["classroom"] = "classroom"
    school: str
    name: str
    period: str = ""
    grade: str = ""
    subject: str = ""
    course: str = ""
    term: str = ""
    sis_id: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.CLASSROOMS


class PersonRecord(_Record):
    """A student, teacher, staff member or guardian; one record may hold several roles."""

    record_type: Literal["person"] = "person"
    roles: list[Role]
    given_name: str = ""
    middle_name: str = ""
    family_name: str = ""
    email: str = ""
    phone: str = ""
    phone_type: str = ""
    schools: list[str] = Field(default_factory=list)
    grade: str = ""
    sis_id: str = ""
    student_number: str = ""
    state_id: str = ""
    teacher_number: str = ""
    title: str = ""
    birth_date: str = ""
    home_language: str = ""

    @property
    def kind(self) -> Kind:
        return kind_of_roles(self.roles)


class EnrollmentRecord(_Record):
    """A person in a classroom; ``provider_id`` is ``<section>:<person>``."""

    record_type: Literal["enrollment"] = "enrollment"
    classroom: str
    person: str
    role: Literal["student", "teacher"]

    @property
    def kind(self) -> Kind:
        return Kind.ENROLLMENTS


class GuardianLinkRecord(_Record):
    """A guardian's link to a student; ``provider_id`` is ``<guardian>:<student>``."""

    record_type: Literal["guardian_link"] = "guardian_link"
    guardian: str
    student: str
    relationship: str = ""
    contact_type: str = ""

    @property
    def kind(self) -> Kind:
        return Kind.GUARDIAN_LINKS


RosterRecord = Annotated[
    SchoolRecord | ClassroomRecord | PersonRecord | EnrollmentRecord | GuardianLinkRecord,
    Field(discriminator="record_type"),
]


# The district's own id of a record, first found wins: what the district's SIS shows.
DISTRICT_ID_FIELDS = ("sis_id", "student_number", "teacher_number", "school_number", "state_id")


def district_id_of(fields: Mapping[str, Any]) -> str:
    """The district's own id of a record (SIS id, else student, teacher, school or state number).

    ``fields`` are a record's fields by their canonical names: a canonical record's, a directory
    record's, or what a provider reads of a raw record it could not use.
    """
    for name in DISTRICT_ID_FIELDS:
        value = fields.get(name)
        if value:
            return str(value)
    return ""


def _shown_district_id(value: str) -> str:
    # The record is broken: its district id may be too (a control character, a field of 10 kB). Clean
    # text under the id limit is shown as it is; anything else escaped and cut, as ids are in reasons.
    from rostersync.domain.ids import id_problem, shown_id

    return value if not value or id_problem(value) is None else shown_id(value)


class RecordError(BaseModel):
    """A provider record that could not be used, with a reason a district admin can act on.

    ``sis_id`` is the district's own id of that record (``district_id_of``), when it has one, so the admin
    can find it in their SIS; "" for a record that could not be read at all.

    ``holds_archive`` names the directory collections of which nothing may be archived this run because
    of it: a record whose id is corrupted, or rows a broken file swallowed, stand for existing records
    that cannot be told, so none of those may count as "no longer in the roster".
    """

    model_config = ConfigDict(frozen=True)

    record_type: Literal["error"] = "error"
    kind: Kind
    provider_id: str = ""
    reason: str
    holds_archive: list[str] = Field(default_factory=list)
    sis_id: Annotated[str, AfterValidator(_shown_district_id)] = ""


# What an unreadable record of a kind holds back: its own collection and what hangs on it (a person's
# enrollments and guardian links, a classroom's enrollments), whose ids are made of its id.
ARCHIVE_HOLDS: dict[Kind, list[str]] = {
    Kind.SCHOOLS: ["schools", "classrooms", "people", "enrollments", "guardian_links"],
    Kind.CLASSROOMS: ["classrooms", "enrollments"],
    Kind.STUDENTS: ["people", "enrollments", "guardian_links"],
    Kind.TEACHERS: ["people", "enrollments", "guardian_links"],
    Kind.STAFF: ["people", "enrollments", "guardian_links"],
    Kind.GUARDIANS: ["people", "enrollments", "guardian_links"],
    Kind.ENROLLMENTS: ["enrollments"],
    Kind.GUARDIAN_LINKS: ["guardian_links"],
}


def unclean_id_error(
    kind: Kind, noun: str, position: int, value: object, problem: str, sis_id: str = ""
) -> RecordError:
    """The error line of a record whose id breaks the id rule (``domain.ids``): never synced, and it
    holds back archiving of its kind (the record it stands for cannot be told). ``sis_id``: the record's
    district id, when it has one (the admin finds the record by it)."""
    from rostersync.domain.ids import shown_id

    return RecordError(
        kind=kind,
        reason=f"{noun} number {position}: its id {shown_id(value)} {problem}; not synced, and nothing of this "
        "kind is archived this run (the record it stands for cannot be told). Fix the id in the export",
        holds_archive=ARCHIVE_HOLDS[kind],
        sis_id=sis_id,
    )


class DeletedRecord(BaseModel):
    """The provider says a record is gone (OneRoster ``status=tobedeleted``): archive it, even in a delta."""

    model_config = ConfigDict(frozen=True)

    record_type: Literal["deleted"] = "deleted"
    kind: Kind
    provider_id: str


class TouchedRecord(BaseModel):
    """A person or section the provider's change feed named in this run (created, changed or deleted: Clever
    events). An incremental run archives only what it touched (``FetchOutcome.touched_only``); a reconcile
    counts what it changed outside of them as caught."""

    model_config = ConfigDict(frozen=True)

    record_type: Literal["touched"] = "touched"
    collection: Literal["people", "classrooms"]
    provider_id: str


SnapshotItem = Annotated[
    SchoolRecord
    | ClassroomRecord
    | PersonRecord
    | EnrollmentRecord
    | GuardianLinkRecord
    | RecordError
    | DeletedRecord
    | TouchedRecord,
    Field(discriminator="record_type"),
]


def content_hash(fields: dict[str, object]) -> str:
    """Return a stable hash of a record's synced fields, used to skip unchanged records."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def limit_error(
    item: RosterRecord, max_id_bytes: int, max_record_bytes: int, size: int | None = None
) -> RecordError | None:
    """The error line of a record over the id or record size limit (settings ``limits``), or None.

    Checked for every provider where Fetch writes the snapshot: such a record would pass locally and
    break DynamoDB's key or item limit on AWS, failing the district every night. ``size``: the record's
    JSON in UTF-8 bytes, when the caller serialised it already (Fetch writes those bytes)."""
    from rostersync.domain.ids import id_problem, shown_id

    problem = id_problem(item.provider_id, max_id_bytes)
    if problem:
        sis_id = district_id_of(item.model_dump())
        return unclean_id_error(item.kind, item.record_type, 0, item.provider_id, problem, sis_id).model_copy(
            update={
                "reason": f"a {item.record_type} whose id {shown_id(item.provider_id)} {problem}; not synced, "
                "and nothing of this kind is archived this run. Fix the id in the export"
            }
        )
    if size is None:
        size = len(item.model_dump_json().encode("utf-8"))
    if size > max_record_bytes:
        return RecordError(
            kind=item.kind,
            provider_id=item.provider_id,
            sis_id=district_id_of(item.model_dump()),
            reason=f"this {item.record_type} is {size:,} bytes, over the limit of {max_record_bytes:,} (settings "
            "limits.max_record_bytes): a field holds far more than it should; not synced",
        )
    return None
