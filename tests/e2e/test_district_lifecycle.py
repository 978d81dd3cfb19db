"""A district's sync lifecycle on the embedded stack (issue 12), on a 20-student synthetic district.

Entitlement refused at enable and at upload; enable → scheduled run → disable → no scheduled run, uploads
only checked → enable; every kind of run end announced on the stack's bus and emailed as the settings
ask; a 30 %-drop night held, approved (exactly the held set archived) or discarded (not held again); a
night of changes undone, the directory equal to the one before it, item by item.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.admin import connect_provider
from rostersync.config import runtime_config
from rostersync.directory.keys import COLLECTIONS
from rostersync.directory.schedules import ScheduleRepository
from rostersync.lifecycle.holds import held_records
from rostersync.settings import NotificationSettings, SyncSettings
from rostersync_tools.cli.inputs import bundle_bytes
from rostersync_tools.cli.main import main
from rostersync_tools.local.convert import clever_to_oneroster
from rostersync_tools.local.synthetic import write_synthetic_clever_district

pytestmark = pytest.mark.e2e


def admin(district_id: str) -> str:
    """The district admin's address (one per district: the session's stack keeps every test's emails)."""
    return f"admin-{district_id}@district.example.org"


@pytest.fixture(scope="module")
def small_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smallest district that still has every kind: 20 students, their teachers, sections, guardians."""
    path = tmp_path_factory.mktemp("small") / "district"
    write_synthetic_clever_district(path, students=20)
    return path


@pytest.fixture
def small(small_template: Path, tmp_path: Path, synthetic: Any) -> Any:
    """A private copy, free to edit, with conftest's ``Dataset`` helpers (the type of ``synthetic``)."""
    return type(synthetic)(small_template).copy(tmp_path / "small-1")


def cli(capsys: Any, stack: Any, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--endpoint", stack.endpoint])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_id(arn: str) -> str:
    return arn.rsplit(":", 1)[1]


def notify(state: Any, when: str) -> None:
    """The district's settings: notifications about ``when`` to its admin."""
    current, version = state.current_settings()
    emails = [admin(state.district_id)]
    settings = current.model_copy(update={"notifications": NotificationSettings(emails=emails, when=when)})
    state.put_settings(SyncSettings.model_validate(settings.model_dump()), version, "test")


def announced(stack: Any, district_id: str, run: str) -> dict[str, Any]:
    """The run-end event of one run (CloseRun publishes it once the execution ended)."""

    def found() -> dict[str, Any] | None:
        events = [e for e in stack.run_end_events(district_id) if e["detail"]["run_id"] == run]
        assert len(events) <= 1, "a run announced twice"
        return events[0] if events else None

    return stack.wait_until(found)


def emails_to(stack: Any, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.sent_emails() if address in m["to"]]


def raw_directory(district: Any) -> dict[str, dict[str, Any]]:
    """Every directory item of the district, whole (every attribute), by id."""
    items: dict[str, dict[str, Any]] = {}
    for collection in COLLECTIONS:
        for item in district.directory._scan_collection(collection, dict):
            items[item["id"]] = item
    return items


def new_executions(stack: Any, before: set[str], district_id: str) -> list[str]:
    sfn = stack.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.outputs["SyncStateMachineArn"])
    arns = {e["executionArn"] for page in pages for e in page["executions"]} - before
    return [
        a for a in arns if json.loads(sfn.describe_execution(executionArn=a)["input"]).get("district_id") == district_id
    ]


def all_executions(stack: Any) -> set[str]:
    sfn = stack.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.outputs["SyncStateMachineArn"])
    return {e["executionArn"] for page in pages for e in page["executions"]}


# -- entitlement --------------------------------------------------------------------------------------


