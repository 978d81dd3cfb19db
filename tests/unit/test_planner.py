"""SyncPlanner and the deletion threshold: plain data in, plan out. No network, no moto."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from same_plan import assert_same_plan, options_copy

from rostersync.directory.keys import COLLECTION_OF_KIND, COLLECTIONS, synced_record_id
from rostersync.directory.repository import DirectoryRecord, IndexEntry
from rostersync.domain.records import (
    ClassroomRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
)
from rostersync.matching.archive import check_deletion_threshold
from rostersync.matching.plan import ArchiveCandidate, PlanLine, PlannedWrite, SyncPlanner

DISTRICT = "d-1042"
PROVIDER = "clever"
PRODUCT_SCHOOL_ID = "sch_product_lincoln"  # a school the district admin created in the product


# -- roster builders ---------------------------------------------------------------------------------


def school(pid: str = "sch-1", name: str = "Lincoln Middle") -> SchoolRecord:
    return SchoolRecord(provider=PROVIDER, provider_id=pid, name=name)


def section(pid: str = "sec-1", school_pid: str = "sch-1", name: str = "Algebra I") -> ClassroomRecord:
    return ClassroomRecord(provider=PROVIDER, provider_id=pid, school=school_pid, name=name)


def person(pid: str, role: Role = Role.STUDENT, schools: tuple[str, ...] = ("sch-1",), **changes) -> PersonRecord:
    values = {"given_name": "Ada", "family_name": "Lovelace", "grade": "7"} | changes
    return PersonRecord(provider=PROVIDER, provider_id=pid, roles=[role], schools=list(schools), **values)


def guardian(pid: str, **changes) -> PersonRecord:
    values = {"given_name": "Grace", "email": f"{pid}@example.org"} | changes
    return PersonRecord(provider=PROVIDER, provider_id=pid, roles=[Role.GUARDIAN], **values)


def enrolment(section_pid: str, person_pid: str, role: str = "student") -> EnrollmentRecord:
    return EnrollmentRecord(
        provider=PROVIDER,
        provider_id=f"{section_pid}:{person_pid}",
        classroom=section_pid,
        person=person_pid,
        role=role,
    )


def link(guardian_pid: str, student_pid: str) -> GuardianLinkRecord:
    return GuardianLinkRecord(
        provider=PROVIDER,
        provider_id=f"{guardian_pid}:{student_pid}",
        guardian=guardian_pid,
        student=student_pid,
        relationship="parent",
    )


@dataclass
class Roster:
    schools: list[SchoolRecord] = field(default_factory=list)
    classrooms: list[ClassroomRecord] = field(default_factory=list)
    people: list[PersonRecord] = field(default_factory=list)
    guardians: list[PersonRecord] = field(default_factory=list)
    enrollments: list[EnrollmentRecord] = field(default_factory=list)
    guardian_links: list[GuardianLinkRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


def small_roster() -> Roster:
    """One matched school, one section, a teacher, two students, a guardian of one of them."""
    return Roster(
        schools=[school()],
        classrooms=[section()],
        people=[person("stu-1"), person("stu-2", given_name="Alan"), person("tch-1", Role.TEACHER)],
        guardians=[guardian("gdn-1")],
        enrollments=[enrolment("sec-1", "stu-1"), enrolment("sec-1", "stu-2"), enrolment("sec-1", "tch-1", "teacher")],
        guardian_links=[link("gdn-1", "stu-1")],
    )


# -- directory index builders -------------------------------------------------------------------------


def entry(
    record_id: str,
    kind: Kind,
    provider_id: str,
    *,
    managed: bool = True,
    status: str = "active",
    content_hash: str = "stale-hash",
) -> IndexEntry:
    return IndexEntry(
        id=record_id,
        kind=kind,
        status=status,
        managed_by_sync=managed,
        content_hash=content_hash,
        provider_ids={PROVIDER: provider_id},
    )


def product_school(pid: str = "sch-1", record_id: str = PRODUCT_SCHOOL_ID) -> IndexEntry:
    """A product school the admin matched by adding the provider's id to it (admin step 2)."""
    return entry(record_id, Kind.SCHOOLS, pid, managed=False, content_hash="")


