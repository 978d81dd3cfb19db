"""OneRoster objects (REST shape) → canonical records, on plain dicts (no network, no files)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
)
from rostersync.providers.base import FetchOutcome
from rostersync.providers.oneroster_mapping import COLLECTIONS, PROVIDER, map_roster


def ref(sourced_id: str, ref_type: str = "org") -> dict[str, str]:
    return {"sourcedId": sourced_id, "type": ref_type, "href": f"/ims/oneroster/v1p1/x/{sourced_id}"}


DISTRICT = {"sourcedId": "d-1", "status": "active", "name": "Summit District", "type": "district"}
SCHOOL = {
    "sourcedId": "s-1",
    "status": "active",
    "dateLastModified": "2024-08-01T00:00:00Z",
    "name": "Summit High",
    "type": "school",
    "identifier": "0042",
    "metadata": {"ncesId": "360007702877"},
    "parent": ref("d-1"),
}
TERM = {"sourcedId": "t-1", "status": "active", "title": "Fall 2024", "type": "term"}
COURSE = {"sourcedId": "c-1", "status": "active", "title": "Algebra I", "org": ref("d-1")}
CLASS = {
    "sourcedId": "k-1",
    "status": "active",
    "title": "Algebra I - P3",
    "classCode": "ALG1-3",
    "school": ref("s-1"),
    "course": ref("c-1", "course"),
    "terms": [ref("t-1", "academicSession")],
    "periods": ["3", "4"],
    "grades": ["09", "10"],
    "subjects": ["Math"],
}
STUDENT = {
    "sourcedId": "u-student",
    "status": "active",
    "enabledUser": True,
    "role": "student",
    "givenName": "Ada",
    "middleName": "B",
    "familyName": "Lovelace",
    "email": "ada@example.org",
    "identifier": "SIS-7",
    "userIds": [{"type": "studentNumber", "identifier": "700"}, {"type": "State ID", "identifier": "NY-9"}],
    "grades": ["09", "10"],
    "orgs": [ref("d-1"), ref("s-1")],
    "agents": [],
}
TEACHER = {
    "sourcedId": "u-teacher",
    "status": "active",
    "role": "teacher",
    "givenName": "Tom",
    "familyName": "Hardy",
    "orgs": [ref("s-1")],
}
PARENT = {
    "sourcedId": "u-parent",
    "status": "active",
    "role": "parent",
    "givenName": "Pat",
    "familyName": "Lovelace",
    "sms": "555-0101",
    "phone": "555-0199",
    "orgs": [ref("s-1")],
    "agents": [ref("u-student", "user")],
}
ENROLLMENT = {
    "sourcedId": "e-1",
    "status": "active",
    "class": ref("k-1", "class"),
    "user": ref("u-student", "user"),
    "school": ref("s-1"),
    "role": "student",
    "primary": False,
}


def roster(**overrides: list[Any]) -> dict[str, list[Any]]:
    base: dict[str, list[Any]] = {
        "orgs": [DISTRICT, SCHOOL],
        "academicSessions": [TERM],
        "courses": [COURSE],
        "classes": [CLASS],
        "users": [STUDENT, TEACHER],
        "enrollments": [ENROLLMENT],
        "demographics": [{"sourcedId": "u-student", "status": "active", "birthDate": "2009-03-04"}],
    }
    return base | overrides


def mapped(collections: dict[str, list[Any]], delta: bool = False) -> list[Any]:
    outcome = FetchOutcome(delta=delta)
    return list(map_roster(lambda name: iter(collections.get(name, [])), outcome))


def only(items: list[Any], cls: type) -> list[Any]:
    return [item for item in items if isinstance(item, cls)]


def errors(items: list[Any]) -> list[RecordError]:
    return only(items, RecordError)


# -- schools ---------------------------------------------------------------------------------------


def test_only_school_orgs_become_schools_with_identifier_and_metadata() -> None:
    items = mapped(roster())

    assert only(items, SchoolRecord) == [
        SchoolRecord(
            provider=PROVIDER,
            provider_id="s-1",
            name="Summit High",
            school_number="0042",
            sis_id="0042",
            nces_id="360007702877",
        )
    ]
    assert errors(items) == []


def test_org_without_a_type_is_reported_not_guessed() -> None:
    items = mapped(roster(orgs=[DISTRICT, SCHOOL, {"sourcedId": "o-9", "name": "Annex"}]))

    assert [(e.kind, e.provider_id) for e in errors(items)] == [(Kind.SCHOOLS, "o-9")]
    assert "no type" in errors(items)[0].reason


# -- classes ---------------------------------------------------------------------------------------


def test_class_becomes_classroom_with_course_and_term_titles() -> None:
    classroom = only(mapped(roster()), ClassroomRecord)[0]

    assert classroom == ClassroomRecord(
        provider=PROVIDER,
        provider_id="k-1",
        school="s-1",
        name="Algebra I - P3",
        period="3, 4",
        grade="9, 10",  # CEDS codes as the directory's grade names
        subject="Math",
        course="Algebra I",
        term="Fall 2024",
        sis_id="ALG1-3",
    )


def test_class_without_school_or_with_a_district_as_school_is_an_error() -> None:
    no_school = {**CLASS, "sourcedId": "k-2", "school": None}
    district_school = {**CLASS, "sourcedId": "k-3", "school": ref("d-1")}
    unknown_school = {**CLASS, "sourcedId": "k-4", "school": ref("s-404")}

    items = mapped(roster(classes=[no_school, district_school, unknown_school]))

    assert only(items, ClassroomRecord) == []
    reasons = {e.provider_id: e.reason for e in errors(items) if e.kind == Kind.CLASSROOMS}
    assert "has no school" in reasons["k-2"]
    assert "d-1, which is not a school" in reasons["k-3"]
    assert "s-404, which is not in the roster's orgs" in reasons["k-4"]


def test_unknown_course_keeps_the_classroom_and_says_so() -> None:
    items = mapped(roster(classes=[{**CLASS, "course": ref("c-404", "course")}]))

    assert only(items, ClassroomRecord)[0].course == ""
    assert [e.provider_id for e in errors(items)] == ["k-1"]
    assert "course c-404" in errors(items)[0].reason


def test_references_are_not_checked_in_a_delta_nor_into_collections_not_sent() -> None:
    delta = mapped({"classes": [{**CLASS, "school": ref("s-elsewhere")}]}, delta=True)
    no_courses = mapped(roster(courses=[], academicSessions=[]))

    assert only(delta, ClassroomRecord)[0].school == "s-elsewhere"
    assert errors(delta) == []
    assert errors(no_courses) == []


# -- users -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("student", Role.STUDENT),
        ("teacher", Role.TEACHER),
        ("administrator", Role.STAFF),
        ("aide", Role.STAFF),
        ("proctor", Role.STAFF),
        ("parent", Role.GUARDIAN),
        ("guardian", Role.GUARDIAN),
        ("relative", Role.GUARDIAN),
        ("Teacher", Role.TEACHER),
    ],
)
def test_user_roles(role: str, expected: Role) -> None:
    user = {"sourcedId": "u-1", "role": role, "givenName": "A", "familyName": "B", "orgs": [ref("s-1")]}

    people = only(mapped(roster(users=[user])), PersonRecord)

    assert [person.roles for person in people] == [[expected]]


def test_unknown_or_missing_role_is_an_error_naming_it() -> None:
    users = [
        {"sourcedId": "u-1", "role": "janitor", "givenName": "A", "familyName": "B"},
        {"sourcedId": "u-2", "givenName": "C", "familyName": "D"},
    ]

    items = mapped(roster(users=users, enrollments=[]))

    assert only(items, PersonRecord) == []
    reasons = {e.provider_id: e.reason for e in errors(items)}
    assert reasons == {"u-1": "user role 'janitor' is not one rostersync syncs", "u-2": "user has no role"}


def test_student_fields() -> None:
    student = only(mapped(roster()), PersonRecord)[0]

    assert student.model_dump(exclude={"provider", "provider_id", "record_type"}) == {
        "roles": [Role.STUDENT],
        "given_name": "Ada",
        "middle_name": "B",
        "family_name": "Lovelace",
        "email": "ada@example.org",
        "phone": "",
        "phone_type": "",
        "schools": ["s-1"],  # the district org is not a school of theirs
        "grade": "9",
        "sis_id": "SIS-7",
        "student_number": "700",
        "state_id": "NY-9",
        "teacher_number": "",
        "title": "",
        "birth_date": "2009-03-04",
        "home_language": "",
    }


def test_us_style_birth_dates_become_iso() -> None:
    items = mapped(roster(demographics=[{"sourcedId": "u-student", "birthDate": "3/4/2009"}]))

    assert only(items, PersonRecord)[0].birth_date == "2009-03-04"


def test_sms_is_the_phone_of_choice_then_phone() -> None:
    texts = {**PARENT, "sourcedId": "g-1"}
    calls = {**PARENT, "sourcedId": "g-2", "sms": ""}

    people = {p.provider_id: p for p in only(mapped(roster(users=[STUDENT, texts, calls])), PersonRecord)}

    assert (people["g-1"].phone, people["g-1"].phone_type) == ("555-0101", "Cell")
    assert (people["g-2"].phone, people["g-2"].phone_type) == ("555-0199", "")
    assert people["g-1"].schools == []  # guardians' schools follow their students


def test_disabled_users_are_still_synced() -> None:
    items = mapped(roster(users=[{**STUDENT, "enabledUser": "false"}]))

    assert [p.provider_id for p in only(items, PersonRecord)] == ["u-student"]


def test_oneroster_1p2_roles_list_gives_roles_and_schools() -> None:
    user = {
        "sourcedId": "u-12",
        "givenName": "A",
        "familyName": "B",
        "roles": [
            {"roleType": "secondary", "role": "guardian", "org": ref("s-1")},
            {"roleType": "primary", "role": "teacher", "org": ref("s-1")},
            {"roleType": "secondary", "role": "siteAdministrator", "org": ref("d-1")},
        ],
    }

    person = only(mapped(roster(users=[user])), PersonRecord)[0]

    assert person.roles == [Role.TEACHER, Role.STAFF, Role.GUARDIAN]
    assert person.schools == ["s-1"]


def test_user_whose_only_org_is_unknown_is_reported() -> None:
    items = mapped(roster(users=[{**TEACHER, "orgs": [ref("s-404")]}], enrollments=[]))

    assert only(items, PersonRecord) == []
    assert "org s-404, which is not in the roster's orgs" in errors(items)[0].reason


# -- guardian links ----------------------------------------------------------------------------------


def links(items: list[Any]) -> list[tuple[str, str, str, str]]:
    return sorted((k.provider_id, k.guardian, k.student, k.relationship) for k in only(items, GuardianLinkRecord))


def test_guardian_link_from_the_guardians_agents() -> None:
    items = mapped(roster(users=[STUDENT, PARENT]))

    assert links(items) == [("u-parent:u-student", "u-parent", "u-student", "Parent")]


@pytest.mark.parametrize("guardian_first", [True, False])
def test_guardian_link_from_the_students_agents(guardian_first: bool) -> None:
    student = {**STUDENT, "agents": [ref("u-parent", "user")]}
    guardian = {**PARENT, "role": "guardian", "agents": []}
    users = [guardian, student] if guardian_first else [student, guardian]

    items = mapped(roster(users=users))

    assert links(items) == [("u-parent:u-student", "u-parent", "u-student", "Guardian")]


@pytest.mark.parametrize("guardian_first", [True, False])
def test_a_link_named_from_both_sides_is_yielded_once(guardian_first: bool) -> None:
    student = {**STUDENT, "agents": [ref("u-parent", "user")]}
    users = [PARENT, student] if guardian_first else [student, PARENT]

    items = mapped(roster(users=users))

    assert links(items) == [("u-parent:u-student", "u-parent", "u-student", "Parent")]
    assert errors(items) == []


def test_a_students_agent_who_is_not_a_guardian_is_no_link() -> None:
    student = {**STUDENT, "agents": [ref("u-teacher", "user")]}

    items = mapped(roster(users=[student, TEACHER]))

    assert links(items) == []
    assert errors(items) == []


def test_a_students_agent_missing_from_the_roster() -> None:
    student = {**STUDENT, "agents": [ref("u-ghost", "user")]}

    full = mapped(roster(users=[student]))
    delta = mapped({"users": [student]}, delta=True)

    assert [(e.kind, e.provider_id) for e in errors(full)] == [(Kind.GUARDIAN_LINKS, "u-ghost:u-student")]
    assert links(delta) == []  # a delta that does not resend the guardian leaves the stored link alone


# -- enrollments -----------------------------------------------------------------------------------


def test_enrollments_of_students_and_teachers() -> None:
    teacher = {**ENROLLMENT, "sourcedId": "e-2", "user": ref("u-teacher", "user"), "role": "teacher"}

    items = mapped(roster(enrollments=[ENROLLMENT, teacher]))

    assert only(items, EnrollmentRecord) == [
        EnrollmentRecord(
            provider=PROVIDER, provider_id="k-1:u-student", classroom="k-1", person="u-student", role="student"
        ),
        EnrollmentRecord(
            provider=PROVIDER, provider_id="k-1:u-teacher", classroom="k-1", person="u-teacher", role="teacher"
        ),
    ]


def test_enrollment_problems_are_reported() -> None:
    enrollments = [
        {**ENROLLMENT, "sourcedId": "e-aide", "user": ref("u-teacher", "user"), "role": "aide"},
        {**ENROLLMENT, "sourcedId": "e-noclass", "class": None},
        {**ENROLLMENT, "sourcedId": "e-ghostclass", "class": ref("k-404", "class")},
        {**ENROLLMENT, "sourcedId": "e-ghostuser", "user": ref("u-404", "user")},
    ]

    items = mapped(roster(enrollments=enrollments))

    assert only(items, EnrollmentRecord) == []
    assert {e.provider_id: e.reason for e in errors(items)} == {
        "k-1:u-teacher": "enrollment role 'aide' is not synced",
        "e-noclass": "enrollment e-noclass has no class",
        "k-404:u-student": "enrollment names class k-404, which is not in the roster",
        "k-1:u-404": "enrollment names user u-404, who is not in the roster",
    }


# -- deletions, ids, robustness --------------------------------------------------------------------


def test_tobedeleted_in_any_case_becomes_deleted_records() -> None:
    items = mapped(
        roster(
            orgs=[{**SCHOOL, "status": "toBeDeleted"}, {**DISTRICT, "status": "tobedeleted"}],
            classes=[{**CLASS, "status": "TOBEDELETED"}],
            users=[{**TEACHER, "status": "tobedeleted"}, {**PARENT, "status": "tobedeleted"}],
            enrollments=[{**ENROLLMENT, "status": "tobedeleted"}],
        )
    )

    assert only(items, DeletedRecord) == [
        DeletedRecord(kind=Kind.SCHOOLS, provider_id="s-1"),
        DeletedRecord(kind=Kind.CLASSROOMS, provider_id="k-1"),
        DeletedRecord(kind=Kind.TEACHERS, provider_id="u-teacher"),
        DeletedRecord(kind=Kind.GUARDIANS, provider_id="u-parent"),
        DeletedRecord(kind=Kind.ENROLLMENTS, provider_id="k-1:u-student"),
    ]
    assert links(items) == []


def test_missing_and_duplicate_sourced_ids() -> None:
    again = {**TEACHER, "givenName": "Second"}

    items = mapped(roster(users=[STUDENT, TEACHER, again, {"role": "teacher", "givenName": "X"}]))

    assert [p.given_name for p in only(items, PersonRecord) if p.provider_id == "u-teacher"] == ["Tom"]
    reasons = [e.reason for e in errors(items)]
    assert any("duplicate sourcedId u-teacher" in reason for reason in reasons)
    assert any("user number 4 has no sourcedId" in reason for reason in reasons)


def test_odd_records_never_raise() -> None:
    odd: dict[str, list[Any]] = {
        "orgs": ["not an object", {"sourcedId": ["x"]}, {"sourcedId": "s-odd", "type": "school", "name": {"a": 1}}],
        "classes": [{"sourcedId": "k-odd", "school": "s-odd", "title": None, "periods": "1, 2", "grades": 9}],
        "users": [None, {"sourcedId": 7, "role": ["student"]}, {"sourcedId": "u-odd", "role": "student", "orgs": 3}],
        "enrollments": [{"sourcedId": "e-odd", "class": "k-odd", "user": {"sourcedId": None}}],
    }

    items = mapped(odd)

    assert items  # every item is a record or a RecordError; nothing was raised
    assert only(items, SchoolRecord)[0].name == ""
    assert only(items, ClassroomRecord)[0].period == "1, 2"


def test_users_and_enrollments_are_read_once_as_streams() -> None:
    calls: dict[str, int] = {}
    data = roster()

    def collection(name: str) -> Iterable[dict[str, Any]]:
        calls[name] = calls.get(name, 0) + 1

        def stream() -> Iterator[dict[str, Any]]:
            yield from data.get(name, [])

        return stream()

    items = list(map_roster(collection, FetchOutcome()))

    assert set(calls) == set(COLLECTIONS)
    assert calls["users"] == calls["enrollments"] == 1
    assert len(only(items, EnrollmentRecord)) == 1


@pytest.mark.parametrize(
    ("ceds", "grade"),
    [("KG", "Kindergarten"), ("kg", "Kindergarten"), ("PK", "PreKindergarten"), ("TK", "TransitionalKindergarten"),
     ("IT", "InfantToddler"), ("PR", "Preschool"), ("01", "1"), ("09", "9"), ("12", "12"), ("13", "13"),
     ("PS", "PostGraduate"), ("UG", "Ungraded"), ("Other", "Other"), ("9", "9"), ("Grade 9", "Grade 9")],
)  # fmt: skip
def test_grades_are_named_as_clever_names_them(ceds: str, grade: str) -> None:
    # Given a school, a class and a student whose grades are OneRoster's CEDS codes
    school = {**SCHOOL, "metadata": {"lowGrade": ceds, "highGrade": "12"}}
    klass = {**CLASS, "grades": [ceds, "10"]}
    student = {**STUDENT, "grades": [ceds]}

    items = mapped(roster(orgs=[DISTRICT, school], classes=[klass], users=[student], enrollments=[]))

    # Then each grade reads as the Clever mapping writes it, so both providers give one district the same grades
    assert (only(items, SchoolRecord)[0].low_grade, only(items, SchoolRecord)[0].high_grade) == (grade, "12")
    assert only(items, ClassroomRecord)[0].grade == f"{grade}, 10"
    assert only(items, PersonRecord)[0].grade == grade


@pytest.mark.parametrize(
    ("role", "relationship"), [("parent", "Parent"), ("GUARDIAN", "Guardian"), ("relative", "Relative")]
)
def test_relationship_is_the_guardians_role_capitalised_as_clever_writes_it(role: str, relationship: str) -> None:
    # Given a guardian whose OneRoster role is spelt in any case
    items = mapped(roster(users=[STUDENT, {**PARENT, "role": role}]))

    # Then the link's relationship reads as Clever's do ("Parent"), whichever provider the district uses
    assert links(items) == [("u-parent:u-student", "u-parent", "u-student", relationship)]


# -- the district's id of a record that could not be used (errors.csv, the report's "District ID") -----


def test_users_reported_by_the_mapping_carry_the_district_id_they_have() -> None:
    # Given a user whose role is not synced, a student whose only org is unknown and who has no identifier
    # but a student number, and a teacher sent twice
    janitor = {"sourcedId": "u-1", "role": "janitor", "identifier": "SIS-1", "givenName": "A", "familyName": "B"}
    lost = {**STUDENT, "identifier": "", "orgs": [ref("s-404")]}
    teacher = {**TEACHER, "userIds": [{"type": "teacherNumber", "identifier": "T-5"}]}

    items = mapped(roster(users=[janitor, lost, teacher, teacher], enrollments=[]))

    # Then each error carries the district's id of its user, chosen as report lines choose it
    assert [(e.provider_id, e.sis_id) for e in errors(items)] == [
        ("u-1", "SIS-1"),
        ("u-student", "700"),
        ("u-teacher", "T-5"),
    ]


def test_classes_and_orgs_reported_by_the_mapping_carry_their_district_id() -> None:
    # Given a class naming a school the roster lacks, and an org without a type
    stray = {**CLASS, "school": ref("s-404")}
    untyped = {"sourcedId": "o-1", "status": "active", "name": "Annex", "identifier": "0099"}

    items = mapped(roster(orgs=[DISTRICT, SCHOOL, untyped], classes=[stray], enrollments=[]))

    assert [(e.provider_id, e.sis_id) for e in errors(items)] == [("o-1", "0099"), ("k-1", "ALG1-3")]


def test_a_user_that_is_not_an_object_or_has_no_sourced_id_has_no_district_id() -> None:
    items = mapped(roster(users=["not an object", {"role": "student", "identifier": "SIS-9"}], enrollments=[]))

    assert [(e.provider_id, e.sis_id) for e in errors(items)] == [("", ""), ("", "")]