def test_a_district_not_entitled_is_refused_at_enable_and_at_upload(
    stack: Any, district: Callable[..., Any], small: Any, make_product: Any, capsys: Any
) -> None:
    product = make_product(small)
    product.district.plan = "free"
    d = district(small, product=product)
    notify(d.state, "failures")
    before = raw_directory(d)

    # When the product enables sync of a district on the free plan
    (enable,) = stack.publish_event("product.directory", "Sync Enabled", {"district_id": d.id, "changed_by": "u-7"})
    assert stack.wait(enable)["status"] == "SUCCEEDED"
    # Then the run is refused before anything is fetched: its record says why, no lock, nothing written
    refused = d.state.get_run(run_id(enable))
    assert refused["status"] == "not_entitled" and "free plan" in refused["refused_reason"]
    assert "report_key" not in refused and d.state.lock_holder() is None and d.state.enabled() is None

    # And an upload into its folder is refused the same way (the bundle is not even opened)
    key = f"uploads/{d.id}/night-1/bundle.zip"
    aws.client("s3").put_object(Bucket=runtime_config().sync_bucket, Key=key, Body=b"not even a zip")
    (upload,) = stack.publish_upload(key)
    assert stack.wait(upload)["status"] == "SUCCEEDED"
    assert d.state.get_run(run_id(upload))["status"] == "not_entitled"
    assert raw_directory(d) == before

    # Both refusals are announced as "Sync Failed" with the reason, and emailed (settings: failures)
    for arn in (enable, upload):
        event = announced(stack, d.id, run_id(arn))
        assert event["detail-type"] == "Sync Failed" and event["bus"] == f"{stack.stack_name}-sync-events"
        assert event["detail"]["status"] == "not_entitled" and "free plan" in event["detail"]["reason"]
    mails = stack.wait_until(lambda: len(emails_to(stack, admin(d.id))) >= 2 and emails_to(stack, admin(d.id)))
    assert len(mails) == 2 and all("Sync Failed" in m["subject"] and "free plan" in m["body"] for m in mails)

    # The CLI shows it: status names the plan; enable prints the refusal and exits 1
    code, out, _ = cli(capsys, stack, "status", "--district", d.id)
    assert code == 0 and "NOT entitled, plan free" in out and "not_entitled" in out
    code, out, _ = cli(capsys, stack, "enable", "--district", d.id, "--wait")
    assert code == 1 and "not_entitled" in out and "free plan" in out

    # A bad "District Plan Changed" writes nothing and says why; a good one makes the district entitled
    lifecycle = f"{stack.stack_name}-DistrictLifecycleFunction"

    def invoke(detail: Any, detail_type: str = "District Plan Changed") -> dict[str, Any]:
        event = {"source": "product.directory", "detail-type": detail_type, "detail": detail}
        answer = stack.client("lambda").invoke(FunctionName=lifecycle, Payload=json.dumps(event).encode())
        return json.loads(answer["Payload"].read())

    for detail, why in (
        ({"district_id": d.id, "plan": "gold"}, "'gold' is not a plan"),
        ({"plan": "premium"}, "district_id"),
        ({"district_id": "d-nobody", "plan": "premium"}, "not known"),
        ({"district_id": d.id, "plan": ["premium"]}, "plan"),
        ("premium", "no detail object"),
    ):
        result = invoke(detail)
        assert result["applied"] is False and why in result["reason"], (detail, result)
    assert (d.state.get_item("PLAN") or {})["plan"] == "free"
    assert invoke({"district_id": d.id}, "Sync Disabled")["applied"] is False  # not enabled: nothing to disable

    stack.publish_event("product.directory", "District Plan Changed", {"district_id": d.id, "plan": "premium"})
    stack.wait_until(lambda: (d.state.get_item("PLAN") or {}).get("plan") == "premium")
    code, out, _ = cli(capsys, stack, "status", "--district", d.id)
    assert "entitled, plan premium" in out and "NOT" not in out


# -- enable and disable ---------------------------------------------------------------------------------


