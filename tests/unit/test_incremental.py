"""The reconcile decision, its bookkeeping, the report's words for each kind of run, and the planner's
touched-only archiving. Plain data, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_planner import (
    Roster,
    directory_index,
    enrolment,
    index_after,
    link,
    person,
    plan,
    product_school,
    small_roster,
)

from rostersync.contracts import FetchResult
from rostersync.domain.records import Kind
from rostersync.incremental import IncrementalState, describe_run, run_kind
from rostersync.settings import IncrementalSettings

TZ = "America/New_York"
SATURDAY_NIGHT = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)  # 02:00 Saturday in New York
TUESDAY_NIGHT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def state(days_since_full: float, now: datetime, **history: list[int]) -> IncrementalState:
    return IncrementalState((now - timedelta(days=days_since_full)).isoformat(), dict(history))


def test_settings_that_ask_for_full_runs_always_get_one() -> None:
    assert "incremental.mode = full" in run_kind(
        IncrementalSettings(mode="full"), state(0, TUESDAY_NIGHT), TUESDAY_NIGHT, TZ
    )


def test_the_weekly_reconcile_falls_on_saturday_until_runs_show_a_quieter_night() -> None:
    settings = IncrementalSettings()
    assert "weekly full reconcile (saturday" in run_kind(settings, state(3, SATURDAY_NIGHT), SATURDAY_NIGHT, TZ)
    assert run_kind(settings, state(3, TUESDAY_NIGHT), TUESDAY_NIGHT, TZ) == ""
    # Tuesday nights bring the fewest changes: the reconcile moves there
    quiet = state(3, TUESDAY_NIGHT, monday=[40, 50], tuesday=[2, 3], saturday=[30])
    assert quiet.quietest_day() == "tuesday"
    assert "tuesday, the quietest night" in run_kind(settings, quiet, TUESDAY_NIGHT, TZ)


def test_a_reconcile_day_that_was_missed_is_caught_up_when_the_last_full_read_is_a_week_old() -> None:
    reason = run_kind(IncrementalSettings(reconcile_day="sunday"), state(8, TUESDAY_NIGHT), TUESDAY_NIGHT, TZ)
    assert "8 days ago" in reason
    # but not twice on the same day
    assert run_kind(IncrementalSettings(), state(0.1, SATURDAY_NIGHT), SATURDAY_NIGHT, TZ) == ""


def test_the_state_after_a_run_moves_the_last_full_read_or_counts_the_nights_changes() -> None:
    before = IncrementalState("2026-11-01T07:00:00+00:00", {"tuesday": [1, 2, 3, 4]})
    after_delta = before.after_run(TUESDAY_NIGHT, TZ, full=False, changes=9)
    assert after_delta.last_full_at == before.last_full_at
    assert after_delta.changes_by_weekday["tuesday"] == [2, 3, 4, 9]  # four weeks remembered
    after_full = before.after_run(TUESDAY_NIGHT, TZ, full=True, changes=None)
    assert after_full.last_full_at == TUESDAY_NIGHT.isoformat(timespec="seconds")
    assert IncrementalState.from_item(after_delta.to_item()) == after_delta


def fetch(**values: object) -> FetchResult:
    return FetchResult(snapshot_manifest_key="k", complete=True, **values)  # type: ignore[arg-type]


def test_the_report_says_which_kind_of_run_it_was_and_what_a_reconcile_caught() -> None:
    section, notes = describe_run(fetch(sync_kind="events", changes=12), {"untouched_absent": {"students": 2}})
    assert section["kind"] == "events" and "12 changed objects" in notes[0] and "2 records absent" in notes[0]
    section, notes = describe_run(
        fetch(sync_kind="full", reconcile=True, full_reason="the weekly full reconcile (saturday)"),
        {"reconcile_caught": {"students": {"to_archive": 1, "created": 2}, "teachers": {}}},
    )
    assert section["kind"] == "reconcile" and section["caught"] == {"students": {"to_archive": 1, "created": 2}}
    assert "caught what the incremental runs missed: students: 2 created, 1 to archive" in notes[0]
    _, notes = describe_run(fetch(sync_kind="full", full_reason="no Clever events cursor yet"), {})
    assert notes == ["Full read: no Clever events cursor yet."]


# -- the planner: an event run archives only what the events touched ----------------------------------


def managed_directory(roster: Roster):
    """The directory after a full sync of ``roster``."""
    index = directory_index(product_school())
    return index_after(plan(roster, index).writes, index)


def test_an_event_run_archives_what_the_events_touched_and_leaves_the_rest_for_the_reconcile() -> None:
    before = small_roster()
    index = managed_directory(before)
    # Tonight stu-1 was deleted (an event named them); stu-2 is absent too, but no event named them
    tonight = Roster(
        schools=before.schools,
        classrooms=before.classrooms,
        people=[p for p in before.people if p.provider_id not in ("stu-1", "stu-2")],
        guardians=before.guardians,
        enrollments=[e for e in before.enrollments if e.person not in ("stu-1", "stu-2")],
        guardian_links=[],
    )
    result = plan(tonight, index, touched={"people": {"stu-1"}, "classrooms": set()}, touched_only=True)
    archived = {c.provider_id for c in result.candidates}
    # Then stu-1, their enrollment, their guardian link and the guardian reached only through them go
    assert archived == {"stu-1", "sec-1:stu-1", "gdn-1:stu-1", "gdn-1"}
    assert result.planner.summary.untouched_absent == {Kind.STUDENTS: 1, Kind.ENROLLMENTS: 1}


def test_a_reconcile_counts_what_tonights_changes_did_not_name() -> None:
    before = small_roster()
    index = managed_directory(before)
    tonight = Roster(
        schools=before.schools,
        classrooms=before.classrooms,
        people=[*before.people, person("stu-3", given_name="Mary")],
        guardians=before.guardians,
        enrollments=[*before.enrollments, enrolment("sec-1", "stu-3")],
        guardian_links=[link("gdn-1", "stu-1"), link("gdn-1", "stu-2")],
    )
    # Tonight's events named stu-3 only: the new link to stu-2 is what the reconcile caught
    result = plan(tonight, index, touched={"people": {"stu-3"}, "classrooms": set()}, tonight_known=True)
    caught = {k: dict(c) for k, c in (result.planner.summary.reconcile_caught or {}).items() if c}
    assert caught == {Kind.GUARDIAN_LINKS: {"created": 1}}
    assert result.planner.summary.counts[Kind.STUDENTS]["created"] == 1
