"""The readiness checklist: each rule's pass, warn and fail, from plan summaries as Match writes them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rostersync.domain.records import Kind
from rostersync.matching.plan import COUNT_FIELDS  # the planner's count columns: what summaries carry
from rostersync.reports.model import (
    Findings,
    KindCounts,
    ReadinessItem,
    ReadinessStatus,
    RunStatus,
    SyncReport,
)
from rostersync.reports.readiness import RunFacts, readiness_checklist

DISTRICT = "d-1042"
PASS, WARN, FAIL = ReadinessStatus.PASS, ReadinessStatus.WARN, ReadinessStatus.FAIL
EMPTY_FINDINGS: dict[str, Any] = {
    "unmatched_provider_schools": [],
    "out_of_scope_schools": [],
    "unlinked_product_schools": [],
    "sections_without_teacher": 0,
    "students_without_section": 0,
    "unlinked_sections": {"create": 0, "skip": 0},
    "guardians_skipped": {},
    "duplicate_candidates": 0,
    "ambiguous_matches": 0,
    "multi_role": {"merged": 0, "separate": 0},
    "edits_kept": 0,
    "edits_overwritten": 0,
}


def summary(
    counts: dict[str, dict[str, int]] | None = None,
    findings: dict[str, Any] | None = None,
    managed: dict[str, int] | None = None,
    archive_candidates: dict[str, int] | None = None,
    emptied_schools: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``plan/summary.json`` of a clean district: 3 schools matched, 60 students to create; ``findings``
    are merged into empty findings."""
    every = {kind.value: {f: 0 for f in COUNT_FIELDS} for kind in Kind}
    every["schools"]["unchanged"] = 3
    every["students"]["created"] = 60
    for kind, changes in (counts or {}).items():
        every[kind].update(changes)
    return {
        "counts": every,
        "managed": {kind.value: 0 for kind in Kind} | (managed or {}),
        "archive_candidates": {kind.value: 0 for kind in Kind} | (archive_candidates or {}),
        "emptied_schools": emptied_schools or {},
        "findings": copy.deepcopy(EMPTY_FINDINGS) | (findings or {}),
        "lines_keys": [],
        "errors_keys": [],
        "archive_keys": [],
    }


def checklist(plan: dict[str, Any] | None, **facts: Any) -> dict[str, ReadinessItem]:
    """The checklist of a self-check with this summary, by check title."""
    options: dict[str, Any] = {"district_id": DISTRICT, "dry_run": True, "fetch_complete": True} | facts
    items = readiness_checklist(RunFacts.from_summary(plan, **options))
    assert len({item.check for item in items}) == len(items), "check titles are unique"
    return {item.check: item for item in items}


def statuses(items: dict[str, ReadinessItem]) -> dict[str, ReadinessStatus]:
    return {check: item.status for check, item in items.items()}


# -- a clean district ------------------------------------------------------------------------------


def test_a_clean_district_passes_every_check():
    # Given the summary of a district with every school matched and nothing to flag
    items = checklist(summary(), fetched_records=1_234)

    # Then every check passes, in the order an admin works through them
    assert list(items) == [
        "Roster fetched completely",
        "Schools matched",
        "Deletion threshold",
        "Roster records with errors",
        "Sections without a teacher",
        "Students in no section",
        "Guardians skipped",
        "Duplicate candidates",
        "Ambiguous matches",
        "Students not in the sync",
        "People in several roles",
        "Manual edits",
        "Unlinked sections",
    ]
    assert set(statuses(items).values()) == {PASS}
    assert items["Roster fetched completely"].detail == "Every page of the roster was read (1,234 records)."
    assert items["Schools matched"].detail == "All 3 provider schools in scope are matched to a product school."
    assert items["Deletion threshold"].detail == "Nothing would be archived (limit 10 %)."
    assert all(item.action == "" for item in items.values() if item.check != "Unlinked sections")


# -- roster fetched completely ---------------------------------------------------------------------


