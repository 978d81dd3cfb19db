"""Each sync setting changes the plan the way its description says (issue 4 items 1 and 5)."""

from __future__ import annotations

import pytest
from test_person_matching import family, plan_with
from test_planner import (
    PRODUCT_SCHOOL_ID,
    PROVIDER,
    Roster,
    directory_index,
    enrolment,
    entry,
    guardian,
    person,
    product_school,
    school,
    section,
)

from rostersync.directory.repository import IndexEntry, edit_digest
from rostersync.domain.records import ClassroomRecord, GuardianLinkRecord, Kind, Role
from rostersync.matching.people import CandidateIndex
from rostersync.matching.plan import GUARDIANS_OFF, LINKS_EXCLUDED
from rostersync.settings import SyncSettings


def with_settings(roster: Roster, index=None, **settings):
    return plan_with(
        roster, index or directory_index(product_school()), CandidateIndex(), SyncSettings.model_validate(settings)
    )


# -- classrooms ----------------------------------------------------------------------------------------


def classroom_roster() -> Roster:
    sec = ClassroomRecord(
        provider=PROVIDER, provider_id="sec-1", school="sch-1", name="Algebra I - 3", course="Algebra I", period="3"
    )
    return Roster(
        schools=[school()],
        classrooms=[sec, section("sec-2", name="Biology")],
        people=[person("tch-1", Role.TEACHER, given_name="Mary", family_name="Ellery"), person("stu-1")],
        enrollments=[enrolment("sec-1", "tch-1", "teacher"), enrolment("sec-1", "stu-1")],
    )


def test_the_classroom_name_template_names_synced_classrooms():
    result = with_settings(classroom_roster(), classrooms={"name_template": "{course} – P{period} ({teacher})"})

    assert result.write_for("sec-1").record.fields["name"] == "Algebra I – P3 (Mary Ellery)"
    # a section without course, period or teacher keeps a readable name, never "– P ()"
    assert result.write_for("sec-2").record.fields["name"] == "Biology"


def test_the_default_template_keeps_the_sections_name():
    assert with_settings(classroom_roster()).write_for("sec-1").record.fields["name"] == "Algebra I - 3"


def test_with_creation_off_only_linked_sections_become_classrooms():
    index = directory_index(
        product_school(), entry("cls_product", Kind.CLASSROOMS, "sec-1", managed=False, content_hash="")
    )

    result = with_settings(classroom_roster(), index, classrooms={"create_for_unlinked_sections": False})

    assert [(w.op, w.record.id) for w in result.writes_of(Kind.CLASSROOMS)] == [("update", "cls_product")]
    skipped = result.line_for(Kind.CLASSROOMS, "sec-2")
    assert skipped.action == "skipped" and "create_for_unlinked_sections" in skipped.reason
    assert dict(result.planner.summary.findings.unlinked_sections) == {"skip": 1}


def test_with_creation_on_unlinked_sections_are_created_and_counted():
    result = with_settings(classroom_roster())
    assert dict(result.planner.summary.findings.unlinked_sections) == {"create": 2}


@pytest.mark.parametrize(("unarchive", "expected"), [(True, "restore"), (False, None)])
def test_a_reappearing_archived_classroom_is_unarchived_only_if_the_settings_say_so(unarchive, expected):
    index = directory_index(product_school(), entry("cls_old", Kind.CLASSROOMS, "sec-1", status="archived"))

    result = with_settings(classroom_roster(), index, classrooms={"unarchive_reappearing": unarchive})

    ops = {w.record.id: w.op for w in result.writes_of(Kind.CLASSROOMS)}
    assert ops.get("cls_old") == expected
    if not unarchive:
        assert "unarchive_reappearing" in result.line_for(Kind.CLASSROOMS, "sec-1").reason
        # it is still in the roster, so it is not an archive candidate either
        assert all(c.id != "cls_old" for c in result.candidates)


# -- guardians -----------------------------------------------------------------------------------------


