"""The schedule tick on moto: due districts get one ``schedule`` run each; the rest are left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository, instant
from rostersync.settings import parse_settings
from rostersync.steps.schedule import reschedule, tick

REGION = "us-east-1"
# Thursday 2026-11-26, 07:05 UTC: 02:05 in New York, just after the default 02:00 start.
NOW = datetime(2026, 11, 26, 7, 5, tzinfo=UTC)


@pytest.fixture
def stack(
    dynamodb: Any, sync_state_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str, ScheduleRepository]]:
    """The sync-state table and a (non-executing) state machine, configured as the ScheduleTick sees them."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="rostersync-sync",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/local",
    )["stateMachineArn"]
    for name, value in {
        "SYNC_STATE_TABLE": sync_state_table,
        "DIRECTORY_TABLE": "unused",
        "SYNC_BUCKET": "unused",
        "SYNC_STATE_MACHINE_ARN": arn,
    }.items():
        monkeypatch.setenv(name, value)
    runtime_config.cache_clear()
    aws.forget_clients()
    yield sfn, arn, ScheduleRepository(dynamodb, sync_state_table)
    runtime_config.cache_clear()
    aws.forget_clients()


def started(sfn: Any, arn: str) -> list[dict[str, Any]]:
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    return [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]


def test_a_due_district_gets_one_scheduled_run_and_its_next_run_moves_to_tomorrow(stack: Any) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-due", NOW - timedelta(minutes=5), NOW - timedelta(days=1))

    result = tick(NOW)

    assert result.started == ["d-due"]
    assert started(sfn, arn) == [{"district_id": "d-due", "trigger": "schedule"}]
    # The default schedule: 02:00 New York, i.e. 07:00 UTC on 2026-11-27.
    assert schedules.get("d-due").next_run_at == "2026-11-27T07:00:00Z"


def test_a_second_tick_at_the_same_time_starts_nothing_more(stack: Any) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-due", NOW - timedelta(minutes=5), NOW - timedelta(days=1))

    tick(NOW)
    again = tick(NOW + timedelta(minutes=1))

    assert again.started == []
    assert len(started(sfn, arn)) == 1


def test_a_district_not_yet_due_or_with_its_schedule_off_is_not_started(stack: Any) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-later", NOW + timedelta(minutes=1), NOW)
    schedules.put("d-off", None, NOW)

    assert tick(NOW).started == []
    assert started(sfn, arn) == []
    assert schedules.get("d-later").next_run_at == instant(NOW + timedelta(minutes=1))


def test_a_tick_that_was_down_for_days_starts_one_run_not_a_backlog(stack: Any) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-late", NOW - timedelta(days=3), NOW - timedelta(days=4))

    assert tick(NOW).started == ["d-late"]
    assert len(started(sfn, arn)) == 1
    assert schedules.get("d-late").next_run_at == "2026-11-27T07:00:00Z"


def test_a_district_switched_off_since_its_time_was_set_is_moved_on_not_started(
    stack: Any, dynamodb: Any, sync_state_table: str
) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-1", NOW - timedelta(minutes=5), NOW - timedelta(days=1))
    # Settings saved without `rostersync settings set`, which would have moved the next run.
    SyncStateRepository(dynamodb, sync_state_table, "d-1").put_settings(
        parse_settings({"schedule": {"enabled": False}}), 0, "alice"
    )

    result = tick(NOW)

    assert (result.started, result.moved_on) == ([], ["d-1"])
    assert started(sfn, arn) == []
    assert schedules.get("d-1").next_run_at is None


def test_a_district_in_its_pause_today_is_moved_past_the_pause(
    stack: Any, dynamodb: Any, sync_state_table: str
) -> None:
    sfn, _, schedules = stack
    schedules.put("d-1", NOW - timedelta(minutes=5), NOW - timedelta(days=1))
    pause = {"start": "11-20", "end": "11-30"}
    SyncStateRepository(dynamodb, sync_state_table, "d-1").put_settings(
        parse_settings({"schedule": {"summer_pause": pause}}), 0, "alice"
    )

    assert tick(NOW).moved_on == ["d-1"]
    assert schedules.get("d-1").next_run_at == "2026-12-01T07:00:00Z"


def test_a_district_whose_settings_no_longer_validate_is_started_and_tried_again_a_day_later(
    stack: Any, dynamodb: Any, sync_state_table: str
) -> None:
    sfn, arn, schedules = stack
    schedules.put("d-1", NOW - timedelta(minutes=5), NOW - timedelta(days=1))
    SyncStateRepository(dynamodb, sync_state_table, "d-1").put_item(
        "SETTINGS", {"version": 1, "settings": {"schedule": {"timezone": "Mars/Olympus"}}}
    )

    # The run fails in Start with a report naming the setting: that is how the admin learns of it.
    assert tick(NOW).started == ["d-1"]
    assert schedules.get("d-1").next_run_at == instant(NOW + timedelta(days=1))


def test_advancing_from_a_stale_time_fails_so_only_one_tick_starts_the_run(stack: Any) -> None:
    _, _, schedules = stack
    due = NOW - timedelta(minutes=5)
    schedules.put("d-1", due, NOW)

    assert schedules.advance("d-1", instant(due), NOW + timedelta(days=1), NOW)
    assert not schedules.advance("d-1", instant(due), NOW + timedelta(days=2), NOW)
    assert schedules.get("d-1").next_run_at == instant(NOW + timedelta(days=1))


def test_a_settings_change_moves_a_scheduled_districts_next_run_only(stack: Any) -> None:
    _, _, schedules = stack
    schedules.put("d-on", NOW + timedelta(hours=20), NOW)
    later = parse_settings({"schedule": {"time_of_day": "05:30", "timezone": "UTC"}})

    assert reschedule(schedules, "d-on", later, NOW)
    assert schedules.get("d-on").next_run_at == "2026-11-27T05:30:00Z"
    # A district whose sync was never enabled is not put on the schedule by a settings change.
    assert not reschedule(schedules, "d-never-enabled", later, NOW)
    assert schedules.get("d-never-enabled") is None


def test_schedules_are_not_in_any_districts_partition(stack: Any, dynamodb: Any, sync_state_table: str) -> None:
    _, _, schedules = stack
    schedules.put("d-1", NOW, NOW)
    state = SyncStateRepository(dynamodb, sync_state_table, "d-1")
    assert state.runs() == [] and state.settings_history() == []