def test_an_incomplete_fetch_fails_and_the_threshold_is_not_checked():
    # Given a fetch that could not read a page, and a summary that (from what was read) would archive a lot
    plan = summary(managed={"students": 100}, archive_candidates={"students": 50}, emptied_schools={"sch-1": 50})

    items = checklist(plan, fetch_complete=False, fetch_problems=["users page 3 could not be read (HTTP 500)"])

    # Then the fetch fails with the problem, and the threshold is "not checked" (a warning), not a breach
    fetched = items["Roster fetched completely"]
    assert fetched.status is FAIL
    assert "users page 3 could not be read (HTTP 500)" in fetched.detail
    assert f"rostersync self-check --district {DISTRICT}" in fetched.action
    assert items["Deletion threshold"].status is WARN
    assert items["Deletion threshold"].detail.startswith("Not checked")


def test_a_run_that_failed_before_the_fetch_fails_the_run_and_the_fetch_and_checks_nothing_else():
    # Given a run stopped by the provider before any roster was read
    reason = "Clever refused our credentials. Reconnect the app in Clever, then run the sync again."

    items = checklist(None, fetch_complete=None, failure_reason=reason)

    # Then the checklist says the run stopped and why, and does not pretend the rest passed
    assert statuses(items) == {"Run finished": FAIL, "Roster fetched completely": FAIL}
    assert reason in items["Run finished"].detail
    assert items["Roster fetched completely"].detail == "The roster was not fetched."


def test_a_real_run_names_the_sync_command_not_the_self_check():
    items = checklist(None, dry_run=False, fetch_complete=None, failure_reason="Stopped.")

    assert f"`rostersync sync --district {DISTRICT}`" in items["Run finished"].action
    assert "self-check" not in items["Run finished"].action


def test_a_summary_missing_without_a_failure_still_fails():
    # Given (against every expectation) no plan and no failure
    items = checklist(None)

    # Then the checklist cannot be ready
    assert items["Roster matched"].status is FAIL


# -- schools matched -------------------------------------------------------------------------------


def test_no_matched_school_fails_with_the_matching_command():
    # Given a roster whose 4 schools no product school carries
    unmatched = [{"provider_id": f"sch-{n}", "name": f"School {n}"} for n in range(4)]
    plan = summary(
        counts={"schools": {"unchanged": 0, "skipped": 4}}, findings={"unmatched_provider_schools": unmatched}
    )

    item = checklist(plan)["Schools matched"]

    assert item.status is FAIL
    assert "No provider school is matched to a product school (4 provider schools in scope unmatched)" in item.detail
    assert item.action == f"Match schools with `rostersync schools match --district {DISTRICT}`."


def test_unmatched_provider_schools_warn_by_name():
    # Given 3 matched schools and 2 of the roster's schools with no product school
    unmatched = [{"provider_id": "sch-9", "name": "Oak Ridge High"}, {"provider_id": "sch-8", "name": "Elm Elementary"}]
    plan = summary(counts={"schools": {"skipped": 2}}, findings={"unmatched_provider_schools": unmatched})

    item = checklist(plan)["Schools matched"]

    assert item.status is WARN
    assert "2 of 5 provider schools in scope have no product school: Oak Ridge High, Elm Elementary" in item.detail
    assert "rostersync schools match --district d-1042" in item.action


def test_product_schools_linked_to_no_provider_school_warn_and_long_lists_are_cut():
    # Given 7 product schools no provider school is linked to
    product = [{"id": f"p-{n}", "name": f"Product School {n}"} for n in range(7)]

    item = checklist(summary(findings={"unlinked_product_schools": product}))["Schools matched"]

    assert item.status is WARN
    assert "7 product schools are linked to no provider school: Product School 0" in item.detail
    assert "Product School 4 and 2 more" in item.detail
    assert "Product School 5" not in item.detail


def test_out_of_scope_schools_are_mentioned_but_do_not_warn():
    # Given 3 matched schools and 2 left out by schools_in_scope
    scope = [{"provider_id": "sch-7", "name": "Night School"}, {"provider_id": "sch-6", "name": "Adult Ed"}]

    item = checklist(summary(findings={"out_of_scope_schools": scope}))["Schools matched"]

    assert item.status is PASS
    assert "2 schools are out of scope." in item.detail