def test_enable_scheduled_run_disable_no_scheduled_run_enable_again(
    stack: Any, district: Callable[..., Any], small: Any, capsys: Any
) -> None:
    d = district(small)
    schedules = ScheduleRepository(aws.client("dynamodb"), runtime_config().sync_state_table)

    # Enabled by the product's event: the first sync, recorded with who and when, and a next run
    (enable,) = stack.publish_event("product.directory", "Sync Enabled", {"district_id": d.id, "changed_by": "u-1"})
    assert stack.wait(enable)["status"] == "SUCCEEDED"
    assert d.state.get_run(run_id(enable))["status"] == "succeeded"
    assert d.state.enabled()["enabled_by"] == "u-1"
    assert schedules.get(d.id).next_run_at is not None

    # The scheduled time comes: the tick starts the district's run
    now = datetime.now(UTC)
    schedules.put(d.id, now - timedelta(minutes=1), now)
    before = all_executions(stack)
    (tick,) = stack.play_schedules()
    assert d.id in json.loads(tick["body"])["started"]
    (scheduled,) = new_executions(stack, before, d.id)
    assert stack.wait(scheduled)["status"] == "SUCCEEDED"
    assert d.state.get_run(run_id(scheduled))["trigger"] == "schedule"

    # Disabled (the CLI sends "Sync Disabled"): off the schedule, and a settings change does not bring it back
    code, out, _ = cli(capsys, stack, "disable", "--district", d.id, "--by", "u-2", "--reason", "contract ended")
    assert code == 0 and "disabled" in out
    switch = d.state.get_item("ENABLED")
    assert (
        switch["enabled"] is False and switch["disabled_by"] == "u-2" and switch["disabled_reason"] == "contract ended"
    )
    assert schedules.get(d.id).next_run_at is None
    code, _, _ = cli(capsys, stack, "settings", "set", "--district", d.id, "schedule.time_of_day=03:00")
    assert code == 0 and schedules.get(d.id).next_run_at is None
    before = all_executions(stack)
    (tick,) = stack.play_schedules()
    assert d.id not in json.loads(tick["body"])["started"] and new_executions(stack, before, d.id) == []
    code, out, err = cli(capsys, stack, "disable", "--district", d.id)
    assert code == 2 and "not enabled" in err and out == ""

    # Enabled again (the CLI sends "Sync Enabled"): a run, and back on the schedule
    code, out, _ = cli(capsys, stack, "enable", "--district", d.id, "--by", "u-3", "--wait")
    assert code == 0 and "succeeded" in out
    assert d.state.enabled()["enabled_by"] == "u-3" and schedules.get(d.id).next_run_at is not None
    code, out, _ = cli(capsys, stack, "status", "--district", d.id)
    assert "enabled by u-3" in out and "next run:    20" in out and "succeeded" in out
    history = [
        item["action"] for item in json.loads(cli(capsys, stack, "status", "--district", d.id, "--json")[1])["history"]
    ]
    assert history[:3] == ["enabled", "disabled", "enabled"]


