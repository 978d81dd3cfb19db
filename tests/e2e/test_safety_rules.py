"""DESIGN §5 on the real state machine: the deletion threshold, one run per district, and a fetch that
fails or does not complete never archiving anything. Small synthetic districts (60 students)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rostersync import aws
from rostersync.providers.clever import USER_ROLES

pytestmark = pytest.mark.e2e

NEW_STUDENT_ID = "66ab0000ffffffffff000001"


def archived(outcome: Any) -> list[str]:
    """Ids of every archived record of the district."""
    collections = [records for records in outcome.directory.values() if isinstance(records, list)]
    return [r["id"] for records in collections for r in records if r["status"] == "archived"]


def synced_first(district: Any, dataset: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Given a district whose first sync went through."""
    d = district(dataset, **kwargs)
    first = d.sync()
    assert first.status == "succeeded", (first.execution.get("cause"), first.report)
    return d, first


def next_night(synthetic: Any, tmp_path: Any, leaving: int = 0) -> tuple[Any, set[str]]:
    """Night 2: the first ``leaving`` students leave (with their only guardians)."""
    night = synthetic.copy(tmp_path / "night-2")
    gone = {u["id"] for u in night.users("student")[:leaving]}
    night.remove_students(gone)
    return night, gone


# -- deletion threshold --------------------------------------------------------------------------------


def test_over_the_deletion_threshold_nothing_is_archived_but_creates_and_updates_apply(
    district: Any, synthetic: Any, tmp_path: Any
) -> None:
    d, _ = synced_first(district, synthetic)
    # Given 30 % of the students leave on the same night one arrives and one changes name
    night, gone = next_night(synthetic, tmp_path, leaving=18)
    staying = [u["id"] for u in night.users("student")]
    night.add_student_like(staying[-1], NEW_STUDENT_ID)
    night.edit_users(lambda u: u["name"].update(last="Renamed"), {staying[0]})
    d.serve(night)

    # When it syncs
    run = d.sync()

    # Then the run stops short of archiving and says so
    assert run.execution_status == "SUCCEEDED"
    assert run.status == "threshold_exceeded"
    students = run.counts("students")
    assert (students["archived"], students["would_archive"]) == (0, 18)
    assert (students["created"], students["updated"]) == (1, 1)
    assert run.report["threshold"]["students"] == {
        "would_archive": 18,
        "managed": 60,
        "percent": 30.0,
        "limit_percent": 10.0,
    }
    assert (
        "Deletion threshold exceeded for students: 18 of 60 (30 %) would be archived, over the 10 % limit; "
        "nothing was archived" in run.report["notes"]
    )
    would = {r["provider_id"] for r in run.csv_rows("students.csv") if r["action"] == "would_archive"}
    assert would == gone
    # and nobody was archived (every kind is over the limit here), while the new student and the new name
    # are in the directory
    assert archived(run) == []
    people = run.by_clever_id("people")
    assert all(people[pid]["status"] == "active" for pid in gone)
    assert people[NEW_STUDENT_ID]["status"] == "active" and people[NEW_STUDENT_ID]["managed_by_sync"]
    assert people[staying[0]]["family_name"] == "Renamed"
    new_enrollments = [e for e in run.records("enrollments") if e["person_id"] == people[NEW_STUDENT_ID]["id"]]
    assert len(new_enrollments) == 6
    assert d.state.lock_holder() is None


def test_the_districts_threshold_setting_decides_whether_leavers_are_archived(
    district: Any, synthetic: Any, tmp_path: Any
) -> None:
    from rostersync.settings import SyncSettings

    d, _ = synced_first(district, synthetic)
    # Given 30 % of the students leave, in a district that allows archiving up to 35 % of a kind
    d.state.put_settings(SyncSettings(deletion_threshold_percent=35), 0, updated_by="e2e")
    night, gone = next_night(synthetic, tmp_path, leaving=18)
    d.serve(night)

    run = d.sync()

    # Then the leavers are archived (at the default 10 % the same night is held back, test above)
    assert run.status == "succeeded"
    assert run.counts("students")["archived"] == 18 and run.report["threshold"] == {}
    people = run.by_clever_id("people")
    assert all(people[pid]["status"] == "archived" for pid in gone)