def test_an_old_summary_without_findings_warns_on_skipped_schools():
    # Given a summary from before findings existed, with 2 schools skipped
    plan = summary(counts={"schools": {"skipped": 2}})
    del plan["findings"]

    item = checklist(plan)["Schools matched"]

    assert item.status is WARN
    assert "2 of 5 provider schools in scope have no product school" in item.detail


# -- deletion threshold ----------------------------------------------------------------------------


def test_a_first_sync_over_the_threshold_fails_with_the_numbers():
    # Given 240 of 1,000 sync-managed students would be archived, with a 10 % limit
    plan = summary(managed={"students": 1_000}, archive_candidates={"students": 240})

    item = checklist(plan)["Deletion threshold"]

    assert item.status is FAIL
    assert item.detail == (
        "The sync would archive 240 of 1,000 students (24 %), over the 10 % limit. No students would be archived."
    )
    assert f"`rostersync settings set --district {DISTRICT} deletion_threshold_percent=24`" in item.action


def test_a_real_run_over_the_threshold_says_what_it_would_have_archived():
    plan = summary(managed={"students": 1_000}, archive_candidates={"students": 125})

    item = checklist(plan, dry_run=False, limit_percent=5)["Deletion threshold"]

    assert item.status is FAIL
    assert "would have archived 125 of 1,000 students (12.5 %), over the 5 % limit" in item.detail
    assert "deletion_threshold_percent=13" in item.action


def test_archiving_within_the_threshold_passes_with_the_numbers():
    # Given 5 of 100 students and 1 of 10 teachers would be archived
    plan = summary(managed={"students": 100, "teachers": 10}, archive_candidates={"students": 5, "teachers": 1})

    item = checklist(plan)["Deletion threshold"]

    assert item.status is PASS
    assert item.detail == "Within the 10 % limit: 5 of 100 students (5 %), 1 of 10 teachers (10 %) would be archived."


def test_a_school_that_would_lose_every_student_fails():
    # Given a school whose 8 students all disappear (8 of 400 students: under the district-wide limit)
    plan = summary(managed={"students": 400}, archive_candidates={"students": 8}, emptied_schools={"sch-p-2": 8})

    item = checklist(plan)["Deletion threshold"]

    assert item.status is FAIL
    assert "School sch-p-2 would lose all its 8 students" in item.detail
    assert "deletion_threshold_percent" not in item.action  # raising the limit would not help


# -- record-level findings -------------------------------------------------------------------------


def test_roster_records_with_errors_warn_with_the_count_per_kind():
    plan = summary(counts={"students": {"errors": 3}, "guardians": {"errors": 1}})

    item = checklist(plan, errors_total=4)["Roster records with errors"]

    assert item.status is WARN
    assert (
        item.detail == "4 roster records (students 3, guardians 1) cannot be used and are skipped; the rest goes ahead."
    )
    assert "errors.csv" in item.action


@pytest.mark.parametrize(
    ("check", "finding", "detail"),
    [
        ("Sections without a teacher", "sections_without_teacher", "sections have no teacher in the roster"),
        ("Students in no section", "students_without_section", "students are enrolled in no section"),
        ("Duplicate candidates", "duplicate_candidates", "same name and date of birth as a product student"),
        ("Ambiguous matches", "ambiguous_matches", "match more than one product person, so none was linked"),
    ],
)
def test_counted_findings_warn_when_present_and_pass_when_absent(check, finding, detail):
    # Given 12 of the finding, and then none
    flagged = checklist(summary(findings={finding: 12}))[check]
    clean = checklist(summary())[check]

    # Then it warns with the number and what to do, and passes without one
    assert flagged.status is WARN
    assert flagged.detail.startswith("12 ") and detail in flagged.detail
    assert flagged.action
    assert clean.status is PASS and clean.action == ""


def test_duplicate_candidates_point_to_people_link():
    item = checklist(summary(findings={"duplicate_candidates": 1}))["Duplicate candidates"]

    assert item.detail.startswith("1 roster student has the same name")
    assert "possible_duplicate" in item.action
    assert f"`rostersync people link --district {DISTRICT} --confirm PERSON_ID=PROVIDER_ID`" in item.action


