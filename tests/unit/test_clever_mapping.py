"""Clever records → canonical records, on plain dicts (no network)."""

from __future__ import annotations

from typing import Any

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
from rostersync.providers.clever import (
    IDS_AS_NAMES,
    map_schools,
    map_sections,
    map_users,
    name_classroom,
    names_by_id,
)


def item(data: Any) -> dict[str, Any]:
    """Wrap a record as Clever's list responses do."""
    return {"data": data, "uri": "/v3.0/things/x"}


def only(records: list[Any], cls: type) -> list[Any]:
    return [record for record in records if isinstance(record, cls)]


STUDENT = {
    "id": "5a25ffb0c1bc2a00360003ed",
    "email": "z.steve@example.net",
    "name": {"first": "Steve", "middle": "G", "last": "Ziemann"},
    "roles": {
        "student": {
            "dob": "2/11/2007",
            "grade": "Kindergarten",
            "school": "school-b",
            "schools": ["school-a", "school-b"],
            "sis_id": "100095233",
            "state_id": "231786324",
            "student_number": "100095234",
            "home_language": "Spanish",
        }
    },
}

CONTACT = {
    "id": "contact-1",
    "email": "aaron.berge@example.com",
    "name": {"last": "Aaron Berge"},
    "roles": {
        "contact": {
            "phone": "555-0100",
            "phone_type": "Cell",
            "sis_id": "c-9",
            "student_relationships": [
                {"relationship": "Parent", "student": "student-1", "type": "Parent/Guardian"},
                {"relationship": "Grandparent", "student": "student-2", "type": "Emergency"},
            ],
        }
    },
}

SECTION = {
    "id": "section-1",
    "school": "school-a",
    "name": "Group Guidance - Greene - 0",
    "period": "0",
    "grade": "Kindergarten",
    "subject": "homeroom/advisory",
    "course": "course-1",
    "term_id": "term-1",
    "sis_id": "581",
    "students": ["student-1", "student-2"],
    "teacher": "teacher-1",
    "teachers": ["teacher-1", "teacher-2", "teacher-3"],
}


def test_student_fields_map_to_a_person_with_the_student_role():
    # Given a Clever student
    # When it is mapped
    [person] = list(map_users([item(STUDENT)]))

    # Then every synced field comes through, dob as given and schools from the schools list
    assert person == PersonRecord(
        provider="clever",
        provider_id="5a25ffb0c1bc2a00360003ed",
        roles=[Role.STUDENT],
        given_name="Steve",
        middle_name="G",
        family_name="Ziemann",
        email="z.steve@example.net",
        schools=["school-a", "school-b"],
        grade="Kindergarten",
        sis_id="100095233",
        student_number="100095234",
        state_id="231786324",
        birth_date="2007-02-11",
        home_language="Spanish",
    )
    assert person.kind is Kind.STUDENTS


def test_teacher_staff_and_district_admin_roles_map_to_teacher_and_staff():
    # Given a teacher, a staff member, a district admin and a user who is both teacher and staff
    users = [
        {"id": "t1", "roles": {"teacher": {"school": "s1", "teacher_number": "230186", "title": "Grade 9 English"}}},
        {"id": "s1", "roles": {"staff": {"staff_id": "st-7", "title": "Nurse", "schools": ["s1", "s2"]}}},
        {"id": "a1", "email": "admin@example.org", "roles": {"district_admin": {"title": "Superintendent"}}},
        {"id": "ts", "roles": {"teacher": {"schools": ["s1"]}, "staff": {"schools": ["s1", "s3"]}}},
    ]

    # When they are mapped
    people = {person.provider_id: person for person in map_users(item(user) for user in users)}

    # Then each has the product roles, and role fields land where the directory expects them
    assert people["t1"].roles == [Role.TEACHER]
    assert (people["t1"].teacher_number, people["t1"].title, people["t1"].schools) == (
        "230186",
        "Grade 9 English",
        ["s1"],
    )
    assert people["s1"].roles == [Role.STAFF]
    assert (people["s1"].sis_id, people["s1"].schools) == ("st-7", ["s1", "s2"])
    assert people["a1"].roles == [Role.STAFF]
    assert people["a1"].title == "Superintendent"
    assert people["ts"].roles == [Role.TEACHER, Role.STAFF]
    assert people["ts"].schools == ["s1", "s3"]