def test_a_disabled_sftp_district_only_checks_its_uploads_until_enabled_again(
    stack: Any, small: Any, make_product: Any, tmp_path: Path
) -> None:
    from rostersync.directory.product import import_product_directory
    from rostersync.directory.repository import DirectoryRepository, SyncStateRepository

    config, dynamodb, s3 = runtime_config(), aws.client("dynamodb"), aws.client("s3")
    product = make_product(small).model_dump(mode="json")
    for school in product["schools"]:
        school["provider_ids"] = {"oneroster": school["provider_ids"]["clever"]}
    from rostersync.directory.product import ProductDirectory

    product = ProductDirectory.model_validate(product)
    district_id = product.district.id
    directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
    state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
    import_product_directory(product, directory, state)
    connect_provider(state, aws.client("secretsmanager"), "oneroster-csv")

    def upload(dataset: Any, night: str) -> str:
        bundle = tmp_path / f"bundle-{night}"
        clever_to_oneroster(dataset.path, bundle)
        key = f"uploads/{district_id}/{night}/bundle.zip"
        s3.put_object(Bucket=config.sync_bucket, Key=key, Body=bundle_bytes(bundle))
        (arn,) = stack.publish_upload(key)
        assert stack.wait(arn)["status"] == "SUCCEEDED"
        return run_id(arn)

    stack.router.enabled = False
    try:
        clever_to_oneroster(small.path, tmp_path / "first")
        s3.put_object(
            Bucket=config.sync_bucket,
            Key=f"uploads/{district_id}/first/bundle.zip",
            Body=bundle_bytes(tmp_path / "first"),
        )
    finally:
        stack.router.enabled = True
    (enable,) = stack.publish_event("product.directory", "Sync Enabled", {"district_id": district_id})
    assert stack.wait(enable)["status"] == "SUCCEEDED" and state.get_run(run_id(enable))["status"] == "succeeded"

    stack.publish_event("product.directory", "Sync Disabled", {"district_id": district_id, "changed_by": "u-9"})
    stack.wait_until(lambda: state.enabled() is None)

    # A night's upload while disabled is only checked: a dry run, nothing written
    night2 = small.copy(tmp_path / "night-2")
    leaver = night2.users("student")[0]["id"]
    night2.remove_students({leaver})
    items = {r.id: r for c in COLLECTIONS for r in directory.records(c)}
    checked = state.get_run(upload(night2, "night-2"))
    assert checked["dry_run"] is True and checked["status"] == "succeeded"
    assert {r.id: r for c in COLLECTIONS for r in directory.records(c)} == items

    # Enabling again syncs the latest upload for real
    (again,) = stack.publish_event("product.directory", "Sync Enabled", {"district_id": district_id})
    assert stack.wait(again)["status"] == "SUCCEEDED"
    resumed = state.get_run(run_id(again))
    assert resumed["status"] == "succeeded" and resumed["bundle_key"].endswith("night-2/bundle.zip")
    assert resumed["counts"]["students"]["archived"] == 1


# -- the admin told -------------------------------------------------------------------------------------


def test_each_kind_of_run_end_is_announced_and_emailed_as_the_settings_ask(
    stack: Any, district: Callable[..., Any], small: Any, tmp_path: Path
) -> None:
    d = district(small)
    d.read_in_full()  # full reads: the broken night's bad row reaches the roster (events would skip it)
    notify(d.state, "every_run")
    address = admin(d.id)

    def ended(outcome: Any, detail_type: str) -> dict[str, Any]:
        event = announced(stack, d.id, outcome.run_id)
        assert event["detail-type"] == detail_type, event
        detail = event["detail"]
        assert detail["district_id"] == d.id and detail["run_id"] == outcome.run_id
        assert detail["counts"] == outcome.run["counts"]
        assert detail["report"]["command"].endswith(f"--run {outcome.run_id}") and detail["report"]["url"]
        return detail

    def mailed(n: int, subject: str) -> None:
        mails = stack.wait_until(lambda: len(emails_to(stack, address)) >= n and emails_to(stack, address))
        assert len(mails) == n and subject in mails[-1]["subject"]

    first = d.sync(export=False)
    assert ended(first, "Sync Completed")["totals"]["created"] > 0
    mailed(1, "Sync Completed")

    night = small.copy(tmp_path / "broken")
    night.append_users({"data": {"id": "", "roles": {"student": {}}}})
    d.serve(night)
    broken = d.sync(export=False)
    assert broken.status == "succeeded_with_errors"
    ended(broken, "Sync Completed With Errors")
    mailed(2, "Sync Completed With Errors")

    drop = small.copy(tmp_path / "drop")
    drop.remove_students({s["id"] for s in drop.users("student")[:6]})
    d.serve(drop)
    held = d.sync(export=False)
    assert held.status == "threshold_exceeded"
    assert f"rostersync runs approve {held.run_id}" in ended(held, "Sync Needs Review")["reason"]
    mailed(3, "Sync Needs Review")

    # The settings now ask about failures only: a completed run is announced but nobody is emailed
    notify(d.state, "failures")
    d.serve(small)
    ended(d.sync(export=False), "Sync Completed")
    d.connect("a-revoked-token")
    failed = d.sync(export=False)
    assert failed.status == "failed"
    assert "token" in ended(failed, "Sync Failed")["reason"].lower()
    mailed(4, "Sync Failed")

    # A run stopped past every Catch: CloseRun writes its failed report and announces it too
    d.connect(d.simulator.token)
    arrived, release = d.simulator.hold("/v3.0/users")
    arn = stack.start_sync(d.id)
    try:
        assert arrived.wait(60)
        stack.client("stepfunctions").stop_execution(executionArn=arn, error="Stopped", cause="by hand")
    finally:
        release.set()
    stack.wait(arn)
    event = stack.wait_until(lambda: [e for e in stack.run_end_events(d.id) if e["detail"]["run_id"] == run_id(arn)])
    assert event[0]["detail-type"] == "Sync Failed" and "stopped" in event[0]["detail"]["reason"]
    mailed(5, "Sync Failed")
    # the run record says it was notified (how many addresses, never which)
    notified = stack.wait_until(lambda: d.state.get_run(run_id(arn)).get("notified"))
    assert notified["recipients"] == 1 and notified["detail_type"] == "Sync Failed"


