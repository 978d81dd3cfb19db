"""The admin's self-check (a dry run, step 5 of their path) and the "Sync Enabled" event (step 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SELF_CHECK_NOTE = "Self-check: nothing was written. The counts show what the first sync would do."


def test_self_check_before_the_first_sync_counts_what_it_would_do_and_writes_nothing(
    district: Any, synthetic: Any
) -> None:
    # Given a district that has only the product's own records
    d = district(synthetic)
    before = d.export()

    # When the admin runs the self-check
    run = d.sync(dry_run=True)

    # Then the report shows what the first sync would create, and the directory is untouched
    assert run.execution_status == "SUCCEEDED"
    assert run.status == "succeeded"
    assert run.report["dry_run"] is True and run.input["dry_run"] is True
    assert SELF_CHECK_NOTE in run.report["notes"]
    assert run.counts("students")["created"] == len(synthetic.users("student"))
    # a contact with neither an email nor a cell phone cannot be reached, so is skipped (settings' default)
    reachable = [
        c for c in synthetic.users("contact") if c.get("email") or c["roles"]["contact"].get("phone_type") == "Cell"
    ]
    assert 0 < len(reachable) < len(synthetic.users("contact"))
    assert run.counts("guardians")["created"] == len(reachable)
    assert run.counts("classrooms")["created"] == len(synthetic.sections())
    assert len([r for r in run.csv_rows("students.csv") if r["action"] == "created"]) == 60
    assert run.directory == before
    assert run.directory_writes == 0
    assert d.state.lock_holder() is None

    # and the real first sync then does what the self-check said
    first = d.sync(export=False)
    assert first.status == "succeeded"
    assert first.report["counts"] == run.report["counts"]


def test_self_check_after_leavers_lists_who_would_be_archived(district: Any, synthetic: Any, tmp_path: Any) -> None:
    # Given a synced district, and a night where 3 students leave
    d = district(synthetic)
    first = d.sync()
    night = synthetic.copy(tmp_path / "night-2")
    gone = {u["id"] for u in night.users("student")[:3]}
    night.remove_students(gone)
    d.serve(night)

    run = d.sync(dry_run=True)

    assert run.status == "succeeded"
    students = run.counts("students")
    assert (students["would_archive"], students["archived"]) == (3, 0)
    would = {r["provider_id"] for r in run.csv_rows("students.csv") if r["action"] == "would_archive"}
    assert would == gone
    assert run.directory == first.directory
    assert run.directory_writes == 0


def test_sync_enabled_event_starts_one_run_for_the_district(
    district: Any, synthetic: Any, stack: Any, run_sync: Any
) -> None:
    # Given a connected district
    d = district(synthetic)

    # When the product emits "Sync Enabled" for it
    started = stack.publish_event("product.directory", "Sync Enabled", {"district_id": d.id})

    # Then exactly one execution starts, for that district, triggered by "enabled"
    assert len(started) == 1
    execution = stack.wait(started[0])
    # (the event's detail rides along whole: who enabled it, when the product says so)
    assert json.loads(execution["input"]) == {
        "district_id": d.id,
        "trigger": "enabled",
        "detail": {"district_id": d.id},
    }
    run = run_sync.collect(d.id, execution, export=False)
    assert run.status == "succeeded"
    assert run.report["trigger"] == "enabled" and run.run["trigger"] == "enabled"
    assert run.counts("students")["created"] == 60


def executions(stack: Any) -> set[str]:
    """The ARNs of every execution of the sync state machine so far."""
    pages = stack.client("stepfunctions").get_paginator("list_executions")
    arn = stack.outputs["SyncStateMachineArn"]
    return {e["executionArn"] for page in pages.paginate(stateMachineArn=arn) for e in page["executions"]}


def test_other_events_start_nothing(district: Any, synthetic: Any, stack: Any) -> None:
    d = district(synthetic)
    before = executions(stack)

    assert stack.publish_event("product.directory", "Sync Disabled", {"district_id": d.id}) == []
    assert stack.publish_event("someone.else", "Sync Enabled", {"district_id": d.id}) == []

    assert executions(stack) == before
    assert d.state.runs() == []