def directory_index(*entries: IndexEntry) -> dict[str, dict[str, IndexEntry]]:
    index: dict[str, dict[str, IndexEntry]] = {c: {} for c in COLLECTIONS}
    for e in entries:
        index[COLLECTION_OF_KIND[e.kind]][e.provider_ids[PROVIDER]] = e
    return index


def index_after(
    writes: list[PlannedWrite], before: dict[str, dict[str, IndexEntry]]
) -> dict[str, dict[str, IndexEntry]]:
    """The index as the directory would read after Upsert applied ``writes``."""
    index = {c: dict(entries) for c, entries in before.items()}
    for w in writes:
        r: DirectoryRecord = w.record
        index[COLLECTION_OF_KIND[r.kind]][r.provider_ids[PROVIDER]] = IndexEntry(
            r.id, r.kind, r.status, r.managed_by_sync, r.content_hash, dict(r.provider_ids), parent_id=r.parent_id
        )
    return index


# -- running the planner ------------------------------------------------------------------------------


@dataclass
class Plan:
    planner: SyncPlanner
    writes: list[PlannedWrite]
    lines: list[PlanLine]
    errors: list[RecordError]
    candidates: list[ArchiveCandidate]

    def writes_of(self, kind: Kind) -> list[PlannedWrite]:
        return [w for w in self.writes if w.record.kind == kind]

    def write_for(self, provider_id: str) -> PlannedWrite:
        (found,) = [w for w in self.writes if w.record.provider_ids.get(PROVIDER) == provider_id]
        return found

    def line_for(self, kind: Kind, provider_id: str) -> PlanLine:
        (found,) = [line for line in self.lines if line.kind == kind and line.provider_id == provider_id]
        return found

    def counts(self, kind: Kind) -> dict[str, int]:
        return {k: v for k, v in self.planner.summary.counts[kind].items() if v}


def plan(
    roster: Roster,
    index: dict[str, dict[str, IndexEntry]],
    district_id: str = DISTRICT,
    delta: bool = False,
    **options: object,
) -> Plan:
    """Feed the roster to a planner in the order the Match step does."""
    writes: list[PlannedWrite] = []
    lines: list[PlanLine] = []
    errors: list[RecordError] = []
    before = options_copy({**options, "delta": delta})
    planner = SyncPlanner(
        district_id,
        PROVIDER,
        index,
        write=writes.append,
        line=lines.append,
        error=errors.append,
        delta=delta,
        **options,  # type: ignore[arg-type]
    )
    for error in roster.errors:
        planner.record_error(error)
    candidates = planner.plan(lambda collection: getattr(roster, collection))
    result = Plan(planner, writes, lines, errors, candidates)
    # The partitioned Match plans the same, whatever the partition count (matching.partition).
    assert_same_plan(district_id, PROVIDER, index, lambda c: getattr(roster, c), before, result, errors=roster.errors)
    return result


# -- schools ------------------------------------------------------------------------------------------


def test_a_school_no_product_school_carries_is_skipped_with_everything_in_it():
    # Given a roster school that no product school carries the id of
    roster = Roster(
        schools=[school("sch-9", "Unmatched High")],
        classrooms=[section("sec-9", "sch-9")],
        people=[person("stu-9", schools=("sch-9",)), person("tch-9", Role.TEACHER, schools=("sch-9",))],
        enrollments=[enrolment("sec-9", "stu-9")],
    )

    # When the run is planned against a directory with no matched school
    result = plan(roster, directory_index())

    # Then nothing is written, and the school, its section and its people are skipped, not errors
    assert result.writes == []
    assert result.errors == []
    school_line = result.line_for(Kind.SCHOOLS, "sch-9")
    assert school_line.action == "skipped"
    assert "no product school carries this clever id" in school_line.reason
    assert result.line_for(Kind.CLASSROOMS, "sec-9").action == "skipped"
    assert result.line_for(Kind.STUDENTS, "stu-9").action == "skipped"
    assert result.line_for(Kind.TEACHERS, "tch-9").action == "skipped"
    assert result.line_for(Kind.ENROLLMENTS, "sec-9:stu-9").action == "skipped"
    assert result.counts(Kind.SCHOOLS) == {"skipped": 1}
    assert result.counts(Kind.STUDENTS) == {"skipped": 1}


