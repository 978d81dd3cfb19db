"""The lifecycle's stores against moto (issue 12): the plan and the switch with their history, the
schedule a disabled district leaves, before-images written once, a discarded hold remembered."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rostersync.directory.product import ProductDirectory, import_product_directory
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository
from rostersync.domain.records import Kind
from rostersync.lifecycle import before_images
from rostersync.lifecycle.district import DistrictLifecycle
from rostersync.lifecycle.holds import discard_hold, kept_ids
from rostersync.storage import RunStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def state(dynamodb: Any, sync_state_table: str) -> SyncStateRepository:
    return SyncStateRepository(dynamodb, sync_state_table, "d-1")


@pytest.fixture
def s3(mocked_aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="sync")
    return client


def test_losing_the_plan_disables_sync_and_takes_the_district_off_the_schedule(
    dynamodb: Any, sync_state_table: str, state: SyncStateRepository
) -> None:
    schedules = ScheduleRepository(dynamodb, sync_state_table)
    product = ProductDirectory.model_validate(
        {"district": {"id": "d-1", "name": "D", "plan": "premium"}, "schools": []}
    )
    # the import is stamped with the test's clock, not the machine's: the history's order must not depend on the day
    import_product_directory(
        product, DirectoryRepository(dynamodb, "DirectoryTable", "d-1"), state, now=NOW - timedelta(days=1)
    )
    lifecycle = DistrictLifecycle(state, schedules)
    assert lifecycle.entitlement().entitled and state.get_item("PLAN")["changed_by"] == "import-product"

    lifecycle.mark_enabled("r-1", "u-1", NOW)
    schedules.put("d-1", NOW + timedelta(hours=20), NOW)
    assert lifecycle.is_enabled()

    entitlement = lifecycle.set_plan("free", "billing", "event", NOW + timedelta(hours=1))

    assert not entitlement.entitled and not lifecycle.is_enabled()
    assert state.enabled() is None
    switch = lifecycle.switch()
    assert switch["disabled_by"] == "billing" and "free plan" in switch["disabled_reason"]
    assert schedules.get("d-1").next_run_at is None and schedules.due(NOW + timedelta(days=2)) == []
    # a settings change does not reschedule a disabled district; enabling again does
    assert schedules.move_if_scheduled("d-1", NOW + timedelta(days=1), NOW) is False
    schedules.put("d-1", NOW + timedelta(days=1), NOW)
    assert schedules.move_if_scheduled("d-1", NOW + timedelta(days=1, hours=1), NOW) is True
    assert [h["action"] for h in lifecycle.history()] == ["disabled", "plan_changed", "enabled", "plan_changed"]
    assert lifecycle.disable("u-2") is False  # not enabled: nothing written
    assert len(lifecycle.history()) == 4


def test_whoever_reads_the_switch_off_finds_the_district_off_the_schedule(
    dynamodb: Any, sync_state_table: str, state: SyncStateRepository
) -> None:
    """``rostersync disable`` returns once the switch reads off: the schedule must be off by then (the
    switch used to be written first, and the end-to-end lifecycle test saw a next run after it)."""
    schedules = ScheduleRepository(dynamodb, sync_state_table)
    lifecycle = DistrictLifecycle(state, schedules)
    lifecycle.mark_enabled("r-1", "u-1", NOW)
    schedules.put("d-1", NOW + timedelta(hours=20), NOW)
    next_run_when_switched: list[Any] = []
    put_item = state.put_item

    def watching(key: str, item: dict[str, Any]) -> Any:
        if key == "ENABLED" and item.get("enabled") is False:
            next_run_when_switched.append(schedules.get("d-1").next_run_at)
        return put_item(key, item)

    state.put_item = watching  # type: ignore[method-assign]
    assert lifecycle.disable("u-2", "contract ended", NOW + timedelta(hours=1))
    assert next_run_when_switched == [None]


def test_before_images_are_written_once_and_read_back(dynamodb: Any, directory_table: str, s3: Any) -> None:
    store = RunStore(s3, "sync", "d-1", "r-1")
    directory = DirectoryRepository(dynamodb, directory_table, "d-1")
    record = DirectoryRecord("s-1", Kind.STUDENTS, "active", True, {"clever": "c-1"}, {"given_name": "A"}, "h1")
    directory.put_records([record])
    items = directory.raw_items([(Kind.STUDENTS, "s-1"), (Kind.STUDENTS, "absent")])
    assert set(items) == {"s-1"} and items["s-1"]["provider_ids"] == {"clever": "c-1"}
    first = [before_images.WrittenRecord(Kind.STUDENTS, "s-1", "update", items["s-1"], "after-1")]
    retried = [before_images.WrittenRecord(Kind.STUDENTS, "s-1", "update", {"changed": True}, "after-2")]

    assert before_images.write_once(store, "writes-00000", first) is True
    assert before_images.write_once(store, "writes-00000", retried) is False  # a retried chunk keeps the first

    (read,) = before_images.written_records(store)
    assert read.before == items["s-1"] and read.after_state == "after-1" and read.collection == "people"
    # the item written back whole is the item read
    directory.put_item_image({**items["s-1"], "status": "archived"})
    assert directory.get(Kind.STUDENTS, "s-1").status == "archived"
    with pytest.raises(ValueError, match="another district"):
        directory.put_item_image({**items["s-1"], "pk": "d-2#people#01", "district_id": "d-2"})


def test_a_discarded_hold_is_remembered_as_kept(state: SyncStateRepository, s3: Any) -> None:
    key = "runs/d-1/r-held/held/archive-00000.ndjson.gz"
    lines = [{"kind": "students", "id": f"s-{n}", "provider_id": f"c-{n}"} for n in range(3)]
    s3.put_object(Bucket="sync", Key=key, Body=gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    state.put_run(
        "r-held", status="threshold_exceeded", hold={"state": "held", "keys": [key], "counts": {"students": 3}}
    )

    assert discard_hold(state, "r-held", "u-6", NOW) == 3

    assert state.get_run("r-held")["hold"]["state"] == "discarded"
    assert kept_ids(state, s3, "sync") == {"s-0": "r-held", "s-1": "r-held", "s-2": "r-held"}
    with pytest.raises(ValueError, match="decided meanwhile"):
        discard_hold(state, "r-held", "u-7", NOW)