def test_guardians_skipped_warn_by_reason_largest_first():
    reasons = {
        "Neither a unique email nor an SMS-capable phone.": 8,
        "Only linked to students who are skipped": 3,
        "Never counted": 0,
    }

    item = checklist(summary(findings={"guardians_skipped": reasons}))["Guardians skipped"]

    assert item.status is WARN
    assert item.detail == (
        "11 guardians are skipped (8: Neither a unique email nor an SMS-capable phone; "
        "3: Only linked to students who are skipped)."
    )
    assert "phones.sms_phone_types" in item.action


def test_no_guardian_skipped_passes():
    assert checklist(summary())["Guardians skipped"].status is PASS


def test_people_in_several_roles_pass_with_merged_and_separate_counts():
    item = checklist(summary(findings={"multi_role": {"merged": 4, "separate": 1}}))["People in several roles"]

    assert item.status is PASS
    assert "5 people are in several roles" in item.detail
    assert "4 with one account (name, email and phone agree), 1 with separate accounts" in item.detail


def test_edits_that_would_be_overwritten_warn_with_the_setting_that_keeps_them():
    item = checklist(summary(findings={"edits_overwritten": 6, "edits_kept": 2}))["Manual edits"]

    assert item.status is WARN
    assert "6 fields people edited in the product would be overwritten" in item.detail
    assert "2 edited fields are kept" in item.detail
    assert "update_edited_contact_details=never" in item.action


def test_edits_that_are_kept_pass():
    item = checklist(summary(findings={"edits_kept": 9}))["Manual edits"]

    assert item.status is PASS
    assert item.detail.startswith("9 fields people edited in the product differ from the roster and are kept")


def test_an_old_summary_counts_kept_edits_from_the_kind_counts():
    plan = summary(counts={"teachers": {"edits_kept": 2}, "guardians": {"edits_kept": 1}})
    del plan["findings"]

    assert checklist(plan)["Manual edits"].detail.startswith("3 fields")


@pytest.mark.parametrize(
    ("unlinked", "would", "setting", "other"),
    [
        ({"create": 14, "skip": 0}, "would get a new one", "is on", "create_for_unlinked_sections=false"),
        ({"create": 0, "skip": 14}, "would be skipped", "is off", "create_for_unlinked_sections=true"),
    ],
)
def test_unlinked_sections_pass_and_name_the_setting_that_decides(unlinked, would, setting, other):
    item = checklist(summary(findings={"unlinked_sections": unlinked}))["Unlinked sections"]

    assert item.status is PASS
    assert f"14 sections have no linked classroom and {would}" in item.detail
    assert f"classrooms.create_for_unlinked_sections {setting}" in item.detail
    assert f"rostersync classrooms match --district {DISTRICT}" in item.action
    assert other in item.action


# -- ready, and old summaries ----------------------------------------------------------------------


def test_warnings_alone_leave_the_district_ready_and_one_fail_does_not():
    # Given a district with things to review, and the same with one thing to fix
    review = summary(findings={"duplicate_candidates": 2, "sections_without_teacher": 1})
    fix = summary(findings={"duplicate_candidates": 2}, managed={"staff": 10}, archive_candidates={"staff": 5})

    def report(plan: dict[str, Any]) -> SyncReport:
        return SyncReport(
            district_id=DISTRICT,
            run_id="r-1",
            trigger="self_check",
            dry_run=True,
            status=RunStatus.SUCCEEDED,
            started_at="",
            finished_at="",
            readiness=list(checklist(plan).values()),
        )

    # Then warnings are to review, and one fail makes it not ready
    assert report(review).ready is True
    assert [item.check for item in report(review).to_review] == ["Sections without a teacher", "Duplicate candidates"]
    assert report(fix).ready is False
    assert [item.check for item in report(fix).to_fix] == ["Deletion threshold"]


def test_a_report_without_a_checklist_is_not_ready():
    report = SyncReport(
        district_id=DISTRICT, run_id="r-1", trigger="manual", status=RunStatus.SUCCEEDED, started_at="", finished_at=""
    )

    assert report.readiness == [] and report.ready is False