def test_a_school_is_matched_only_through_the_provider_id_on_a_product_school():
    # Given a product school carrying the roster school's Clever id, under another name
    roster = Roster(schools=[school("sch-1", "Lincoln Middle School (Clever)")], classrooms=[section()])

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then the product school keeps its id, no school is created, and its section lands in it
    school_write = result.write_for("sch-1")
    assert (school_write.op, school_write.record.id) == ("update", PRODUCT_SCHOOL_ID)
    assert not any(w.op == "create" for w in result.writes_of(Kind.SCHOOLS))
    classroom = result.write_for("sec-1").record
    assert (classroom.fields["school"], classroom.parent_id) == (PRODUCT_SCHOOL_ID, PRODUCT_SCHOOL_ID)


def test_a_school_no_longer_shared_is_an_error_and_never_an_archive_candidate():
    # Given two matched schools (one even marked sync-managed by an earlier run) that the roster no longer shares
    index = directory_index(
        product_school(),
        product_school("sch-2", "sch_product_2"),
        entry("sch_product_3", Kind.SCHOOLS, "sch-3", managed=True),
    )

    # When the run is planned with only the first school
    result = plan(Roster(schools=[school()]), index)

    # Then each missing school is an error the admin can act on, and none is archived
    assert {(e.kind, e.provider_id) for e in result.errors} == {(Kind.SCHOOLS, "sch-2"), (Kind.SCHOOLS, "sch-3")}
    assert all("no longer shared" in e.reason for e in result.errors)
    assert not any(c.kind == Kind.SCHOOLS for c in result.candidates)
    assert result.planner.summary.archive_candidates[Kind.SCHOOLS] == 0


# -- creates, updates, restores, unchanged ------------------------------------------------------------


def test_a_new_section_becomes_a_classroom_with_a_deterministic_id():
    # Given a matched school and a section the directory does not have
    roster = Roster(schools=[school()], classrooms=[section("sec-1")])
    index = directory_index(product_school())

    # When the run is planned twice (a retried Match)
    first = plan(roster, index)
    second = plan(roster, index)

    # Then both plans create the same classroom id, derived from the provider id
    (created,) = first.writes_of(Kind.CLASSROOMS)
    assert created.op == "create"
    assert created.record.id == synced_record_id(DISTRICT, "classrooms", PROVIDER, "sec-1")
    assert created.record.managed_by_sync is True
    assert [w.to_json() for w in second.writes_of(Kind.CLASSROOMS)] == [created.to_json()]
    assert first.line_for(Kind.CLASSROOMS, "sec-1").action == "created"
    # And another district's section with the same provider id gets another id
    (elsewhere,) = plan(roster, index, district_id="d-2000").writes_of(Kind.CLASSROOMS)
    assert elsewhere.record.id != created.record.id


def test_a_resync_of_an_unchanged_roster_writes_nothing():
    # Given the directory as it stands after a first sync of the roster
    roster = small_roster()
    before = directory_index(product_school())
    first = plan(roster, before)
    assert first.writes

    # When the same roster is planned again
    again = plan(roster, index_after(first.writes, before))

    # Then nothing is written and every record is counted unchanged
    assert again.writes == []
    assert again.errors == []
    assert again.candidates == []
    assert again.counts(Kind.STUDENTS) == {"unchanged": 2}
    assert again.counts(Kind.CLASSROOMS) == {"unchanged": 1}
    assert again.counts(Kind.ENROLLMENTS) == {"unchanged": 3}
    assert again.counts(Kind.GUARDIAN_LINKS) == {"unchanged": 1}
    assert again.counts(Kind.GUARDIANS) == {"unchanged": 1}


