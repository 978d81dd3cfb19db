"""A district's lifecycle, the pure parts (issue 12): entitlement, the events and their schemas, who is
told about which run end, the plan of an undo or approval, and which run actions are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rostersync.contracts import SyncRequest
from rostersync.domain.records import Kind
from rostersync.lifecycle.before_images import WrittenRecord, after_update, state_digest, with_status
from rostersync.lifecycle.entitlement import entitlement_of
from rostersync.lifecycle.events import (
    PlanChangedDetail,
    RunEndedDetail,
    SyncDisabledDetail,
    detail_type_of,
    product_event_schemas,
)
from rostersync.lifecycle.holds import run_action_problem
from rostersync.lifecycle.notify import notification_for
from rostersync.lifecycle.reversal import REVERT, plan_approval, plan_undo
from rostersync.settings import NotificationSettings, SyncSettings
from rostersync_tools.local.stack import matches_pattern
from rostersync_tools.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]


# -- entitlement ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("district", "plan", "entitled", "why"),
    [
        (None, None, False, "not known"),
        ({"name": "D"}, None, False, "no plan recorded"),
        ({"name": "D"}, {"plan": "free"}, False, "free plan"),
        ({"name": "D"}, {"plan": "essentials"}, False, "essentials plan"),
        ({"name": "D"}, {"plan": "premium"}, True, ""),
        (None, {"plan": "enterprise"}, True, ""),
    ],
)
def test_only_the_sync_plans_are_entitled(district: Any, plan: Any, entitled: bool, why: str) -> None:
    entitlement = entitlement_of("d-1", district, plan)
    assert entitlement.entitled is entitled
    assert why in entitlement.reason


# -- events ------------------------------------------------------------------------------------------


def test_the_published_event_schemas_are_the_models_schemas() -> None:
    for name, schema in product_event_schemas().items():
        published = json.loads((ROOT / "events" / "schemas" / name).read_text(encoding="utf-8"))
        assert published == schema, f"events/schemas/{name} is stale: write_schemas(Path('events/schemas'))"


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"district_id": ""},
        {"district_id": "has space"},
        {"district_id": "d-1", "plan": "gold"},
        {"district_id": "d-1", "plan": ["premium"]},
        {"district_id": "d-1"},
    ],
)
def test_a_malformed_plan_event_is_refused(detail: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PlanChangedDetail.model_validate(detail)


def test_the_sample_events_match_their_rules_and_models() -> None:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    lifecycle_rule = resources["DistrictLifecycleFunction"]["Properties"]["Events"]["ProductLifecycle"]["Properties"]
    pattern = {**lifecycle_rule["Pattern"], "source": ["product.directory"]}
    for name, model in (("sync_disabled.json", SyncDisabledDetail), ("district_plan_changed.json", PlanChangedDetail)):
        event = json.loads((ROOT / "events" / name).read_text(encoding="utf-8"))
        assert matches_pattern(pattern, event)
        model.model_validate(event["detail"])
    notify_rule = resources["NotifyAdminsFunction"]["Properties"]["Events"]["RunEnded"]["Properties"]
    review = json.loads((ROOT / "events" / "sync_needs_review.json").read_text(encoding="utf-8"))
    assert matches_pattern(notify_rule["Pattern"], review)
    assert detail_type_of(RunEndedDetail.model_validate(review["detail"]).status) == review["detail-type"]
    enabled = json.loads((ROOT / "events" / "sync_enabled.json").read_text(encoding="utf-8"))
    assert not matches_pattern(pattern, enabled)  # "Sync Enabled" starts a run, not this function


def test_a_run_end_status_names_its_event() -> None:
    assert [
        detail_type_of(s)
        for s in ("succeeded", "succeeded_with_errors", "threshold_exceeded", "needs_review", "failed", "not_entitled")
    ] == [
        "Sync Completed",
        "Sync Completed With Errors",
        "Sync Needs Review",
        "Sync Needs Review",
        "Sync Failed",
        "Sync Failed",
    ]


def test_the_enabled_event_tells_who_enabled_and_an_undo_names_its_run() -> None:
    request = SyncRequest.model_validate(
        {"district_id": "d-1", "trigger": "enabled", "detail": {"district_id": "d-1", "changed_by": "u-1"}}
    )
    assert request.requested_by == "u-1" and request.detail is None
    with pytest.raises(ValidationError):
        SyncRequest.model_validate({"district_id": "d-1", "trigger": "undo"})
    with pytest.raises(ValidationError):
        SyncRequest.model_validate({"district_id": "d-1", "trigger": "manual", "target_run_id": "r-1"})


# -- who is told -------------------------------------------------------------------------------------


def _detail(status: str, dry_run: bool = False) -> RunEndedDetail:
    return RunEndedDetail(
        district_id="d-1", run_id="r-1", status=status, trigger="schedule", dry_run=dry_run, reason="why"
    )


@pytest.mark.parametrize(
    ("when", "told"),
    [
        ("failures", {"failed", "not_entitled"}),
        ("needs_review", {"failed", "not_entitled", "threshold_exceeded", "needs_review"}),
        (
            "every_run",
            {"failed", "not_entitled", "threshold_exceeded", "needs_review", "succeeded", "succeeded_with_errors"},
        ),
    ],
)
def test_the_settings_say_about_which_run_ends_the_admin_is_emailed(when: str, told: set[str]) -> None:
    settings = NotificationSettings(emails=["a@example.org", "b@example.org"], when=when)  # type: ignore[arg-type]
    statuses = ("succeeded", "succeeded_with_errors", "threshold_exceeded", "needs_review", "failed", "not_entitled")
    emailed = {s for s in statuses if notification_for(detail_type_of(s), _detail(s), settings)}
    assert emailed == told
    email = notification_for("Sync Failed", _detail("failed"), settings)
    assert email is not None and email.to == ("a@example.org", "b@example.org") and "why" in email.body


def test_nobody_is_emailed_without_addresses_nor_about_a_self_check() -> None:
    assert notification_for("Sync Failed", _detail("failed"), NotificationSettings(when="every_run")) is None
    settings = NotificationSettings(emails=["a@example.org"], when="every_run")
    assert notification_for("Sync Completed", _detail("succeeded", dry_run=True), settings) is None


def test_notification_addresses_are_checked() -> None:
    with pytest.raises(ValidationError):
        SyncSettings.model_validate({"notifications": {"emails": ["not an address"]}})
    with pytest.raises(ValidationError):
        SyncSettings.model_validate({"notifications": {"when": "sometimes"}})
    assert SyncSettings().notifications.emails == []


# -- the plan of an undo or approval -------------------------------------------------------------------


def _item(record_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "pk": f"d-1#people#0{len(record_id) % 10}",
        "sk": record_id,
        "id": record_id,
        "kind": "students",
        "status": "active",
        "managed_by_sync": True,
        "provider_ids": {"clever": f"c-{record_id}"},
        "content_hash": "h1",
        "fields": {"given_name": "A"},
        **changes,
    }


def test_an_undo_reverses_each_write_and_leaves_what_changed_since() -> None:
    created_now = _item("new")
    updated_before, updated_now = _item("upd"), _item("upd", content_hash="h2")
    linked_before = _item("lnk", managed_by_sync=False, provider_ids={}, content_hash="")
    linked_now = _item("lnk", content_hash="h3")
    archived_before, archived_now = _item("arc"), _item("arc", status="archived")
    edited_before, edited_now = _item("edt"), _item("edt", content_hash="h2", product_edits={"email": "x@y.org"})
    written = [
        WrittenRecord(Kind.STUDENTS, "new", "create", None, state_digest(created_now)),
        WrittenRecord(Kind.STUDENTS, "upd", "update", updated_before, state_digest(updated_now)),
        WrittenRecord(Kind.STUDENTS, "lnk", "update", linked_before, state_digest(linked_now)),
        WrittenRecord(Kind.STUDENTS, "arc", "archive", archived_before, with_status(archived_before, "archived")),
        # the product edited this one after the run: its state is no longer what the run left
        WrittenRecord(Kind.STUDENTS, "edt", "update", edited_before, state_digest(_item("edt", content_hash="h2"))),
    ]
    current = {"new": created_now, "upd": updated_now, "lnk": linked_now, "arc": archived_now, "edt": edited_now}

    plan = plan_undo("r-1", written, current)

    assert plan.writes == [
        {REVERT: "archive", "kind": "students", "id": "new"},
        {REVERT: "put", "kind": "students", "id": "upd", "item": updated_before},
        {REVERT: "put", "kind": "students", "id": "lnk", "item": linked_before},
        {REVERT: "put", "kind": "students", "id": "arc", "item": archived_before},
    ]
    assert {line.id: line.action for line in plan.lines} == {
        "new": "archived",
        "upd": "updated",
        "lnk": "updated",
        "arc": "restored",
        "edt": "skipped",
    }
    assert plan.conflicts == 1 and plan.counts[Kind.STUDENTS]["skipped"] == 1
    assert "link" in next(line.reason for line in plan.lines if line.id == "lnk")


def test_the_state_after_an_update_keeps_the_products_part_and_drops_cleared_edits() -> None:
    from rostersync.directory.repository import DirectoryRecord

    before = _item("p", product_fields={"tz": "UTC"}, product_edits={"email": "a@x.org", "phone": "1"})
    record = DirectoryRecord("p", Kind.STUDENTS, "active", True, {"clever": "c-p"}, {"given_name": "B"}, "h9")
    after = {**before, "content_hash": "h9", "product_edits": {"phone": "1"}}
    assert after_update(before, record, clear_edits=("email",)) == state_digest(after)


def test_an_approval_archives_exactly_the_held_records_still_active() -> None:
    held = [
        {"kind": "students", "id": "a", "provider_id": "c-a"},
        {"kind": "students", "id": "b", "provider_id": "c-b"},
    ]
    plan = plan_approval("r-1", held, {"a": _item("a"), "b": _item("b")})
    assert [w["id"] for w in plan.writes] == ["a", "b"] and plan.conflicts == 0
    moved_on = plan_approval("r-1", held, {"a": _item("a"), "b": _item("b", status="archived")})
    assert moved_on.conflicts == 1


# -- which run actions are refused -----------------------------------------------------------------------


class FakeState:
    """The run records of one district."""

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.district_id = "d-1"
        self._runs = {r["run_id"]: r for r in runs}

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._runs.get(run_id)

    def runs(self) -> list[dict[str, Any]]:
        return list(self._runs.values())


HELD = {
    "run_id": "r-held",
    "status": "threshold_exceeded",
    "trigger": "schedule",
    "started_at": "2026-12-01T07:00:00+00:00",
    "hold": {"state": "held", "keys": ["runs/d-1/r-held/held/archive-00000.ndjson.gz"], "counts": {"students": 6}},
}


@pytest.mark.parametrize(
    ("runs", "action", "target", "why"),
    [
        ([], "undo", "r-x", "has no run r-x"),
        ([{"run_id": "r-1", "status": "running"}], "undo", "r-1", "still running"),
        ([{"run_id": "r-1", "status": "succeeded", "dry_run": True}], "undo", "r-1", "self-check"),
        ([{"run_id": "r-1", "status": "not_entitled"}], "undo", "r-1", "refused"),
        (
            [{"run_id": "r-1", "status": "succeeded", "undone_by": "r-2"}, {"run_id": "r-2", "status": "succeeded"}],
            "undo",
            "r-1",
            "undone already",
        ),
        ([{"run_id": "r-1", "status": "succeeded"}], "approve", "r-1", "held no archives"),
        ([{**HELD, "hold": {**HELD["hold"], "state": "discarded"}}], "approve", "r-held", "discarded already"),
        (
            [HELD, {"run_id": "r-next", "status": "succeeded", "trigger": "schedule", "started_at": "2026-12-02"}],
            "approve",
            "r-held",
            "may have changed",
        ),
    ],
)
def test_a_run_action_that_cannot_act_says_why(runs: list[dict[str, Any]], action: str, target: str, why: str) -> None:
    problem = run_action_problem(FakeState(runs), action, target)  # type: ignore[arg-type]
    assert problem is not None and why in problem


def test_a_run_action_that_can_act_is_let_through() -> None:
    undone_failed = [
        {"run_id": "r-1", "status": "succeeded", "undone_by": "r-2"},
        {"run_id": "r-2", "status": "failed"},
    ]
    assert run_action_problem(FakeState(undone_failed), "undo", "r-1") is None  # type: ignore[arg-type]
    assert run_action_problem(FakeState([HELD]), "approve", "r-held") is None  # type: ignore[arg-type]
    assert run_action_problem(FakeState([HELD]), "discard", "r-held") is None  # type: ignore[arg-type]