def test_contact_with_only_a_last_name_keeps_it_as_family_name_and_gets_no_schools():
    # Given a Clever contact whose whole name is in name.last
    # When it is mapped
    records = list(map_users([item(CONTACT)]))

    # Then it is a guardian with the full name as family name and no derived schools
    [guardian] = only(records, PersonRecord)
    assert guardian.roles == [Role.GUARDIAN]
    assert (guardian.given_name, guardian.family_name) == ("", "Aaron Berge")
    assert (guardian.phone, guardian.phone_type, guardian.sis_id) == ("555-0100", "Cell", "c-9")
    assert guardian.schools == []
    assert guardian.kind is Kind.GUARDIANS


def test_contact_yields_one_guardian_link_per_student_relationship():
    # Given a contact related to two students
    # When it is mapped
    links = only(list(map_users([item(CONTACT)])), GuardianLinkRecord)

    # Then there is a link per student, keyed contact:student, with relationship and contact type
    assert links == [
        GuardianLinkRecord(
            provider="clever",
            provider_id="contact-1:student-1",
            guardian="contact-1",
            student="student-1",
            relationship="Parent",
            contact_type="Parent/Guardian",
        ),
        GuardianLinkRecord(
            provider="clever",
            provider_id="contact-1:student-2",
            guardian="contact-1",
            student="student-2",
            relationship="Grandparent",
            contact_type="Emergency",
        ),
    ]


def test_section_becomes_a_classroom_with_an_enrollment_per_student_and_every_teacher():
    # Given a section with two students and three teachers, and the names of its course and term
    courses = names_by_id([item({"id": "course-1", "name": "Guidance K"})])
    terms = names_by_id([item({"id": "term-1", "name": "2024-25"})])

    # When it is mapped
    records = list(map_sections([item(SECTION)], courses, terms))

    # Then a classroom named after course and term, and five enrollments keyed section:person
    [classroom] = only(records, ClassroomRecord)
    assert classroom == ClassroomRecord(
        provider="clever",
        provider_id="section-1",
        school="school-a",
        name="Group Guidance - Greene - 0",
        period="0",
        grade="Kindergarten",
        subject="homeroom/advisory",
        course="Guidance K",
        term="2024-25",
        sis_id="581",
    )
    enrollments = {(e.provider_id, e.classroom, e.person, e.role) for e in only(records, EnrollmentRecord)}
    assert enrollments == {
        ("section-1:student-1", "section-1", "student-1", "student"),
        ("section-1:student-2", "section-1", "student-2", "student"),
        ("section-1:teacher-1", "section-1", "teacher-1", "teacher"),
        ("section-1:teacher-2", "section-1", "teacher-2", "teacher"),
        ("section-1:teacher-3", "section-1", "teacher-3", "teacher"),
    }
    assert not only(records, RecordError)


def test_section_without_a_teachers_list_enrolls_its_teacher():
    # Given an older section with only the primary teacher, and a course and term Clever did not send
    section = {"id": "section-2", "school": "school-a", "teacher": "teacher-9", "course": "gone", "term_id": "gone"}

    # When it is mapped
    records = list(map_sections([item(section)], {}, {}))

    # Then the teacher is enrolled and unknown course/term names are empty
    assert [(e.person, e.role) for e in only(records, EnrollmentRecord)] == [("teacher-9", "teacher")]
    [classroom] = only(records, ClassroomRecord)
    assert (classroom.course, classroom.term) == ("", "")


def test_section_without_school_or_id_is_reported_and_yields_no_enrollments():
    # Given a section with no school and one with no id
    sections = [{"id": "orphan", "name": "Lost", "students": ["s1"]}, {"school": "school-a", "name": "No id"}]

    # When they are mapped
    records = list(map_sections((item(s) for s in sections), {}, {}))

    # Then both are reported under classrooms and nothing else comes out
    assert all(isinstance(record, RecordError) for record in records)
    assert [(e.kind, e.provider_id) for e in records] == [(Kind.CLASSROOMS, "orphan"), (Kind.CLASSROOMS, "")]
    assert "no school" in records[0].reason
    assert records[1].reason == "section record has no id"


def test_unknown_enum_values_are_passed_through():
    # Given values outside Clever's published enums
    school = {"id": "s1", "name": "Adult Ed", "low_grade": "Adult", "high_grade": "Grade 14"}
    section = {**SECTION, "grade": "Grade 13 1/2", "subject": "robotics"}
    contact = {
        "id": "c1",
        "roles": {
            "contact": {
                "phone_type": "Pager",
                "student_relationships": [{"student": "st1", "relationship": "Godparent", "type": "Carpool"}],
            }
        },
    }

    # When they are mapped
    [school_record] = list(map_schools([item(school)]))
    [classroom] = only(list(map_sections([item(section)], {}, {})), ClassroomRecord)
    records = list(map_users([item(contact)]))

    # Then they are kept as text, not rejected
    assert (school_record.low_grade, school_record.high_grade) == ("Adult", "Grade 14")
    assert (classroom.grade, classroom.subject) == ("Grade 13 1/2", "robotics")
    assert only(records, PersonRecord)[0].phone_type == "Pager"
    [link] = only(records, GuardianLinkRecord)
    assert (link.relationship, link.contact_type) == ("Godparent", "Carpool")


