"""The self-check report an admin acts on: readiness checklist, verdict and findings, on the embedded stack.

These hold whether or not Match reports findings yet: the checks below read counts, the fetch and the
deletion threshold, which every plan summary carries.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from typing import Any

import pytest

from rostersync import aws

pytestmark = pytest.mark.e2e


def checks(run: Any) -> dict[str, dict[str, str]]:
    """The report's readiness checklist by check title."""
    assert run.report is not None, f"run {run.run_id} wrote no report"
    return {item["check"]: item for item in run.report["readiness"]}


def html(run: Any) -> str:
    return page(run.bucket, run.report["files"]["report.html"])


def page(bucket: str, key: str) -> str:
    return str(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))


def test_self_check_of_a_matched_district_is_ready_and_agrees_with_its_counts(district: Any, synthetic: Any) -> None:
    # Given a district whose product schools all carry their Clever ids
    d = district(synthetic)
    schools = len(synthetic.schools())

    # When the admin runs the self-check
    run = d.sync(dry_run=True, export=False)

    # Then the report says it is ready, and the checklist agrees with the counts beside it
    assert run.status == "succeeded"
    assert run.report["ready"] is True
    items = checks(run)
    assert {item["status"] for item in items.values()} <= {"pass", "warn"}
    assert items["Roster fetched completely"]["status"] == "pass"
    assert items["Schools matched"]["status"] == "pass"
    assert items["Schools matched"]["detail"].startswith(f"All {schools} provider school")
    assert "matched to a product school" in items["Schools matched"]["detail"]
    assert items["Deletion threshold"]["detail"] == "Nothing would be archived (limit 10 %)."
    assert run.report["errors_total"] == 0 and items["Roster records with errors"]["status"] == "pass"
    assert set(run.report["findings"]) >= {"unmatched_provider_schools", "guardians_skipped", "duplicate_candidates"}
    page = html(run)
    assert "Ready for the first sync" in page
    assert page.index("Readiness checklist") < page.index("What the sync would do")
    assert run.directory_writes == 0


def test_self_check_of_the_demo_district_warns_about_its_two_unmatched_schools(
    new_district: Any, demo_cut: Any, demo_product: Any
) -> None:
    # Given the demo: 5 schools in Clever's roster, 3 of them matched to product schools (its roster cut to
    # a section a school: the schools are what this is about)
    d = new_district(demo_cut("snapshot-1", sections_per_school=1), product=demo_product())
    try:
        run = d.sync(dry_run=True, export=False)
    finally:
        d.close()

    # Then schools are a warning that names the command, not a blocker
    item = checks(run)["Schools matched"]
    assert item["status"] == "warn", item
    assert "2 of 5 provider schools in scope have no product school" in item["detail"]
    assert f"`rostersync schools match --district {run.district_id}`" in item["action"]
    assert run.report["ready"] is True
    assert run.counts("schools")["skipped"] == 2
    assert ">Review</span>" in html(run)


def test_self_check_with_no_school_matched_fails(district: Any, synthetic: Any, make_product: Any) -> None:
    # Given a product whose schools carry no Clever id
    product = make_product(synthetic).model_dump(mode="json")
    for school in product["schools"]:
        school["provider_ids"] = {}

    run = district(synthetic, product=make_product(synthetic, **product)).sync(dry_run=True, export=False)

    # Then the checklist fails on schools (nobody would be synced); the self-check itself succeeded
    item = checks(run)["Schools matched"]
    assert item["status"] == "fail", item
    assert "nobody would be synced" in item["detail"]
    assert run.report["ready"] is False
    assert run.status == "succeeded"
    assert ">Not ready: 1 to fix</span></h1>" in html(run)


def test_self_check_over_the_deletion_threshold_fails_the_checklist_not_the_run(
    district: Any, synthetic: Any, tmp_path: Any, report_in_browser: Any
) -> None:
    # Given a synced district, and a night where 10 of 60 students (17 %) are gone
    d = district(synthetic)
    first = d.sync()
    assert first.status == "succeeded"
    night = synthetic.copy(tmp_path / "night-2")
    gone = night.users("student")[:10]
    night.remove_students({u["id"] for u in gone})
    d.serve(night)

    run = d.sync(dry_run=True)

    # Then the run still succeeds (a dry run never ends threshold_exceeded), the checklist fails with the
    # numbers, and they match the would-archive count beside them
    assert run.status == "succeeded"
    item = checks(run)["Deletion threshold"]
    assert item["status"] == "fail"
    assert "would archive 10 of 60 students (16.7 %), over the 10 % limit" in item["detail"]
    needed = math.ceil(max(breach["percent"] for breach in run.report["threshold"].values()))
    assert f"deletion_threshold_percent={needed}`" in item["action"]
    assert run.counts("students")["would_archive"] == 10
    assert run.report["ready"] is False
    assert run.directory == first.directory

    # and the admin reading it in Chromium, at a desk or on a phone, sees the verdict first and the ten
    # students it would archive by name, with their SIS ids
    names = [f"{u['name']['first']} {u['name']['last']}" for u in gone]
    would = [row for row in run.csv_rows("students.csv") if row["action"] == "would_archive"]
    assert sorted(row["name"] for row in would) == sorted(names)
    assert {row["sis_id"] for row in would} == {u["roles"]["student"]["sis_id"] for u in gone}
    report = report_in_browser(run)
    report.assert_reads_well(names)
    assert report.layouts[390].verdict.startswith("Not ready: 1 to fix")