def test_ready_is_derived_not_taken_from_the_input():
    fail = ReadinessItem(status=FAIL, check="Schools matched", detail="None.")

    report = SyncReport.model_validate(
        {
            "district_id": DISTRICT,
            "run_id": "r-1",
            "trigger": "manual",
            "status": "succeeded",
            "started_at": "",
            "finished_at": "",
            "readiness": [fail.model_dump(mode="json")],
            "ready": True,
        }
    )

    assert report.ready is False


def test_an_old_summary_reads_as_zero_findings_and_zero_new_counts():
    # Given a summary written before findings and the new count fields existed
    plan = summary()
    del plan["findings"]
    for counts in plan["counts"].values():
        for field in ("linked", "edits_kept", "edits_overwritten"):
            del counts[field]

    facts = RunFacts.from_summary(plan, district_id=DISTRICT)

    # Then the counts read as zeros, findings as not reported, and the report's findings as empty
    assert facts.findings is None
    assert facts.counts[Kind.STUDENTS] == KindCounts(created=60)
    assert Findings.from_summary(plan) is None
    assert "Not reported by this run." in checklist(plan)["Duplicate candidates"].detail


def test_a_newer_summary_with_unknown_keys_still_reads():
    # Given a planner that added a count field and a finding this report does not know
    plan = summary(counts={"students": {"merged_away": 3}}, findings={"brand_new_finding": [1, 2]})

    facts = RunFacts.from_summary(plan, district_id=DISTRICT)

    assert facts.counts[Kind.STUDENTS].created == 60
    assert facts.findings is not None and facts.findings.duplicate_candidates == 0


def test_findings_that_cannot_be_read_count_as_not_reported_rather_than_failing_the_report():
    plan = summary(findings={"duplicate_candidates": "several"})

    assert Findings.from_summary(plan) is None
    assert checklist(plan)["Duplicate candidates"].detail == "Not reported by this run."


def test_guardians_skipped_only_because_their_students_are_pass_and_point_at_school_matching():
    from rostersync.matching.plan import GUARDIANS_OFF, NO_STUDENT_SYNCED

    item = checklist(summary(findings={"guardians_skipped": {NO_STUDENT_SYNCED: 5, GUARDIANS_OFF: 2}}))[
        "Guardians skipped"
    ]

    assert item.status is PASS
    assert "rostersync schools match" in item.action and "guardians.manage=true" in item.action
    assert "phones.sms_phone_types" not in item.action


def test_guardians_the_product_cannot_reach_warn_with_what_fixes_it():
    from rostersync.matching.plan import LINKS_EXCLUDED, NO_REACH, NO_STUDENT_SYNCED

    reasons = {NO_REACH: 4, LINKS_EXCLUDED: 1, NO_STUDENT_SYNCED: 9}
    item = checklist(summary(findings={"guardians_skipped": reasons}))["Guardians skipped"]

    assert item.status is WARN
    assert "phones.sms_phone_types" in item.action and "guardians.contact_types" in item.action


def test_unlinked_sections_say_when_no_section_would_sync_at_all():
    item = checklist(summary(counts={"classrooms": {"skipped": 12}}))["Unlinked sections"]

    assert item.status is PASS and item.detail.startswith("No section would be synced")


# -- after the first sync: the clean-up ----------------------------------------------------------------


def test_students_not_in_the_sync_and_possible_duplicates_point_at_the_clean_up():
    # Given a real sync that left 7 product students of 3 synced schools unmatched and flagged 2 pairs
    plan = summary()
    plan["findings"] = {"students_not_in_sync": 7, "schools_with_students_not_in_sync": 3, "duplicate_candidates": 2}
    items = checklist(plan, dry_run=False)

    # Then the checklist says how many and names the commands
    assert items["Students not in the sync"].status == WARN
    assert items["Students not in the sync"].detail.startswith("7 in 3 schools")
    assert f"rostersync cleanup archive-unmanaged --district {DISTRICT}" in items["Students not in the sync"].action
    assert items["Possible duplicates"].detail.startswith("2 (")
    assert f"rostersync duplicates list --district {DISTRICT}" in items["Possible duplicates"].action
    # a self-check has no synced duplicates yet: its line is the linking advice
    assert "Possible duplicates" not in checklist(plan)