def test_with_guardians_off_no_guardian_or_link_is_synced():
    result = with_settings(family(guardian("gdn-1")), guardians={"manage": False})

    assert result.writes_of(Kind.GUARDIANS) == [] and result.writes_of(Kind.GUARDIAN_LINKS) == []
    assert result.line_for(Kind.GUARDIANS, "gdn-1").reason == GUARDIANS_OFF
    assert result.planner.summary.findings.guardians_skipped == {GUARDIANS_OFF: 1}


def typed_link(guardian_pid: str, contact_type: str, relationship: str) -> GuardianLinkRecord:
    return GuardianLinkRecord(
        provider=PROVIDER,
        provider_id=f"{guardian_pid}:stu-1",
        guardian=guardian_pid,
        student="stu-1",
        contact_type=contact_type,
        relationship=relationship,
    )


@pytest.mark.parametrize(
    "settings",
    [{"contact_types": ["parent/guardian"]}, {"relationships": ["PARENT"]}],
)
def test_contact_types_and_relationships_choose_which_links_and_guardians_sync(settings):
    roster = family(
        guardian("gdn-1"),
        guardian("gdn-2"),
        links=[typed_link("gdn-1", "Parent/Guardian", "Parent"), typed_link("gdn-2", "Emergency", "Neighbour")],
    )

    result = with_settings(roster, guardians=settings)

    assert [w.record.provider_ids[PROVIDER] for w in result.writes_of(Kind.GUARDIANS)] == ["gdn-1"]
    assert [w.record.provider_ids[PROVIDER] for w in result.writes_of(Kind.GUARDIAN_LINKS)] == ["gdn-1:stu-1"]
    assert result.line_for(Kind.GUARDIANS, "gdn-2").reason == LINKS_EXCLUDED
    assert "left out by the settings" in result.line_for(Kind.GUARDIAN_LINKS, "gdn-2:stu-1").reason


# -- phones and language -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone_type", "phones", "sms", "home"),
    [
        ("Cell", {}, "555 010 1000", ""),
        ("Home", {}, "", "555 010 1000"),
        ("Work", {}, "", ""),
        ("Work", {"sms_phone_types": ["work"]}, "555 010 1000", ""),
        ("", {"sms_phone_types": ["any"]}, "555 010 1000", ""),
    ],
)
def test_the_phone_settings_pick_the_sms_and_home_phone(phone_type, phones, sms, home):
    roster = family(guardian("gdn-1", phone="555 010 1000", phone_type=phone_type))

    fields = with_settings(roster, phones=phones).write_for("gdn-1").record.fields

    assert (fields["sms_phone"], fields["home_phone"]) == (sms, home)


@pytest.mark.parametrize(("take", "expected"), [(True, "es"), (False, None)])
def test_the_home_language_comes_from_the_roster_only_if_the_settings_say_so(take, expected):
    roster = Roster(schools=[school()], people=[person("stu-1", home_language="es")])

    fields = with_settings(roster, home_language_from_roster=take).write_for("stu-1").record.fields

    assert fields.get("home_language") == expected


# -- schools in scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [["sch-2"], ["sch_product_2"]])
def test_only_schools_in_scope_sync_named_by_provider_or_product_id(scope):
    index = directory_index(product_school(), product_school("sch-2", "sch_product_2"))
    roster = Roster(
        schools=[school(), school("sch-2", "Second")],
        people=[person("stu-1"), person("stu-2", schools=("sch-2",))],
    )

    result = with_settings(roster, index, schools_in_scope=scope)

    assert [w.record.provider_ids[PROVIDER] for w in result.writes if w.record.kind == Kind.STUDENTS] == ["stu-2"]
    assert "schools_in_scope" in result.line_for(Kind.SCHOOLS, "sch-1").reason
    assert result.planner.summary.findings.out_of_scope_schools == [{"provider_id": "sch-1", "name": "Lincoln Middle"}]
    # an out-of-scope school is still shared: it is not reported as gone
    assert result.errors == []