# -- a held run approved or discarded ---------------------------------------------------------------------


def test_a_30_percent_drop_is_held_approved_exactly_and_a_discarded_hold_is_not_held_again(
    stack: Any, district: Callable[..., Any], small: Any, tmp_path: Path, capsys: Any
) -> None:
    d = district(small)
    d.read_in_full()  # full reads, as a reconcile does: the run after a discard sees the kept records again
    d.sync(export=False)
    drop = small.copy(tmp_path / "drop")
    leavers = {s["id"] for s in drop.users("student")[:6]}  # 30 % of 20
    drop.remove_students(leavers)
    d.serve(drop)

    held = d.sync()
    assert held.status == "threshold_exceeded" and held.run["hold"]["state"] == "held"
    held_set = {r["id"] for r in held_records(aws.client("s3"), held.bucket, held.run["hold"]["keys"])}
    students = {r["provider_ids"]["clever"]: r["id"] for r in held.records("people") if "clever" in r["provider_ids"]}
    assert {students[s] for s in leavers} <= held_set
    before = raw_directory(d)

    code, out, _ = cli(capsys, stack, "runs", "approve", held.run_id, "--district", d.id, "--by", "u-5")
    assert code == 0 and "Approval" in out, out
    after = raw_directory(d)
    changed = {i for i in before if before[i] != after[i]}
    assert changed == held_set  # exactly the held archives, nothing else
    assert all(after[i]["status"] == "archived" for i in held_set)
    target = d.state.get_run(held.run_id)
    assert target["hold"]["state"] == "approved"
    approval = d.state.get_run(target["hold"]["approve_run"])
    assert approval["trigger"] == "approve" and approval["status"] == "succeeded"
    assert sum(c["archived"] for c in approval["counts"].values()) == len(held_set)

    # Approving again, or a run of another district, or a run that held nothing: one line, exit 2
    for argv, why in (
        (("runs", "approve", held.run_id), "approved already"),
        (("runs", "approve", "20260101T000000Z-elsewhere"), "has no run"),
        (("runs", "discard", target["hold"]["approve_run"]), "held no archives"),
        (("runs", "undo", held.run_id, "--preview", "--by", "x"), None),
    ):
        code, out, err = cli(capsys, stack, *argv, "--district", d.id)
        if why is None:
            assert code == 0  # an undo preview of the held run is fine: it wrote creates and updates
            continue
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, (argv, err)

    # Another big drop, discarded: the records stay, and the next run does not hold them again
    drop2 = drop.copy(tmp_path / "drop2")
    drop2.remove_students({s["id"] for s in drop2.users("student")[:5]})
    d.serve(drop2)
    held2 = d.sync(export=False)
    assert held2.status == "threshold_exceeded"
    kept = {r["id"] for r in held_records(aws.client("s3"), held2.bucket, held2.run["hold"]["keys"])}
    code, out, _ = cli(capsys, stack, "runs", "discard", held2.run_id, "--district", d.id, "--by", "u-6")
    assert code == 0 and "discarded" in out
    after_discard = d.sync()
    assert after_discard.status == "succeeded" and "hold" not in after_discard.run
    assert all(r["status"] == "active" for r in after_discard.records("people") if r["id"] in kept)
    kept_lines = [line for line in after_discard.csv_rows("students.csv") if "discarded" in line.get("reason", "")]
    assert kept_lines and any("kept" in note.lower() for note in after_discard.report["notes"])