def test_a_real_sync_carries_the_checklist_too(district: Any, synthetic: Any) -> None:
    # Given a district's first real sync
    run = district(synthetic).sync(export=False)

    # Then its report carries the same checklist, worded for a sync
    assert run.status == "succeeded"
    assert run.report["ready"] is True
    assert checks(run)["Schools matched"]["status"] == "pass"
    review = sum(1 for item in run.report["readiness"] if item["status"] == "warn")
    expected = "Everything synced" if review == 0 else f"Synced, {review:,} to review"
    assert f">{expected}</span></h1>" in html(run)


# -- the findings contract, through the report step ----------------------------------------------------


def test_the_report_step_turns_a_summary_with_findings_into_report_checklist_html_and_csv(stack: Any) -> None:
    """Match's findings (the planner's contract) as write_report reads them from plan/summary.json, before the
    planner writes them: the step runs in-process against the session stack, on a hand-written summary."""
    from rostersync.contracts import FetchResult, MatchResult, RunRef, SyncState
    from rostersync.domain.records import Kind
    from rostersync.steps.context import DistrictContext
    from rostersync.steps.report import write_report

    # Given a self-check's plan summary with every finding, and lines of the new actions
    district_id, run_id = f"d-report-{uuid.uuid4().hex[:8]}", f"run-{uuid.uuid4().hex[:8]}"
    store = DistrictContext.for_run(district_id, run_id).store
    lines = store.chunk_writer("plan/lines", 100)
    for action, provider_id, name in [
        ("created", "s-1", "Ana"),
        ("linked", "s-2", "Ben"),
        ("possible_duplicate", "s-3", "=cmd|' /C calc'!A0"),
        ("edit_kept", "t-1", "Tess"),
    ]:
        kind = "teachers" if provider_id.startswith("t") else "students"
        lines.write({"kind": kind, "action": action, "id": "", "provider_id": provider_id, "name": name, "reason": ""})
    counts = {kind.value: {} for kind in Kind}
    counts["schools"] = {"unchanged": 2, "skipped": 1}
    counts["students"] = {"created": 1, "linked": 1}
    counts["teachers"] = {"unchanged": 1, "edits_kept": 1}
    summary = {
        "counts": counts,
        "managed": {},
        "archive_candidates": {},
        "emptied_schools": {},
        "lines_keys": lines.close(),
        "errors_keys": [],
        "archive_keys": [],
        "findings": {
            "unmatched_provider_schools": [{"provider_id": "c-9", "name": "<script>x</script> Oak"}],
            "out_of_scope_schools": [],
            "unlinked_product_schools": [{"id": "p-3", "name": "Elm Elementary"}],
            "sections_without_teacher": 2,
            "students_without_section": 0,
            "unlinked_sections": {"create": 4, "skip": 0},
            "guardians_skipped": {"Neither a unique email nor an SMS-capable phone": 3},
            "duplicate_candidates": 1,
            "ambiguous_matches": 0,
            "multi_role": {"merged": 1, "separate": 0},
            "edits_kept": 1,
            "edits_overwritten": 0,
        },
    }
    state = SyncState(
        run_id=run_id,
        run=RunRef(district_id=district_id, run_id=run_id, dry_run=True, trigger="self_check", provider="clever"),
        fetch=FetchResult(snapshot_manifest_key=store.key("snapshot/manifest.json"), complete=True),
        match=MatchResult(
            plan_manifest_key=store.key("plan/manifest.json"),
            plan_chunks=0,
            writes=0,
            summary_key=store.put_json("plan/summary.json", summary),
        ),
    )

    # When the report step runs
    result = write_report(state)

    # Then report.json carries the findings and a checklist built from them
    report = store.get_json(result.report_key)
    assert result.status == "succeeded"
    assert report["findings"]["unlinked_sections"] == {"create": 4, "skip": 0}
    assert report["counts"]["students"]["linked"] == 1 and report["counts"]["teachers"]["edits_kept"] == 1
    statuses = {item["check"]: item["status"] for item in report["readiness"]}
    assert statuses["Schools matched"] == statuses["Guardians skipped"] == statuses["Duplicate candidates"] == "warn"
    assert statuses["Sections without a teacher"] == "warn"
    assert statuses["Manual edits"] == statuses["Unlinked sections"] == statuses["People in several roles"] == "pass"
    assert report["ready"] is True
    # the HTML lists the schools by name, escaped, under the verdict
    shown = page(store.bucket, result.html_key)
    assert "Ready for the first sync</span></h1>" in shown and "4 to look at first" in shown
    assert "&lt;script&gt;x&lt;/script&gt; Oak" in shown and "<script" not in shown
    # and students.csv lists the review line first, its formula-like name neutralised
    body = aws.client("s3").get_object(Bucket=store.bucket, Key=report["files"]["students.csv"])["Body"].read()
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [row["action"] for row in rows] == ["possible_duplicate", "created", "linked"]
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0"
    assert "rostersync people link" in rows[0]["reason"]
