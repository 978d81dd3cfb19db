"""The clean-up's rules as plain functions: who is archived, the threshold, the preview's staleness, and
which students look like duplicates."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync.cleanup.duplicates import StudentFacts, find_duplicates, score_pair
from rostersync.cleanup.unmanaged import (
    CleanupRefusedError,
    confirmation_needed,
    preview_changes,
    select_unmanaged_students,
    synced_school_ids,
)
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync.settings import CleanupSettings


def person(
    pid: str, kind: Kind = Kind.STUDENTS, managed: bool = False, schools: tuple[str, ...] = ("sch-a",), **fields: Any
) -> DirectoryRecord:
    role = {Kind.STUDENTS: "student", Kind.TEACHERS: "teacher", Kind.GUARDIANS: "guardian"}[kind]
    return DirectoryRecord(
        id=pid,
        kind=kind,
        status=fields.pop("status", "active"),
        managed_by_sync=managed,
        provider_ids={"clever": f"c-{pid}"} if managed else {},
        fields={"roles": [role], "schools": list(schools)},
        product_fields=fields,
    )


def school(sid: str, synced: bool = True) -> DirectoryRecord:
    return DirectoryRecord(
        sid, Kind.SCHOOLS, "active", False, {"clever": f"c-{sid}"} if synced else {}, {"name": sid.upper()}
    )


SCHOOLS = {s.id: s for s in (school("sch-a"), school("sch-b"), school("sch-x", synced=False))}
SYNCED = synced_school_ids(SCHOOLS.values(), "clever", [])


def test_only_active_hand_made_students_in_scope_are_archived() -> None:
    people = [
        person("p-hand-a"),
        person("p-synced-a", managed=True),
        person("p-teacher-a", kind=Kind.TEACHERS),
        person("p-archived-a", status="archived"),
        person("p-hand-b", schools=("sch-b",)),
    ]
    selection = select_unmanaged_students("d", people, SCHOOLS, SYNCED, ["sch-a"])
    assert selection.ids().keys() == {"p-hand-a"}
    (only,) = selection.schools
    assert (only.active_students, only.kept_sync_managed) == (2, 1)


def test_a_named_sync_managed_student_is_kept_and_counted() -> None:
    people = [person("p-hand"), person("p-synced", managed=True)]
    selection = select_unmanaged_students("d", people, SCHOOLS, SYNCED, ["sch-a"], named=["p-synced"])
    assert selection.total == 0 and selection.named_but_sync_managed == ["p-synced"]


def test_several_schools_run_school_by_school_each_student_once() -> None:
    people = [person("p-both", schools=("sch-a", "sch-b")), person("p-b", schools=("sch-b",))]
    selection = select_unmanaged_students("d", people, SCHOOLS, SYNCED, ["sch-b", "sch-a"])
    assert [(s.school_id, [c.id for c in s.to_archive]) for s in selection.schools] == [
        ("sch-b", ["p-b", "p-both"]),
        ("sch-a", []),
    ]


def test_the_district_scope_is_refused_while_students_sit_in_schools_that_do_not_sync() -> None:
    people = [person("p-hand"), person("p-x", schools=("sch-x",))]
    with pytest.raises(CleanupRefusedError, match=r"SCH-X \(1\).*--school sch-a --school sch-b"):
        select_unmanaged_students("d", people, SCHOOLS, SYNCED, None)
    # without them, the district scope covers every synced school
    selection = select_unmanaged_students("d", [person("p-hand")], SCHOOLS, SYNCED, None)
    assert selection.scope == "district" and selection.ids().keys() == {"p-hand"}


@pytest.mark.parametrize(
    ("scope", "named", "message"),
    [
        (["sch-nowhere"], None, "no such school"),
        (["sch-x"], None, "is not synced"),
        (["sch-a"], ["p-nobody"], "not a student"),
    ],
)
def test_bad_scope_or_student_is_refused(scope: list[str], named: list[str] | None, message: str) -> None:
    with pytest.raises(CleanupRefusedError, match=message):
        select_unmanaged_students("d", [person("p-hand")], SCHOOLS, SYNCED, scope, named)


def test_over_the_threshold_the_number_must_be_typed() -> None:
    settings = CleanupSettings(confirm_over_students=2, confirm_over_school_percent=50)
    few = select_unmanaged_students(
        "d", [person("p1"), *(person(f"s{n}", managed=True) for n in range(3))], SCHOOLS, SYNCED, ["sch-a"]
    )
    assert confirmation_needed(few, settings) == ""
    many = select_unmanaged_students("d", [person(f"p{n}") for n in range(3)], SCHOOLS, SYNCED, ["sch-a"])
    reasons = confirmation_needed(many, settings)
    assert "3 students is over 2" in reasons and "(100 %) is over 50 %" in reasons


def test_the_preview_is_stale_when_a_student_changed() -> None:
    before = select_unmanaged_students("d", [person("p1"), person("p2")], SCHOOLS, SYNCED, ["sch-a"]).to_json()
    now = select_unmanaged_students("d", [person("p1", note="edited"), person("p3")], SCHOOLS, SYNCED, ["sch-a"])
    changes = preview_changes(before, now)
    assert len(changes) == 3 and any(c.startswith("p2 would no longer") for c in changes)
    assert preview_changes(now.to_json(), now) == []


# -- duplicates ---------------------------------------------------------------------------------------


def student(pid: str, given: str, family: str, managed: bool = False, **fields: Any) -> DirectoryRecord:
    record = person(pid, managed=managed, given_name=given, family_name=family, **fields)
    return record


def link(student_id: str, guardian_id: str) -> DirectoryRecord:
    return DirectoryRecord(
        f"gl-{student_id}", Kind.GUARDIAN_LINKS, "active", False, {}, {"student": student_id, "guardian": guardian_id}
    )


def test_planted_pairs_are_found_with_their_reasons_and_twins_are_not() -> None:
    students = [
        student("s-erick", "Erick", "Collins", managed=True, birth_date="1996-03-25", grade="11"),
        student("h-erick", "Erick", "Collins", birth_date="1996-03-25", grade="11"),
        student("h-emma", "Emma", "Collins", birth_date="1996-03-25", grade="11"),  # Erick's twin
        student("s-nancy", "Nancy", "Heller", managed=True, student_number="109", grade="4"),
        student("h-nan", "Nan", "Heller", student_number="109", grade="4"),
        student("s-danilo", "Danilo", "Carter", managed=True, grade="8"),
        student("h-danilo", "Danilo", "Carter", grade="8"),
    ]
    links = [link("h-erick", "g-1"), link("h-emma", "g-1"), link("s-danilo", "g-synced"), link("h-danilo", "g-hand")]
    names = {"g-1": "dana collins", "g-synced": "nomrota carter", "g-hand": "nomrota carter"}

    pairs = {(p.keep, p.merge): p for p in find_duplicates(students, links, names)}

    assert set(pairs) == {("s-erick", "h-erick"), ("s-nancy", "h-nan"), ("s-danilo", "h-danilo")}
    assert pairs[("s-erick", "h-erick")].confidence == "high"
    assert "same student number" in pairs[("s-nancy", "h-nan")].reasons
    assert "a guardian in common" in pairs[("s-danilo", "h-danilo")].reasons


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"sis_id": "1"}, {"sis_id": "2"}),
        ({"birth_date": "2010-01-01"}, {"birth_date": "2010-01-02"}),
    ],
)
def test_a_disagreeing_id_or_birth_date_vetoes_a_pair(a: dict[str, str], b: dict[str, str]) -> None:
    points, reasons = score_pair(
        StudentFacts(student("x", "Ann", "Lee", managed=True, **a)), StudentFacts(student("y", "Ann", "Lee", **b))
    )
    assert points < 0 and reasons[0].startswith("different")


def test_two_sync_managed_students_are_the_rosters_to_fix_and_not_listed() -> None:
    students = [
        student("s-1", "Ann", "Lee", managed=True, birth_date="2010-01-01"),
        student("s-2", "Ann", "Lee", managed=True, birth_date="2010-01-01"),
    ]
    assert find_duplicates(students, [], {}) == []