# -- undo -------------------------------------------------------------------------------------------------


def test_a_night_of_changes_undone_leaves_the_directory_as_before_item_by_item(
    stack: Any, district: Callable[..., Any], small: Any, tmp_path: Path, capsys: Any
) -> None:
    d = district(small)
    d.sync(export=False)
    before = raw_directory(d)

    night = small.copy(tmp_path / "night-2")
    students = night.users("student")
    night.remove_students({students[0]["id"]})
    night.add_student_like(students[1]["id"], "new-student-1", name={"first": "Ada", "last": "Lovelace"})
    night.edit_users(lambda u: u["name"].update(last="Renamed"), {students[2]["id"], students[3]["id"]})
    d.serve(night)
    changes = d.sync(export=False)
    assert changes.status == "succeeded"
    assert {"created", "updated", "archived"} <= {a for k in ("students", "enrollments") for a in changes.changed(k)}
    after_night = raw_directory(d)
    created = set(after_night) - set(before)
    assert created

    # The admin edits one of the renamed students in the product meanwhile: undo must leave it alone
    renamed = next(
        i
        for i in before
        if before[i] != after_night.get(i)
        and after_night[i]["kind"] == "students"
        and after_night[i]["status"] == "active"
    )
    d.directory.record_product_edit(_kind_id(after_night[renamed])[0], renamed, "email", "x@y.org")
    edited = raw_directory(d)[renamed]

    # A preview writes nothing and says what the undo would do
    code, out, _ = cli(capsys, stack, "runs", "undo", changes.run_id, "--preview", "--district", d.id)
    assert code == 0 and "Undo preview" in out and "Preview: nothing was written" in out
    assert raw_directory(d) == {**after_night, renamed: edited}

    code, out, _ = cli(capsys, stack, "runs", "undo", changes.run_id, "--district", d.id, "--by", "u-8")
    assert code == 0 and "Undo" in out
    undone = raw_directory(d)
    assert {i for i in before if undone.get(i) != before[i]} == {renamed}  # equal item by item, but the edited one
    assert undone[renamed] == edited
    assert all(undone[i]["status"] == "archived" for i in created)  # the night's creates archived again
    target = d.state.get_run(changes.run_id)
    undo_run = d.state.get_run(target["undone_by"])
    assert undo_run["trigger"] == "undo" and undo_run["status"] == "succeeded" and undo_run["report_key"]
    report = json.loads(aws.client("s3").get_object(Bucket=changes.bucket, Key=undo_run["report_key"])["Body"].read())
    assert any(changes.run_id in note for note in report["notes"])
    skipped = [line for line in _rows(changes.bucket, report, "students.csv") if line["action"] == "skipped"]
    assert [line["id"] for line in skipped] == [renamed]
    assert announced(stack, d.id, target["undone_by"])["detail"]["target_run_id"] == changes.run_id

    # Undoing it twice, or a self-check: one line, exit 2, nothing started
    for argv, why in ((("runs", "undo", changes.run_id), "undone already"),):
        code, out, err = cli(capsys, stack, *argv, "--district", d.id)
        assert code == 2 and why in err


def _kind_id(item: dict[str, Any]) -> tuple[Any, str]:
    from rostersync.domain.records import Kind

    return Kind(item["kind"]), item["id"]


def _rows(bucket: str, report: dict[str, Any], name: str) -> list[dict[str, str]]:
    import csv
    import io

    key = report["files"].get(name)
    if key is None:
        return []
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))
