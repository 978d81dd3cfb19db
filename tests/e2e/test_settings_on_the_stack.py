"""`rostersync settings show|set|history` against the session's embedded stack, and runs recording the version."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.directory.schedules import ScheduleRepository
from rostersync_tools.cli.main import main
from rostersync_tools.local.stack import EmbeddedStack

pytestmark = pytest.mark.e2e

TEMPLATE = "{course} – P{period} ({teacher})"


@pytest.fixture
def rostersync(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> Any:
    """``rostersync("settings", "show", ...)`` → (exit code, stdout, stderr), reaching the stack by --endpoint
    (the CLI finds the stack's tables through its SSM resources parameter, as on AWS)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--endpoint", stack.endpoint])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def district_id() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


def squeezed(out: str) -> str:
    """The output with each run of spaces made one, so column widths do not matter."""
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


def state_of(district_id: str) -> SyncStateRepository:
    return SyncStateRepository(aws.client("dynamodb"), runtime_config().sync_state_table, district_id)


def test_set_then_show_then_history(rostersync: Any, district_id: str) -> None:
    code, out, err = rostersync(
        "settings",
        "set",
        "--district",
        district_id,
        f"classrooms.name_template={TEMPLATE}",
        "guardians.manage=off",
        "schools_in_scope=sch-1,sch-2",
        "schedule.summer_pause.start=06-20",
        "schedule.summer_pause.end=08-20",
        "--by",
        "alice",
    )
    assert (code, err) == (0, "")
    lines = squeezed(out).splitlines()
    assert lines[:5] == [
        f"classrooms.name_template {{name}} → {TEMPLATE}",
        "guardians.manage on → off",
        "schools_in_scope (empty) → sch-1,sch-2",
        'schedule.summer_pause none → {"start": "06-20", "end": "08-20"}',
        f"Saved settings version 1 of district {district_id} (was 0).",
    ]
    assert f"Saved settings version 1 of district {district_id} (was 0)." in out

    code, out, err = rostersync("settings", "show", "--district", district_id)
    assert (code, err) == (0, "")
    assert out.startswith(f"District {district_id}: settings version 1, saved ")
    assert "by alice" in out.splitlines()[0]
    for title in ("General", "Classrooms", "Guardians", "Phones", "Schedule"):
        assert f"\n{title}\n" in out
    lines = squeezed(out).splitlines()
    assert f"classrooms.name_template {TEMPLATE} *" in lines
    assert "schedule.summer_pause.start 06-20 *" in lines
    assert "guardians.contact_types (empty)" in lines
    assert "schedule.timezone America/New_York" in lines
    next_run = next(line for line in lines if line.startswith("next scheduled run "))
    assert "02:00 EST" in next_run or "02:00 EDT" in next_run

    code, out, _ = rostersync("settings", "show", "--district", district_id, "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["updated_by"]) == (1, "alice")
    assert shown["settings"]["guardians"]["manage"] is False
    assert shown["next_run"] is not None

    rostersync("settings", "set", "--district", district_id, "schedule.summer_pause=none", "--by", "bob")
    code, out, _ = rostersync("settings", "history", "--district", district_id)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["version", "saved", "by", "changed"]
    assert lines[1].startswith("1 ") and " alice " in lines[1]
    assert "classrooms.name_template, guardians.manage, schools_in_scope, schedule.summer_pause" in lines[1]
    assert lines[2].startswith("2 ") and " bob " in lines[2] and lines[2].endswith("schedule.summer_pause")
    assert state_of(district_id).current_settings()[1] == 2


def test_show_for_a_district_that_never_saved_shows_the_defaults(rostersync: Any, district_id: str) -> None:
    code, out, _ = rostersync("settings", "show", "--district", district_id)
    assert code == 0
    assert out.startswith(f"District {district_id}: default settings (never saved; runs use version 0)")
    assert "  *" not in out
    code, out, _ = rostersync("settings", "history", "--district", district_id)
    assert "never saved settings" in out


def test_a_schedule_that_is_off_has_no_next_run(rostersync: Any, district_id: str) -> None:
    rostersync("settings", "set", "--district", district_id, "schedule.enabled=false")
    code, out, _ = rostersync("settings", "show", "--district", district_id)
    assert "next scheduled run none (the schedule is off)" in squeezed(out)


@pytest.mark.parametrize(
    ("assignment", "error"),
    [
        ("guardian.manage=off", "rostersync: guardian.manage: not a setting (did you mean guardians.manage?)"),
        (
            "classrooms.name_template={course} {room}",
            "rostersync: settings not saved: classrooms.name_template: classroom name template uses {room}; ",
        ),
        ("schedule.timezone=Eastern", "rostersync: settings not saved: schedule.timezone: 'Eastern' is not an IANA"),
        ("schedule.summer_pause.start=06-31", "schedule.summer_pause.start: '06-31' is not a day of the year"),
        ("guardians.manage=maybe", "rostersync: guardians.manage: 'maybe' is not on/off"),
        ("deletion_threshold_percent=150", "deletion_threshold_percent: Input should be less than or equal to 100"),
        ("guardians.manage", "rostersync: settings set: 'guardians.manage' is not KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_naming_the_key_and_nothing_is_saved(
    rostersync: Any, district_id: str, assignment: str, error: str
) -> None:
    code, out, err = rostersync("settings", "set", "--district", district_id, assignment)
    assert code == 2
    assert err.count("\n") == 1 and error in err
    assert "Traceback" not in err and out == ""
    assert state_of(district_id).settings_record().version == 0


def test_a_dry_run_shows_the_change_and_saves_nothing(rostersync: Any, district_id: str) -> None:
    code, out, _ = rostersync("settings", "set", "--district", district_id, "guardians.manage=off", "--dry-run")
    assert code == 0
    assert "guardians.manage on → off" in squeezed(out)
    assert "Dry run: not saved (would be settings version 1)." in out
    assert state_of(district_id).settings_record().version == 0


def test_setting_what_is_already_set_saves_no_new_version(rostersync: Any, district_id: str) -> None:
    rostersync("settings", "set", "--district", district_id, "guardians.manage=off")
    code, out, _ = rostersync("settings", "set", "--district", district_id, "guardians.manage=false")
    assert code == 0 and out.startswith(f"No change: district {district_id} stays at settings version 1.")
    assert len(state_of(district_id).settings_history()) == 1


def test_a_file_from_show_json_replaces_the_settings_unless_someone_saved_since(
    rostersync: Any, district_id: str, tmp_path: Path
) -> None:
    rostersync("settings", "set", "--district", district_id, "guardians.manage=off", "--by", "alice")
    _, out, _ = rostersync("settings", "show", "--district", district_id, "--json")
    edited = json.loads(out)
    edited["settings"]["schedule"]["time_of_day"] = "04:30"
    edited["settings"]["guardians"]["manage"] = True
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(edited), encoding="utf-8")

    code, out, err = rostersync("settings", "set", "--district", district_id, "--file", str(path))
    assert (code, err) == (0, "")
    assert "schedule.time_of_day 02:00 → 04:30" in squeezed(out)
    settings, version = state_of(district_id).current_settings()
    assert (version, settings.schedule.time_of_day, settings.guardians.manage) == (2, "04:30", True)

    # The same file again: it was read at version 1, the district is at 2 now.
    code, _, err = rostersync("settings", "set", "--district", district_id, "--file", str(path))
    assert code == 2 and "holds settings version 1, but district" in err and "at version 2" in err
    assert state_of(district_id).settings_record().version == 2


def test_a_bare_settings_file_is_validated_like_keys(rostersync: Any, district_id: str, tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"guardians": {"manage": False, "relationship": ["Parent"]}}), encoding="utf-8")
    code, _, err = rostersync("settings", "set", "--district", district_id, "--file", str(path))
    assert code == 2
    assert "guardians.relationship: not a setting (did you mean guardians.relationships?)" in err
    path.write_text("{not json", encoding="utf-8")
    code, _, err = rostersync("settings", "set", "--district", district_id, "--file", str(path))
    assert code == 2 and f"{path}: not valid JSON (line 1" in err


def test_stored_settings_that_no_longer_validate_are_shown_with_the_problem(rostersync: Any, district_id: str) -> None:
    state_of(district_id).put_item("SETTINGS", {"version": 2, "settings": {"guardians": {"emergency": True}}})
    code, out, err = rostersync("settings", "show", "--district", district_id)
    assert code == 2
    assert "guardians.emergency" in out
    assert "guardians.emergency: not a setting" in err and "rostersync settings set --file" in err
    assert "Traceback" not in err


# -- runs ------------------------------------------------------------------------------------------------


def test_a_run_records_the_settings_version_it_started_with(
    rostersync: Any, district: Callable[..., Any], synthetic: Any
) -> None:
    d = district(synthetic)
    rostersync("settings", "set", "--district", d.id, "deletion_threshold_percent=12.5", "--by", "alice")
    rostersync("settings", "set", "--district", d.id, "deletion_threshold_percent=20", "--by", "alice")

    outcome = d.sync(export=False)

    # Match and Report read that version back (Match's role must grant the sync-state table's GetItem)
    assert outcome.status == "succeeded", outcome.report and outcome.report["failure_reason"]
    assert outcome.run is not None and outcome.run["settings_version"] == 2
    assert outcome.report is not None and outcome.report["settings_version"] == 2
    assert outcome.report["settings"]["deletion_threshold_percent"] == 20
    assert state_of(d.id).settings_at(outcome.run["settings_version"]).deletion_threshold_percent == 20


def test_a_run_with_stored_settings_that_no_longer_validate_fails_and_writes_nothing(
    district: Callable[..., Any], synthetic: Any
) -> None:
    d = district(synthetic)
    d.state.put_item("SETTINGS", {"version": 1, "settings": {"schedule": {"timezone": "Mars/Olympus"}}})

    outcome = d.sync(export=False)

    assert outcome.status == "failed"
    assert outcome.run is not None and outcome.run["settings_version"] == 1
    assert outcome.directory_writes == 0
    assert d.state.lock_holder() is None


def test_the_failed_runs_report_names_the_setting_to_fix(district: Callable[..., Any], synthetic: Any) -> None:
    d = district(synthetic)
    d.state.put_item("SETTINGS", {"version": 1, "settings": {"schedule": {"timezone": "Mars/Olympus"}}})

    outcome = d.sync(export=False)

    assert outcome.report is not None
    assert "schedule.timezone: 'Mars/Olympus' is not an IANA time zone" in outcome.report["failure_reason"]


def test_an_enabled_run_puts_the_district_on_its_schedule_and_settings_move_it(
    rostersync: Any, district: Callable[..., Any], synthetic: Any
) -> None:
    d = district(synthetic)
    schedules = ScheduleRepository(aws.client("dynamodb"), runtime_config().sync_state_table)
    d.sync(trigger="manual", export=False)
    assert schedules.get(d.id) is None  # a manual run does not enable the schedule

    d.sync(trigger="enabled", export=False)

    scheduled = schedules.get(d.id)
    assert scheduled is not None and scheduled.next_run_at is not None
    assert scheduled.next_run_at.endswith(("T07:00:00Z", "T06:00:00Z"))  # 02:00 New York, EST or EDT
    code, out, _ = rostersync("settings", "set", "--district", d.id, "schedule.time_of_day=05:30")
    assert code == 0 and "Next scheduled run: " in out and "05:30" in out
    assert schedules.get(d.id).next_run_at.endswith(("T10:30:00Z", "T09:30:00Z"))
    code, out, _ = rostersync("settings", "set", "--district", d.id, "schedule.enabled=off")
    assert schedules.get(d.id).next_run_at is None
    _, out, _ = rostersync("settings", "show", "--district", d.id, "--json")
    assert json.loads(out)["on_schedule"] is True


def test_show_says_a_district_not_enabled_is_not_on_the_schedule_yet(rostersync: Any, district_id: str) -> None:
    _, out, _ = rostersync("settings", "show", "--district", district_id)
    line = next(line for line in squeezed(out).splitlines() if line.startswith("next scheduled run"))
    assert line.endswith("once sync is enabled for the district")


def test_the_local_timer_plays_the_templates_schedule_and_a_due_district_syncs(
    stack: EmbeddedStack, district: Callable[..., Any], synthetic: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    d = district(synthetic)
    d.sync(trigger="enabled", export=False)
    schedules = ScheduleRepository(aws.client("dynamodb"), runtime_config().sync_state_table)
    now = datetime.now(UTC)
    schedules.put(d.id, now - timedelta(minutes=1), now)  # its nightly time has just come
    assert [s["expression"] for s in stack.schedules] == ["rate(15 minutes)"]

    (answer,) = stack.play_schedules()

    assert answer["error"] is None
    assert d.id in json.loads(answer["body"])["started"]
    sfn = stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=stack.outputs["SyncStateMachineArn"])["executions"]
    mine = [
        e["executionArn"]
        for e in executions
        if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]).get("district_id") == d.id
        and json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]).get("trigger") == "schedule"
    ]
    assert len(mine) == 1
    assert stack.wait(mine[0])["status"] == "SUCCEEDED"
    run = d.state.get_run(mine[0].rsplit(":", 1)[1])
    assert run is not None and (run["trigger"], run["status"]) == ("schedule", "succeeded")
    # and it moved on: the district's next run is in the future again
    assert schedules.get(d.id).next_run_at > now.strftime("%Y-%m-%dT%H:%M:%SZ")