def test_missing_and_null_optional_fields_become_empty():
    # Given records carrying little more than an id, some fields null (Clever's x-nullable)
    school = {"id": "s1", "name": None, "phone": None}
    student = {"id": "u1", "name": None, "email": None, "roles": {"student": {"grade": None, "schools": None}}}
    section = {"id": "sec", "school": "s1", "period": None, "students": None, "teachers": None, "teacher": None}

    # When they are mapped
    [school_record] = list(map_schools([item(school)]))
    [person] = list(map_users([item(student)]))
    records = list(map_sections([item(section)], {}, {}))

    # Then the records exist with empty fields and no errors
    assert (school_record.name, school_record.phone) == ("", "")
    assert person == PersonRecord(provider="clever", provider_id="u1", roles=[Role.STUDENT])
    assert [type(record) for record in records] == [ClassroomRecord]
    assert records[0].period == ""


def test_user_without_id_is_reported():
    # Given a student whose record has no id
    # When it is mapped
    [error] = list(map_users([item({"name": {"first": "A"}, "roles": {"student": {}}})]))

    # Then it is reported under students with the reason
    assert error == RecordError(kind=Kind.STUDENTS, provider_id="", reason="user record has no id")


def test_user_with_only_unknown_roles_is_reported_under_staff():
    # Given a user whose only roles rostersync does not sync, and one with no roles at all
    users = [{"id": "u1", "roles": {"foo": {}}}, {"id": "u2", "roles": {"student": None}}]

    # When they are mapped
    errors = list(map_users(item(user) for user in users))

    # Then each is a staff-kind error naming the roles it had
    assert errors == [
        RecordError(kind=Kind.STAFF, provider_id="u1", reason="user has no role rostersync syncs (roles: foo)"),
        RecordError(kind=Kind.STAFF, provider_id="u2", reason="user has no role rostersync syncs (roles: student)"),
    ]


def test_duplicate_id_keeps_the_first_and_reports_the_rest():
    # Given the same school id twice with different names
    schools = [
        {"id": "5a25ff950a5f621109000004", "name": "First"},
        {"id": "5a25ff950a5f621109000004", "name": "Second"},
    ]

    # When they are mapped
    records = list(map_schools(item(school) for school in schools))

    # Then the first is used and the second is reported
    assert isinstance(records[0], SchoolRecord)
    assert records[0].name == "First"
    assert isinstance(records[1], RecordError)
    assert records[1].kind is Kind.SCHOOLS
    assert records[1].provider_id == "5a25ff950a5f621109000004"
    assert "appears more than once" in records[1].reason
    assert "the first was used" in records[1].reason
    assert len(records) == 2


def test_items_that_are_not_records_are_reported_and_the_rest_continue():
    # Given a list with a bare string, an item without a data object, then a good user
    items = ["junk", {"uri": "/v3.0/users/x"}, item(STUDENT)]

    # When they are mapped
    records = list(map_users(items))

    # Then two errors, and the good user still comes through
    assert [type(record) for record in records] == [RecordError, RecordError, PersonRecord]
    assert "not a record" in records[0].reason


def test_bad_student_relationships_are_reported_without_losing_the_contact():
    # Given a contact whose relationships include a non-object, one without student, and a repeat
    relationships = ["junk", {"relationship": "Parent"}, {"student": "st1"}, {"student": "st1"}]
    contact = {"id": "c1", "roles": {"contact": {"student_relationships": relationships}}}

    # When it is mapped
    records = list(map_users([item(contact)]))

    # Then the guardian and one link come through, the three bad entries are reported
    assert len(only(records, PersonRecord)) == 1
    assert [link.provider_id for link in only(records, GuardianLinkRecord)] == ["c1:st1"]
    errors = only(records, RecordError)
    assert [error.kind for error in errors] == [Kind.GUARDIAN_LINKS] * 3


