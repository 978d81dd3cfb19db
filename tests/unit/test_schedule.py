"""When the scheduled sync runs: DST, weekdays and weekly, the summer pause (inclusive, wrapping), off."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rostersync.schedule import is_paused, next_run
from rostersync.settings import Schedule, SummerPause

NEW_YORK = ZoneInfo("America/New_York")


def schedule(**fields: Any) -> Schedule:
    pause = fields.pop("pause", None)
    if pause:
        fields["summer_pause"] = SummerPause(start=pause[0], end=pause[1])
    return Schedule.model_validate(fields)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_next_run_is_todays_time_when_it_is_still_ahead() -> None:
    nightly = schedule(time_of_day="02:00", timezone="America/Chicago")
    # 2026-01-15 06:00 UTC is 00:00 in Chicago (CST, UTC-6): tonight's 02:00 is 08:00 UTC.
    assert next_run(nightly, utc(2026, 1, 15, 6, 0)) == utc(2026, 1, 15, 8, 0)


def test_a_run_exactly_now_is_past_the_next_is_tomorrow() -> None:
    nightly = schedule(time_of_day="02:00", timezone="America/Chicago")
    assert next_run(nightly, utc(2026, 1, 15, 8, 0)) == utc(2026, 1, 16, 8, 0)


def test_the_result_is_an_instant_in_utc_at_the_districts_local_time() -> None:
    upcoming = next_run(schedule(time_of_day="02:00", timezone="Europe/Paris"), utc(2026, 7, 1, 12, 0))
    assert upcoming == utc(2026, 7, 2, 0, 0) and upcoming.tzinfo is UTC
    assert upcoming.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") == "02:00"


def test_the_local_time_stays_the_same_across_daylight_saving_changes() -> None:
    nightly = schedule(time_of_day="02:00", timezone="America/New_York")
    # Before the spring change 02:00 EST is 07:00 UTC; after it 02:00 EDT is 06:00 UTC.
    assert next_run(nightly, utc(2026, 3, 7, 0, 0)) == utc(2026, 3, 7, 7, 0)
    assert next_run(nightly, utc(2026, 3, 9, 0, 0)) == utc(2026, 3, 9, 6, 0)
    # And back in November.
    assert next_run(nightly, utc(2026, 11, 2, 0, 0)) == utc(2026, 11, 2, 7, 0)


def test_a_start_time_the_spring_change_skips_runs_an_hour_later_on_the_clock() -> None:
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that night.
    upcoming = next_run(schedule(time_of_day="02:30", timezone="America/New_York"), utc(2026, 3, 8, 5, 0))
    assert upcoming == utc(2026, 3, 8, 7, 30)
    assert upcoming is not None and upcoming.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:30 EDT"


def test_a_start_time_the_autumn_change_repeats_runs_once() -> None:
    # 2026-11-01 in New York: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    nightly = schedule(time_of_day="01:30", timezone="America/New_York")
    assert next_run(nightly, utc(2026, 11, 1, 4, 0)) == utc(2026, 11, 1, 5, 30)
    # After the first 01:30 the next run is the next night, not the repeated hour.
    assert next_run(nightly, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 2, 6, 30)


def test_weekdays_skip_saturday_and_sunday() -> None:
    weekdays = schedule(time_of_day="02:00", timezone="UTC", frequency="weekdays")
    # 2026-11-27 is a Friday: after its run, the next is Monday 2026-11-30.
    assert next_run(weekdays, utc(2026, 11, 27, 3, 0)) == utc(2026, 11, 30, 2, 0)
    assert next_run(weekdays, utc(2026, 11, 26, 3, 0)) == utc(2026, 11, 27, 2, 0)


def test_weekly_runs_only_on_its_weekday() -> None:
    weekly = schedule(time_of_day="02:00", timezone="UTC", frequency="weekly", weekday="wednesday")
    # 2026-11-25 is a Wednesday.
    assert next_run(weekly, utc(2026, 11, 23, 0, 0)) == utc(2026, 11, 25, 2, 0)
    assert next_run(weekly, utc(2026, 11, 25, 2, 0)) == utc(2026, 12, 2, 2, 0)


def test_the_weekday_is_the_local_one() -> None:
    # Monday 01:00 in Auckland is still Sunday in UTC: a Monday sync there runs then.
    weekly = schedule(time_of_day="01:00", timezone="Pacific/Auckland", frequency="weekly", weekday="monday")
    upcoming = next_run(weekly, utc(2026, 11, 28, 0, 0))
    assert upcoming is not None and upcoming.astimezone(ZoneInfo("Pacific/Auckland")).strftime("%A %H:%M") == (
        "Monday 01:00"
    )
    assert upcoming.strftime("%A") == "Sunday"


def test_a_disabled_schedule_never_runs() -> None:
    assert next_run(schedule(enabled=False), utc(2026, 1, 1, 0, 0)) is None


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        next_run(schedule(), datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_the_pause_includes_both_ends() -> None:
    summer = schedule(pause=("06-20", "08-20"))
    assert not is_paused(summer, date(2026, 6, 19))
    assert is_paused(summer, date(2026, 6, 20))
    assert is_paused(summer, date(2026, 7, 14))
    assert is_paused(summer, date(2026, 8, 20))
    assert not is_paused(summer, date(2026, 8, 21))


def test_a_pause_may_wrap_the_new_year() -> None:
    winter = schedule(pause=("12-20", "01-05"))
    assert is_paused(winter, date(2026, 12, 20))
    assert is_paused(winter, date(2026, 12, 31))
    assert is_paused(winter, date(2027, 1, 1))
    assert is_paused(winter, date(2027, 1, 5))
    assert not is_paused(winter, date(2027, 1, 6))
    assert not is_paused(winter, date(2026, 12, 19))
    assert not is_paused(winter, date(2026, 7, 1))


def test_no_pause_pauses_nothing() -> None:
    assert not any(is_paused(schedule(), date(2026, 1, 1) + timedelta(days=n)) for n in range(366))


def test_the_next_run_skips_the_pause_and_resumes_the_day_after() -> None:
    summer = schedule(time_of_day="02:00", timezone="America/Chicago", pause=("06-20", "08-20"))
    # 2026-06-19 03:00 Chicago: the 19th's run is past; the 20th–20 Aug are paused; 21 Aug 02:00 CDT = 07:00 UTC.
    assert next_run(summer, utc(2026, 6, 19, 8, 0)) == utc(2026, 8, 21, 7, 0)


def test_the_next_run_skips_a_pause_across_the_new_year() -> None:
    winter = schedule(time_of_day="02:00", timezone="UTC", pause=("12-20", "01-05"))
    assert next_run(winter, utc(2026, 12, 19, 3, 0)) == utc(2027, 1, 6, 2, 0)


def test_a_pause_over_the_whole_year_means_no_next_run() -> None:
    always = schedule(pause=("01-01", "12-31"))
    assert next_run(always, utc(2026, 3, 1, 0, 0)) is None
    wrapped = schedule(pause=("06-21", "06-20"))
    assert next_run(wrapped, utc(2026, 3, 1, 0, 0)) is None


def test_a_pause_and_weekly_together_find_the_first_weekday_after_the_pause() -> None:
    weekly = schedule(
        time_of_day="02:00", timezone="UTC", frequency="weekly", weekday="monday", pause=("06-20", "08-20")
    )
    # 2026-08-21 is a Friday: the first Monday after the pause is 2026-08-24.
    assert next_run(weekly, utc(2026, 6, 16, 0, 0)) == utc(2026, 8, 24, 2, 0)


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(15 minutes)", 900), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("cron(0 7 * * ? *)", 86_400)],
)
def test_the_embedded_stack_reads_a_schedules_period(expression, seconds):
    from rostersync_tools.local.stack import rate_seconds

    assert rate_seconds(expression) == seconds
