"""Scheduled syncs: put a district on its schedule, keep its next run current, and start the due ones.

- A district goes on the schedule when sync is enabled: Start of an ``enabled`` run that passed its checks
  (a connection that is not upload-only) calls ``schedule_enabled_district``. From the start, not the
  success, of that run: a first run that fails is tried again at the next scheduled time.
- Saving its settings moves its next run (``reschedule``), if it is on the schedule.
- Every 15 minutes the ScheduleTick Lambda calls ``tick(now)``: each district whose next run has come gets
  ``{"district_id", "trigger": "schedule"}`` started, once; its next run moves on from now, so a tick
  that was down for hours starts one run, not a backlog.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository
from rostersync.observability import emit, logger
from rostersync.schedule import is_paused, next_run
from rostersync.settings import SettingsError, SyncSettings

# When a district's stored settings no longer validate, its next try is this much later (the run itself
# fails in Start with a report naming the setting to fix).
RETRY_INVALID_SETTINGS = timedelta(days=1)


class TickResult(BaseModel):
    """What one tick did: the districts whose run it started, and those it only moved on."""

    started: list[str] = Field(default_factory=list)
    moved_on: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


def _schedules(client: Any | None = None) -> ScheduleRepository:
    return ScheduleRepository(client or aws.client("dynamodb"), runtime_config().sync_state_table)


def schedule_enabled_district(state: SyncStateRepository, settings: SyncSettings, now: datetime) -> None:
    """Put the district on its schedule (or back on it): Start calls this for an ``enabled`` run."""
    _schedules().put(state.district_id, next_run(settings.schedule, now), now)


def reschedule(schedules: ScheduleRepository, district_id: str, settings: SyncSettings, now: datetime) -> bool:
    """Move a scheduled district's next run after its settings changed; False if it is not on the schedule."""
    return schedules.move_if_scheduled(district_id, next_run(settings.schedule, now), now)


def tick(now: datetime) -> TickResult:
    """Start the sync of every district whose scheduled time has come, once each."""
    config = runtime_config()
    dynamodb = aws.client("dynamodb")
    schedules = _schedules(dynamodb)
    result = TickResult()
    for due in schedules.due(now):
        district_id = due.district_id
        state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
        settings: SyncSettings | None
        try:
            settings, _ = state.current_settings()
            upcoming = next_run(settings.schedule, now)
        except SettingsError:
            settings, upcoming = None, now + RETRY_INVALID_SETTINGS
        if not schedules.advance(district_id, str(due.next_run_at), upcoming, now):
            continue  # another tick, or a settings change, moved it first
        if settings is not None and not _runs_today(settings, now):
            result.moved_on.append(district_id)
            continue
        try:
            aws.client("stepfunctions").start_execution(
                stateMachineArn=config.sync_state_machine_arn,
                name=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
                input=json.dumps({"district_id": district_id, "trigger": "schedule"}),
            )
        except Exception:  # one district's failure must not stop the other districts' runs
            logger.exception("scheduled run not started", extra={"district_id": district_id})
            result.failed.append(district_id)
            continue
        result.started.append(district_id)
    for outcome, districts in (("started", result.started), ("moved_on", result.moved_on), ("failed", result.failed)):
        emit("ScheduledRuns", len(districts), step="schedule_tick", outcome=outcome)
    logger.info(
        "schedule tick",
        extra={"started": len(result.started), "moved_on": len(result.moved_on), "failed": len(result.failed)},
    )
    return result


def _runs_today(settings: SyncSettings, now: datetime) -> bool:
    """Still on and not paused today: the time was set before settings written some other way than
    `rostersync settings set` (which moves it) switched the schedule off or paused it."""
    today = now.astimezone(ZoneInfo(settings.schedule.timezone)).date()
    return settings.schedule.enabled and not is_paused(settings.schedule, today)