def test_a_changed_field_updates_the_existing_record_in_place():
    # Given the directory after a first sync
    roster = small_roster()
    before = directory_index(product_school())
    index = index_after(plan(roster, before).writes, before)
    existing_id = index["people"]["stu-2"].id

    # When one student's grade changes in the roster
    roster.people[1] = person("stu-2", given_name="Alan", grade="8")
    result = plan(roster, index)

    # Then exactly that student is updated, under the id it already has
    (update,) = result.writes
    assert (update.op, update.record.id, update.record.fields["grade"]) == ("update", existing_id, "8")
    assert result.line_for(Kind.STUDENTS, "stu-2").action == "updated"
    assert result.counts(Kind.STUDENTS) == {"updated": 1, "unchanged": 1}


def test_a_record_linked_by_hand_is_updated_under_the_product_id():
    # Given a product student the admin linked to a Clever id, with no synced hash yet
    index = directory_index(product_school(), entry("per_product_7", Kind.STUDENTS, "stu-1", managed=False))

    # When the roster has that student
    result = plan(Roster(schools=[school()], people=[person("stu-1")]), index)

    # Then the product's record is updated, never duplicated, and reported as linked
    (write,) = result.writes_of(Kind.STUDENTS)
    assert (write.op, write.record.id) == ("update", "per_product_7")
    assert result.line_for(Kind.STUDENTS, "stu-1").action == "linked"
    assert result.counts(Kind.STUDENTS) == {"linked": 1}


def test_an_archived_record_back_in_the_roster_is_restored_with_its_id():
    # Given a student sync archived on an earlier run
    index = directory_index(product_school(), entry("per_old_1", Kind.STUDENTS, "stu-1", status="archived"))

    # When the student is back in the roster
    result = plan(Roster(schools=[school()], people=[person("stu-1")]), index)

    # Then the same record is restored, active
    (write,) = result.writes_of(Kind.STUDENTS)
    assert (write.op, write.record.id, write.record.status) == ("restore", "per_old_1", "active")
    assert result.line_for(Kind.STUDENTS, "stu-1").action == "restored"
    assert result.counts(Kind.STUDENTS) == {"restored": 1}


# -- deprovisioning -----------------------------------------------------------------------------------


def test_a_sync_managed_record_missing_from_the_roster_is_an_archive_candidate():
    # Given a sync-managed student and enrollment the roster no longer has
    index = directory_index(
        product_school(),
        entry("per_gone", Kind.STUDENTS, "stu-gone"),
        entry("enr_gone", Kind.ENROLLMENTS, "sec-1:stu-gone"),
    )

    # When the run is planned
    result = plan(Roster(schools=[school()], people=[person("stu-1")]), index)

    # Then both are archive candidates, and nothing is written for them
    assert set(result.candidates) == {
        ArchiveCandidate(Kind.STUDENTS, "per_gone", "stu-gone"),
        ArchiveCandidate(Kind.ENROLLMENTS, "enr_gone", "sec-1:stu-gone"),
    }
    assert not any(w.record.id in {"per_gone", "enr_gone"} for w in result.writes)


def test_a_product_record_missing_from_the_roster_is_not_an_archive_candidate():
    # Given a student the product created (linked to Clever, but not sync-managed) and an already archived one
    index = directory_index(
        product_school(),
        entry("per_product", Kind.STUDENTS, "stu-x", managed=False),
        entry("per_archived", Kind.STUDENTS, "stu-y", status="archived"),
    )

    # When the roster does not have them
    result = plan(Roster(schools=[school()]), index)

    # Then neither is a candidate
    assert result.candidates == []
    assert result.planner.summary.archive_candidates[Kind.STUDENTS] == 0


def test_a_record_the_provider_sent_broken_is_not_archived():
    # Given a sync-managed student the provider still has but sent with an error
    index = directory_index(product_school(), entry("per_1", Kind.STUDENTS, "stu-1"))
    roster = Roster(
        schools=[school()],
        errors=[RecordError(kind=Kind.STUDENTS, provider_id="stu-1", reason="missing name")],
    )

    # When the run is planned
    result = plan(roster, index)

    # Then the error is reported and the student is not archived for it
    assert [e.provider_id for e in result.errors] == ["stu-1"]
    assert result.candidates == []


# -- references between records -----------------------------------------------------------------------


