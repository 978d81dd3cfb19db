"""A bad record is reported with its reason and skipped; it never fails the run (DESIGN §5)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

UNKNOWN_ROLE_USER = "66ab0000aaaaaaaaaa000001"
UNKNOWN_STUDENT = "66ab0000bbbbbbbbbb000001"


def test_each_bad_record_is_one_error_line_and_the_rest_syncs(district: Any, synthetic: Any) -> None:
    # Given a roster with four broken things in it
    students = synthetic.users("student")
    clean_student_count = len(students)
    no_id = copy.deepcopy(students[1])
    del no_id["id"]
    duplicate = copy.deepcopy(students[2])
    duplicate["name"] = {"first": "Second", "last": "Copy"}
    duplicate["roles"]["student"]["sis_id"] = "100999999"
    # Clever lists it among staff (Fetch reads users by role), but its staff role is empty and its other
    # role is not one rostersync syncs
    unknown_role = {
        "id": UNKNOWN_ROLE_USER,
        "name": {"first": "Pat", "last": "Custodian"},
        "roles": {"custodian": {"schools": [synthetic.schools()[0]["id"]]}, "staff": None},
    }
    synthetic.append_users({"data": no_id}, {"data": unknown_role}, {"data": duplicate})
    section = synthetic.sections()[0]
    synthetic.edit_sections(lambda s: s["students"].append(UNKNOWN_STUDENT) if s["id"] == section["id"] else None)
    teacher_enrollments = sum(len({*s["teachers"], s["teacher"]}) for s in synthetic.sections())
    student_enrollments = sum(len(s["students"]) for s in synthetic.sections()) - 1
    d = district(synthetic)

    # When it syncs
    run = d.sync()

    # Then each problem is one error line with its own reason
    assert run.execution_status == "SUCCEEDED"
    assert run.status == "succeeded_with_errors"
    assert run.report["errors_total"] == 4
    errors = {(e["kind"], e["provider_id"]): e["reason"] for e in run.report["errors"]}
    assert errors == {
        ("students", ""): "user record has no id",
        ("staff", UNKNOWN_ROLE_USER): "user has no role rostersync syncs (roles: custodian, staff)",
        ("enrollments", f"{section['id']}:{UNKNOWN_STUDENT}"): (
            f"section {section['id']} names student {UNKNOWN_STUDENT}, who is not in the roster"
        ),
        ("students", students[2]["id"]): (
            f"duplicate id {students[2]['id']}: this user appears more than once in Clever; the first was used"
        ),
    }
    assert len(run.csv_rows("errors.csv")) == 4
    # and errors.csv names each broken record that has one by the district's own id: the duplicate by the
    # SIS id it was sent with; the record without an id could not be read, the others have none
    sis_ids = {(e["kind"], e["provider_id"]): e["sis_id"] for e in run.csv_rows("errors.csv")}
    assert sis_ids == {key: "" for key in errors} | {("students", students[2]["id"]): "100999999"}

    # and everything else synced: every valid student once (the duplicate's first record), every enrollment
    assert run.counts("students")["created"] == clean_student_count
    assert run.counts("enrollments")["created"] == student_enrollments + teacher_enrollments
    people = run.by_clever_id("people")
    assert UNKNOWN_ROLE_USER not in people and UNKNOWN_STUDENT not in people
    assert people[students[2]["id"]]["family_name"] == students[2]["name"]["last"]
    assert sum(1 for p in run.records("people") if p["provider_ids"].get("clever") == students[2]["id"]) == 1