def test_under_the_deletion_threshold_leavers_are_archived(district: Any, synthetic: Any, tmp_path: Any) -> None:
    d, first = synced_first(district, synthetic)
    # Given 3 of 60 students (5 %) leave
    night, gone = next_night(synthetic, tmp_path, leaving=3)
    d.serve(night)

    run = d.sync()

    assert run.status == "succeeded"
    assert run.counts("students")["archived"] == 3
    people = run.by_clever_id("people")
    assert {pid for pid in gone if people[pid]["status"] == "archived"} == gone
    assert {r["id"] for r in run.records("people")} == {r["id"] for r in first.records("people")}


# -- one run per district --------------------------------------------------------------------------------


def test_a_run_is_refused_while_another_run_holds_the_district(district: Any, synthetic: Any) -> None:
    # Given another run holds the district's lock
    d = district(synthetic)
    before = d.export()
    d.state.acquire_lock("other-run", 3600)

    # When a sync starts
    run = d.sync()

    # Then it fails at once with LockHeldError naming the holder, and leaves no trace
    assert run.execution_status == "FAILED"
    assert run.execution["error"] == "LockHeldError"
    assert "other-run" in run.execution["cause"]
    assert d.state.lock_holder()["run_id"] == "other-run"  # the refused run did not release it
    assert run.run is None and d.state.runs() == []
    assert run.directory == before
    assert run.directory_writes == 0

    # and once the other run is over, the district syncs again
    assert d.state.release_lock("other-run")
    again = d.sync(export=False)
    assert again.status == "succeeded"
    assert d.state.lock_holder() is None


def test_an_expired_lock_does_not_block_the_district(district: Any, synthetic: Any) -> None:
    # Given a run that crashed an hour ago, whose 60 s lock has expired
    d = district(synthetic)
    d.state.acquire_lock("crashed-run", 60, now=time.time() - 3600)

    run = d.sync(export=False)

    assert run.status == "succeeded"
    assert run.counts("students")["created"] == 60
    assert run.run["lock_released"] is True
    assert d.state.lock_holder() is None


def test_two_runs_started_together_one_is_refused(district: Any, synthetic: Any, stack: Any, run_sync: Any) -> None:
    # Given two runs of the same district started at the same moment (a schedule and a manual run)
    d = district(synthetic)
    arns = [stack.start_sync(d.id, trigger="schedule"), stack.start_sync(d.id, trigger="manual")]

    outcomes = [run_sync.collect(d.id, stack.wait(arn), export=False) for arn in arns]

    # Then one ran and the other was refused by the lock, without disturbing it
    assert sorted(o.execution_status for o in outcomes) == ["FAILED", "SUCCEEDED"]
    (refused,) = [o for o in outcomes if o.execution_status == "FAILED"]
    (ran,) = [o for o in outcomes if o.execution_status == "SUCCEEDED"]
    assert refused.execution["error"] == "LockHeldError" and ran.run_id in refused.execution["cause"]
    assert ran.status == "succeeded" and ran.counts("students")["created"] == 60
    assert d.state.lock_holder() is None


def test_a_district_without_a_connection_fails_with_a_reason(district: Any, synthetic: Any, stack: Any) -> None:
    # Given a district whose provider connection was removed
    d = district(synthetic)
    aws.client("dynamodb").delete_item(
        TableName=stack.outputs["SyncStateTableName"], Key={"pk": {"S": d.id}, "sk": {"S": "CONNECTION"}}
    )

    run = d.sync(export=False)

    assert run.execution["error"] == "ConnectionNotConfiguredError"
    assert run.status == "failed"
    assert "connect Clever or OneRoster before syncing" in run.report["failure_reason"]
    assert run.directory_writes == 0
    assert d.state.lock_holder() is None


# -- provider failures -----------------------------------------------------------------------------------