def test_an_enrollment_naming_a_student_not_in_the_roster_is_an_error_with_its_reason():
    # Given a section whose enrollment names a student the roster does not have
    roster = Roster(
        schools=[school()],
        classrooms=[section("sec-1")],
        enrollments=[enrolment("sec-1", "stu-ghost")],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then it is an error naming the section and the student, and nothing is written for it
    (error,) = result.errors
    assert (error.kind, error.provider_id) == (Kind.ENROLLMENTS, "sec-1:stu-ghost")
    assert error.reason == "section sec-1 names student stu-ghost, who is not in the roster"
    assert result.writes_of(Kind.ENROLLMENTS) == []
    assert result.counts(Kind.ENROLLMENTS) == {"errors": 1}


def test_an_enrollment_of_a_skipped_student_is_skipped_not_an_error():
    # Given a student whose only school is not matched, enrolled in a section of a matched school
    roster = Roster(
        schools=[school("sch-1"), school("sch-9", "Unmatched High")],
        classrooms=[section("sec-1", "sch-1")],
        people=[person("stu-9", schools=("sch-9",))],
        enrollments=[enrolment("sec-1", "stu-9")],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then the enrollment is skipped with a reason, and no error is raised
    assert result.errors == []
    line = result.line_for(Kind.ENROLLMENTS, "sec-1:stu-9")
    assert (line.action, line.reason) == ("skipped", "student is not synced")
    assert result.writes_of(Kind.ENROLLMENTS) == []


def test_a_guardian_is_synced_only_when_one_of_their_students_is():
    # Given one guardian of a synced student and one of a student in an unmatched school
    roster = Roster(
        schools=[school("sch-1"), school("sch-9", "Unmatched High")],
        people=[person("stu-1"), person("stu-9", schools=("sch-9",))],
        guardians=[guardian("gdn-1"), guardian("gdn-9")],
        guardian_links=[link("gdn-1", "stu-1"), link("gdn-9", "stu-9")],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then only the first guardian and their link are created
    assert result.write_for("gdn-1").op == "create"
    assert result.line_for(Kind.GUARDIANS, "gdn-9").reason == "none of their students is synced"
    link_write = result.write_for("gdn-1:stu-1").record
    assert link_write.fields["guardian"] == result.write_for("gdn-1").record.id
    assert link_write.fields["student"] == result.write_for("stu-1").record.id
    assert result.line_for(Kind.GUARDIAN_LINKS, "gdn-9:stu-9").action == "skipped"
    assert {w.record.provider_ids[PROVIDER] for w in result.writes_of(Kind.GUARDIANS)} == {"gdn-1"}
    assert result.errors == []


def test_a_duplicate_provider_id_is_an_error_and_the_first_record_is_kept():
    # Given a roster that sends the same student id twice, with different names
    roster = Roster(
        schools=[school()],
        people=[person("stu-1", given_name="First"), person("stu-1", given_name="Second")],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then the first is written once, and the second is an error naming the id
    (write,) = result.writes_of(Kind.STUDENTS)
    assert write.record.fields["given_name"] == "First"
    (error,) = result.errors
    assert (error.kind, error.provider_id) == (Kind.STUDENTS, "stu-1")
    assert "duplicate id stu-1" in error.reason
    assert result.counts(Kind.STUDENTS) == {"created": 1, "errors": 1}


def test_a_duplicate_is_reported_with_the_district_id_of_its_second_record():
    # Given a roster that sends a student id twice, the second time with only a student number, and a
    # school id twice
    roster = Roster(
        schools=[school(), school().model_copy(update={"school_number": "042"})],
        people=[person("stu-1", sis_id="S-1"), person("stu-1", student_number="N-2")],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then each error carries the district id of the record it rejected, chosen as report lines choose it
    assert sorted((e.provider_id, e.sis_id) for e in result.errors) == [("sch-1", "042"), ("stu-1", "N-2")]


def test_district_level_staff_with_no_school_are_synced():
    # Given a district administrator and a teacher, neither with a school in the roster
    roster = Roster(
        schools=[school()],
        people=[person("adm-1", Role.STAFF, schools=()), person("tch-0", Role.TEACHER, schools=())],
    )

    # When the run is planned
    result = plan(roster, directory_index(product_school()))

    # Then the staff member belongs to the district and is created; the teacher is skipped
    staff = result.write_for("adm-1")
    assert (staff.op, staff.record.kind, staff.record.parent_id, staff.record.fields["schools"]) == (
        "create",
        Kind.STAFF,
        "",
        [],
    )
    line = result.line_for(Kind.TEACHERS, "tch-0")
    assert (line.action, line.reason) == ("skipped", "the roster names no school for them")


# -- summary ------------------------------------------------------------------------------------------


def test_the_summary_counts_managed_records_and_archive_candidates_per_kind():
    # Given a directory with managed, archived and product records of several kinds
    index = directory_index(
        product_school(),
        entry("per_s1", Kind.STUDENTS, "stu-1"),
        entry("per_s2", Kind.STUDENTS, "stu-2"),
        entry("per_s3", Kind.STUDENTS, "stu-3"),
        entry("per_s4", Kind.STUDENTS, "stu-4", status="archived"),
        entry("per_s5", Kind.STUDENTS, "stu-5", managed=False),
        entry("per_t1", Kind.TEACHERS, "tch-1"),
        entry("per_t2", Kind.TEACHERS, "tch-2"),
    )

    # When a roster with two of the three managed students and one teacher is planned
    roster = Roster(schools=[school()], people=[person("stu-1"), person("stu-2"), person("tch-1", Role.TEACHER)])
    result = plan(roster, index)

    # Then the managed totals count active sync-managed records, and the candidates are the missing ones
    summary = result.planner.summary.to_json()
    assert summary["managed"] == {k.value: 0 for k in Kind} | {"students": 3, "teachers": 2}
    assert summary["archive_candidates"] == {k.value: 0 for k in Kind} | {"students": 1, "teachers": 1}
    assert {c.id for c in result.candidates} == {"per_s3", "per_t2"}
    assert set(summary["counts"]["students"]) == {
        "created",
        "updated",
        "linked",
        "edits_kept",
        "edits_overwritten",
        "archived",
        "restored",
        "unchanged",
        "skipped",
        "errors",
    }


# -- the deletion threshold ---------------------------------------------------------------------------


def test_archiving_exactly_the_threshold_is_allowed():
    # Given 10 of 100 managed students would be archived, with a 10 % threshold
    checks = check_deletion_threshold({Kind.STUDENTS: 10}, {Kind.STUDENTS: 100}, 10.0)

    # Then the check passes at exactly 10 %
    assert checks[Kind.STUDENTS].percent == 10.0
    assert checks[Kind.STUDENTS].exceeded is False


@pytest.mark.parametrize(("would_archive", "managed"), [(11, 100), (1, 9), (101, 1000)])
def test_archiving_just_over_the_threshold_is_exceeded(would_archive, managed):
    checks = check_deletion_threshold({Kind.STUDENTS: would_archive}, {Kind.STUDENTS: managed}, 10.0)

    assert checks[Kind.STUDENTS].exceeded is True


def test_the_threshold_is_checked_per_kind():
    # Given students well within the threshold and teachers over it
    checks = check_deletion_threshold(
        {Kind.STUDENTS: 5, Kind.TEACHERS: 3, Kind.GUARDIANS: 0},
        {Kind.STUDENTS: 1000, Kind.TEACHERS: 10, Kind.GUARDIANS: 50},
        10.0,
    )

    # Then only the teachers exceed it, and a kind with nothing to archive is not checked
    assert {kind: check.exceeded for kind, check in checks.items()} == {Kind.STUDENTS: False, Kind.TEACHERS: True}


def test_a_kind_with_no_managed_records_does_not_divide_by_zero():
    # Given a kind with no sync-managed records at all
    nothing = check_deletion_threshold({Kind.STAFF: 0}, {}, 10.0)
    odd = check_deletion_threshold({Kind.STAFF: 2}, {Kind.STAFF: 0}, 10.0)

    # Then the check runs without a division error, and archiving from nothing managed is held back
    assert nothing == {}
    assert odd[Kind.STAFF].percent == 100.0
    assert odd[Kind.STAFF].exceeded


# -- deltas -------------------------------------------------------------------------------------------


def test_a_delta_resolves_references_to_records_already_in_the_directory_and_archives_nothing_by_absence():
    # Given a directory synced from a full roster
    full = small_roster()
    first = plan(full, directory_index(product_school()))
    index = index_after(first.writes, directory_index(product_school()))

    # When a delta mentions only a changed enrollment (now as teacher) of an existing person in an existing section
    student_pid = full.people[0].provider_id
    section_pid = full.classrooms[0].provider_id
    delta = Roster(people=[], enrollments=[enrolment(section_pid, student_pid, "teacher")])
    result = plan(delta, index, delta=True)

    # Then the enrollment is updated against the existing records, with no error and no archive candidate
    (write,) = result.writes
    assert write.op == "update" and write.record.fields["role"] == "teacher"
    assert write.record.fields["person"] == index["people"][student_pid].id
    assert write.record.fields["classroom"] == index["classrooms"][section_pid].id
    assert result.errors == []
    assert result.candidates == []


def test_a_delta_archives_what_the_provider_marked_deleted():
    from rostersync.domain.records import DeletedRecord

    full = small_roster()
    index = index_after(plan(full, directory_index(product_school())).writes, directory_index(product_school()))
    student_pid = full.people[0].provider_id

    writes: list[PlannedWrite] = []
    planner = SyncPlanner(
        DISTRICT, PROVIDER, index, write=writes.append, line=lambda _: None, error=lambda _: None, delta=True
    )
    planner.record_deleted(DeletedRecord(kind=Kind.STUDENTS, provider_id=student_pid))

    candidates = {c.provider_id: c for c in planner.archive_candidates()}

    # Then the student is archived, and their enrollments and guardian links go with them
    assert candidates[student_pid].id == index["people"][student_pid].id
    assert set(candidates) == {student_pid, f"sec-1:{student_pid}", f"gdn-1:{student_pid}"}


def test_a_roster_that_empties_a_school_is_flagged_even_under_the_district_threshold():
    # Given a district whose directory holds 6 synced students in school A and 94 in school B
    def student(n: int, school: str) -> IndexEntry:
        return IndexEntry(f"per_{n}", Kind.STUDENTS, "active", True, "h", {PROVIDER: f"stu-{n}"}, parent_id=school)

    entries = [student(n, "sch_a") for n in range(6)] + [student(n, "sch_b") for n in range(6, 100)]
    index = directory_index(*entries, product_school("sch-a", "sch_a"), product_school("sch-b", "sch_b"))

    # When the roster still has school B's students but none of school A's (6 % of the district)
    roster = Roster(
        schools=[school("sch-a"), school("sch-b")],
        people=[person(f"stu-{n}", schools=("sch-b",)) for n in range(6, 100)],
    )
    result = plan(roster, index)
    planner, candidates = result.planner, result.candidates

    # Then the six are below the 10 % threshold, yet school A is reported as emptied and none is a candidate
    assert not check_deletion_threshold({Kind.STUDENTS: 6}, {Kind.STUDENTS: 100}, 10.0)[Kind.STUDENTS].exceeded
    assert planner.summary.emptied_schools == {"sch_a": 6}
    assert candidates == []
    assert planner.summary.held_schools == {"sch_a": {"name": "Lincoln Middle", "held": {"students": 6}}}


def two_school_roster(students_per_school: int = 6) -> Roster:
    """Schools A and B, each with a section, a teacher, students, a guardian per student, and the links."""
    roster = Roster(schools=[school("sch-a", "Adams Elementary"), school("sch-b", "Baker Elementary")])
    for s in ("a", "b"):
        roster.classrooms.append(section(f"sec-{s}", f"sch-{s}"))
        roster.people.append(person(f"tch-{s}", Role.TEACHER, schools=(f"sch-{s}",), email=f"t-{s}@example.org"))
        roster.enrollments.append(enrolment(f"sec-{s}", f"tch-{s}", "teacher"))
        for n in range(students_per_school):
            roster.people.append(person(f"stu-{s}{n}", schools=(f"sch-{s}",), given_name=f"S{s}{n}"))
            roster.guardians.append(guardian(f"gdn-{s}{n}"))
            roster.enrollments.append(enrolment(f"sec-{s}", f"stu-{s}{n}"))
            roster.guardian_links.append(link(f"gdn-{s}{n}", f"stu-{s}{n}"))
    return roster


def test_a_school_missing_from_the_export_keeps_everything_of_that_school():
    # Given night 1 synced schools A and B (a teacher, a classroom, 6 students, 6 guardians each)
    schools = directory_index(product_school("sch-a", "sch_a"), product_school("sch-b", "sch_b"))
    night_1 = two_school_roster()
    index = index_after(plan(night_1, schools).writes, schools)

    # When night 2's export lacks school A entirely (its school, section, people and links)
    night_2 = two_school_roster()
    night_2.schools = [s for s in night_2.schools if s.provider_id == "sch-b"]
    night_2.classrooms = [c for c in night_2.classrooms if c.school == "sch-b"]
    night_2.people = [p for p in night_2.people if p.schools == ["sch-b"]]
    night_2.guardians = [g for g in night_2.guardians if g.provider_id.startswith("gdn-b")]
    night_2.enrollments = [e for e in night_2.enrollments if e.classroom == "sec-b"]
    night_2.guardian_links = [g for g in night_2.guardian_links if g.student.startswith("stu-b")]
    result = plan(night_2, index, school_names={"sch_a": "Adams Elementary", "sch_b": "Baker Elementary"})

    # Then nothing of school A is an archive candidate: people, classroom, enrollments, links, guardians
    assert result.candidates == []
    assert result.planner.summary.emptied_schools == {"sch_a": 6}
    assert result.planner.summary.held_schools == {
        "sch_a": {
            "name": "Adams Elementary",
            "held": {
                "classrooms": 1,
                "enrollments": 7,
                "guardian_links": 6,
                "guardians": 6,
                "students": 6,
                "teachers": 1,
            },
        }
    }
    assert all(n == 0 for n in result.planner.summary.archive_candidates.values())
    # and each held record is a would_archive line that names the school
    held = [line for line in result.lines if line.action == "would_archive"]
    assert len(held) == 27
    assert all("Adams Elementary (sch_a)" in line.reason and "broken export" in line.reason for line in held)


def test_a_school_losing_some_students_still_archives_them():
    # Given the same two schools, when 2 of school A's 6 students leave (not all of them)
    schools = directory_index(product_school("sch-a", "sch_a"), product_school("sch-b", "sch_b"))
    index = index_after(plan(two_school_roster(), schools).writes, schools)
    night_2 = two_school_roster()
    gone = {"stu-a0", "stu-a1"}
    night_2.people = [p for p in night_2.people if p.provider_id not in gone]
    result = plan(night_2, index)

    # Then they are archive candidates as usual, and no school is held
    assert {c.provider_id for c in result.candidates if c.kind == Kind.STUDENTS} == gone
    assert result.planner.summary.held_schools == {}


def test_a_record_whose_id_could_not_be_read_holds_archiving_of_its_kind():
    # Given night 1 synced the small roster
    schools = directory_index(product_school())
    index = index_after(plan(small_roster(), schools).writes, schools)

    # When night 2 sends stu-2 with a corrupted id (the provider reports it as an error holding people)
    night_2 = small_roster()
    night_2.people = [p for p in night_2.people if p.provider_id != "stu-2"]
    night_2.enrollments = [e for e in night_2.enrollments if e.person != "stu-2"]
    night_2.errors = [
        RecordError(kind=Kind.STUDENTS, reason="its id is corrupted", holds_archive=["people", "enrollments"])
    ]
    result = plan(night_2, index)

    # Then stu-2 and its enrollment are not archived (they may be the corrupted record), only listed as held
    assert result.candidates == []
    assert result.planner.summary.held_unreadable == {"students": 1, "enrollments": 1}
    assert result.line_for(Kind.STUDENTS, "stu-2").action == "would_archive"