def test_a_list_mapped_in_parts_gives_what_it_gives_whole():
    # Given a users list with a user without an id, a user twice and an item that is not a record,
    # cut in three parts as Fetch's slices read it
    other = {**STUDENT, "id": "5a25ffb0c1bc2a00360003ee"}
    users = [item(STUDENT), item({"name": {}}), "junk", item(other), item({**STUDENT, "name": {"last": "Copy"}})]
    whole = list(map_users(users))

    # When each part is mapped on its own, with the ids the parts before it saw and its first position
    seen: set[int | str] = set()
    parts: list[Any] = []
    for start, end in ((0, 2), (2, 3), (3, 5)):
        parts += map_users(users[start:end], seen, start + 1)

    # Then the same records and the same error lines (the duplicate found across parts, positions whole)
    assert parts == whole
    assert [e.reason for e in only(whole, RecordError)][-1].startswith("duplicate id 5a25ffb0c1bc2a00360003ed")
    assert any("number 3" in e.reason for e in only(whole, RecordError))


def test_a_section_mapped_with_ids_and_named_later_is_the_section_mapped_with_names():
    # Given the names of the section's course and term
    courses = names_by_id([item({"id": "course-1", "name": "Guidance K"})])
    terms = names_by_id([item({"id": "term-1", "name": "2024-25"})])

    # When it is mapped keeping the ids (a slice reads sections beside courses and terms), then named
    kept = list(
        map_sections(
            [item(SECTION), item({**SECTION, "id": "section-2", "course": "gone"})], IDS_AS_NAMES, IDS_AS_NAMES
        )
    )
    named = [name_classroom(r, courses, terms) if isinstance(r, ClassroomRecord) else r for r in kept]

    # Then it is what mapping with the names gives (an unknown course: no name)
    assert named == list(
        map_sections([item(SECTION), item({**SECTION, "id": "section-2", "course": "gone"})], courses, terms)
    )
    assert [r.course for r in only(named, ClassroomRecord)] == ["Guidance K", ""]


# -- the district's id of a record that could not be used (errors.csv, the report's "District ID") -----


def test_a_section_without_a_school_is_reported_with_its_sis_id():
    # Given a section whose school reference is missing
    orphan = {key: value for key, value in SECTION.items() if key != "school"}

    # When it is mapped
    [error] = list(map_sections([item(orphan)], {}, {}))

    # Then the error names it by the district's own id as well as Clever's
    assert (error.kind, error.provider_id, error.sis_id) == (Kind.CLASSROOMS, "section-1", "581")


def test_users_reported_by_the_mapping_carry_the_district_id_they_have():
    # Given a student sent twice (the second copy with another SIS id), a teacher sent twice who has only a
    # teacher number, a contact with a relationship that names no student, and a user whose id holds a NUL
    copy = {**STUDENT, "roles": {"student": {**STUDENT["roles"]["student"], "sis_id": "100095299"}}}
    teacher = {"id": "t-1", "roles": {"teacher": {"teacher_number": "T-77", "state_id": "", "schools": ["a"]}}}
    contact = {"id": "c-2", "roles": {"contact": {"sis_id": "c-10", "student_relationships": [{"type": "x"}]}}}
    broken = {**STUDENT, "id": "5a25ffb0c1bc2a003600\x00"}
    users = [item(STUDENT), item(copy), item(teacher), item(teacher), item(contact), item(broken)]

    # When they are mapped
    errors = only(list(map_users(users)), RecordError)

    # Then each error carries the district's id of the record it is about, chosen as report lines choose it
    # (SIS id, else student, teacher, school or state number)
    assert [(e.provider_id, e.sis_id) for e in errors] == [
        ("5a25ffb0c1bc2a00360003ed", "100095299"),
        ("t-1", "T-77"),
        ("c-2", "c-10"),
        ("", "100095233"),
    ]


def test_an_unreadable_user_has_no_district_id_to_report():
    # Given an item that is not a record and a record without an id
    items = ["junk", item({"name": {"first": "A"}, "roles": {"student": {"sis_id": "100"}}})]

    # When they are mapped
    errors = list(map_users(items))

    # Then both are reported, with no district id
    assert [(e.provider_id, e.sis_id) for e in errors] == [("", ""), ("", "")]


def test_a_user_whose_mapping_fails_is_reported_with_its_sis_id(monkeypatch):
    # Given a user whose mapping breaks in a way nobody foresaw
    def broken(user_id: str, data: dict[str, Any]) -> list[Any]:
        raise KeyError("surprise")

    monkeypatch.setattr("rostersync.providers.clever._user", broken)

    # When it is mapped
    [error] = list(map_users([item(STUDENT)]))

    # Then the error line still names it by the district's id
    assert (error.provider_id, error.sis_id) == ("5a25ffb0c1bc2a00360003ed", "100095233")
    assert error.reason == "could not read this user from Clever (KeyError)"