# -- manual edits --------------------------------------------------------------------------------------


def edited_student(**edits) -> dict:
    managed = IndexEntry(
        id="per_1",
        kind=Kind.STUDENTS,
        status="active",
        managed_by_sync=True,
        content_hash="stale",
        provider_ids={PROVIDER: "stu-1"},
        edited={name: edit_digest(value) for name, value in edits.items()},
    )
    return directory_index(product_school(), managed)


def test_edited_contact_details_are_kept_by_default_and_counted():
    roster = Roster(schools=[school()], people=[person("stu-1", email="roster@example.org")])

    result = with_settings(roster, edited_student(email="mine@example.org"))

    write = result.write_for("stu-1")
    assert write.clear_edits == ()
    assert result.counts(Kind.STUDENTS)["edits_kept"] == 1
    assert [line.action for line in result.lines if line.provider_id == "stu-1"] == ["edit_kept", "updated"]


def test_edited_contact_details_are_overwritten_when_the_settings_say_always_but_other_edits_are_kept():
    roster = Roster(schools=[school()], people=[person("stu-1", email="roster@example.org", given_name="Ada")])
    index = edited_student(email="mine@example.org", given_name="Addie")

    result = with_settings(roster, index, update_edited_contact_details="always")

    assert result.write_for("stu-1").clear_edits == ("email",)
    counts = result.counts(Kind.STUDENTS)
    assert (counts["edits_overwritten"], counts["edits_kept"]) == (1, 1)


def test_an_edit_equal_to_the_roster_value_is_neither_kept_nor_overwritten():
    roster = Roster(schools=[school()], people=[person("stu-1", email="same@example.org")])

    result = with_settings(roster, edited_student(email="same@example.org"), update_edited_contact_details="always")

    assert result.write_for("stu-1").clear_edits == ()
    assert "edits_kept" not in result.counts(Kind.STUDENTS)


# -- findings ------------------------------------------------------------------------------------------


def test_findings_list_unmatched_schools_both_sides_and_roster_gaps():
    roster = Roster(
        schools=[school(), school("sch-9", "Nowhere High")],
        classrooms=[section("sec-1"), section("sec-2", name="No teacher")],
        people=[person("stu-1"), person("stu-2"), person("tch-1", Role.TEACHER)],
        enrollments=[enrolment("sec-1", "tch-1", "teacher"), enrolment("sec-1", "stu-1")],
    )
    writes, lines, errors = [], [], []
    from rostersync.matching.plan import SyncPlanner

    planner = SyncPlanner(
        "d-1",
        PROVIDER,
        directory_index(product_school()),
        writes.append,
        lines.append,
        errors.append,
        product_schools={"sch_adult": "Adult Learning"},
    )
    planner.plan(lambda c: getattr(roster, c))

    findings = planner.summary.to_json()["findings"]
    assert findings["unmatched_provider_schools"] == [{"provider_id": "sch-9", "name": "Nowhere High"}]
    assert findings["unlinked_product_schools"] == [{"id": "sch_adult", "name": "Adult Learning"}]
    assert findings["sections_without_teacher"] == 1
    assert findings["students_without_section"] == 1
    assert PRODUCT_SCHOOL_ID not in str(findings["unlinked_product_schools"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"course": "Biology", "period": "3", "teacher": "Ms Ellery"}, "Biology – P3 (Ms Ellery)"),
        ({"course": "Biology", "period": "", "teacher": "Ms Ellery"}, "Biology – (Ms Ellery)"),
        ({"course": "Biology", "period": "3", "teacher": ""}, "Biology – P3"),
        ({"course": "Biology", "period": "", "teacher": ""}, "Biology"),
        ({"course": "", "period": "", "teacher": ""}, ""),
    ],
)
def test_a_blank_placeholder_takes_its_glued_text_and_dangling_separators_along(values, expected):
    from rostersync.matching.plan import render_name

    assert render_name("{course} – P{period} ({teacher})", values) == expected
