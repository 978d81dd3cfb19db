"""When a district's scheduled sync runs: pure functions of its ``Schedule`` settings and a moment.

Times are wall-clock times in the district's time zone, so a 02:00 sync stays at 02:00 across daylight
saving changes. On the night clocks spring forward past the start time (02:30 does not exist), the run
starts at the same instant an hour later on the new clock (03:30); on the night they fall back (01:30 happens
twice) it runs once, at the first 01:30.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rostersync.settings import Schedule

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Every day of a year and a week is looked at before concluding the schedule never runs (a pause covering
# the whole year).
_HORIZON_DAYS = 366 + 7


def _month_day(text: str) -> tuple[int, int]:
    return int(text[:2]), int(text[3:])


def is_paused(schedule: Schedule, day: date) -> bool:
    """Whether ``day`` falls in the summer pause (both ends included; a pause may wrap the new year)."""
    pause = schedule.summer_pause
    if pause is None:
        return False
    start, end, today = _month_day(pause.start), _month_day(pause.end), (day.month, day.day)
    if start <= end:
        return start <= today <= end
    return today >= start or today <= end


def runs_on(schedule: Schedule, day: date) -> bool:
    """Whether the schedule starts a sync on ``day`` (a local date): its frequency, and not paused."""
    if schedule.frequency == "weekdays" and day.weekday() >= 5:
        return False
    if schedule.frequency == "weekly" and WEEKDAYS[day.weekday()] != schedule.weekday:
        return False
    return not is_paused(schedule, day)


def next_run(schedule: Schedule, after: datetime) -> datetime | None:
    """The first scheduled start strictly after ``after`` (an aware datetime), in UTC.

    UTC, not the district's zone: a local time in the autumn's repeated hour never compares equal to another
    zone's datetime (PEP 495), so callers compare instants and convert only to show them.
    None when the schedule is off, or when no day of the coming year is outside the pause.
    """
    if after.tzinfo is None:
        raise ValueError("next_run needs an aware datetime (e.g. datetime.now(UTC))")
    if not schedule.enabled:
        return None
    zone = ZoneInfo(schedule.timezone)
    hour, minute = (int(part) for part in schedule.time_of_day.split(":"))
    first = after.astimezone(zone).date()
    for offset in range(_HORIZON_DAYS):
        day = first + timedelta(days=offset)
        if not runs_on(schedule, day):
            continue
        # fold=0: an ambiguous time is its first occurrence; a missing one maps to the instant an hour on.
        start = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
        if start > after:
            return start
    return None