def test_a_refused_token_fails_the_run_archives_nothing_and_releases_the_lock(
    district: Any, synthetic: Any, tmp_path: Any
) -> None:
    d, first = synced_first(district, synthetic)
    # Given students left (a complete fetch would archive them), but Clever no longer accepts the token
    night, _ = next_night(synthetic, tmp_path, leaving=2)
    d.serve(night)
    d.connect("revoked-token")

    run = d.sync()

    assert run.execution_status == "FAILED"
    assert run.execution["error"] == "ProviderAuthError"
    assert run.status == "failed" and run.report["status"] == "failed"
    reason = run.report["failure_reason"]
    assert "reconnect the rostersync app in Clever" in reason and "token" in reason
    assert "Nothing was archived" in reason
    assert run.directory == first.directory
    assert run.directory_writes == 0
    assert d.state.lock_holder() is None and run.run["lock_released"] is True

    # When the admin reconnects, the next run works (and now archives the leavers)
    d.connect(d.simulator.token)
    again = d.sync(export=False)
    assert again.status == "succeeded"
    assert again.counts("students")["archived"] == 2


def test_transient_server_errors_are_retried(district: Any, synthetic: Any) -> None:
    # Given Clever answers the first two users requests with HTTP 500
    d = district(synthetic)
    d.simulator.inject("/v3.0/users", 500, times=2)

    run = d.sync(export=False)

    # Then the client retried (without waiting: base delay 0) and the run went through
    assert run.status == "succeeded"
    assert run.counts("students")["created"] == 60
    users_requests = [q for path, q in d.simulator.requests_seen if path == "/v3.0/users"]
    assert len(users_requests) == len(USER_ROLES) + 2  # a page of each role's users, two failed attempts


def test_a_provider_that_stays_down_fails_the_run_with_a_reason_and_archives_nothing(
    district: Any, synthetic: Any, tmp_path: Any
) -> None:
    d, first = synced_first(district, synthetic)
    night, _ = next_night(synthetic, tmp_path, leaving=2)
    d.serve(night)
    # Given Clever answers 503 to every request (the night is read from its events: /v3.0/events)
    d.simulator.inject("/v3.0/", 503, times=100)
    seen = len(d.simulator.requests_seen)

    run = d.sync()

    assert run.execution_status == "FAILED"
    assert run.execution["error"] == "ProviderUnavailableError"
    assert run.status == "failed"
    reason = run.report["failure_reason"]
    assert reason.startswith("Clever did not answer after 6 attempts (HTTP 503 on /v3.0/events")
    assert "run the sync again later" in reason and "Nothing was archived" in reason
    assert "Traceback" not in reason
    assert len([p for p, _ in d.simulator.requests_seen[seen:] if p == "/v3.0/events"]) == 6
    assert run.directory == first.directory
    assert d.state.lock_holder() is None


def test_an_unreadable_page_means_no_archiving(district: Any, synthetic: Any) -> None:
    # Given pages of 20 records, and page 2 of users cut off mid-way (not JSON)
    d, first = synced_first(district, synthetic, page_limit=20)
    d.read_in_full()  # a full read of the roster (not Clever's events), so users are read page by page
    d.simulator.inject_malformed("/v3.0/users", page=2)

    run = d.sync()

    # Then the run reports the unreadable page and archives no one, although most people are missing
    # from what was fetched
    assert run.execution_status == "SUCCEEDED"
    assert run.status != "succeeded"
    page_errors = [e for e in run.report["errors"] if "page 2 of /v3.0/users" in e["reason"]]
    assert len(page_errors) == 1
    assert "was not valid JSON" in page_errors[0]["reason"]
    assert any(note.startswith("Archiving skipped: the roster fetch did not complete") for note in run.report["notes"])
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    assert archived(run) == []
    assert run.directory == first.directory
    assert d.state.lock_holder() is None


def test_an_unreadable_page_is_reported_as_an_incomplete_fetch_not_as_a_threshold_breach(
    district: Any, synthetic: Any
) -> None:
    d, _ = synced_first(district, synthetic, page_limit=20)
    d.read_in_full()  # a full read of the roster (not Clever's events), so users are read page by page
    d.simulator.inject_malformed("/v3.0/users", page=2)

    run = d.sync(export=False)

    # Nobody left the roster: the run could not read all of it. That is an error, not a mass departure.
    assert run.status == "succeeded_with_errors"
    assert run.report["threshold"] == {}
    assert not [note for note in run.report["notes"] if note.startswith("Deletion threshold exceeded")]
    assert all(counts["would_archive"] == 0 for counts in run.report["counts"].values())
