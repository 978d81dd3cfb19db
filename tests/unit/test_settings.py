"""The settings model: what it refuses (each with the key and the problem), dotted-key editing, the schema file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rostersync.settings import (
    SCHEMA_PATH,
    SETTING_KEYS,
    InvalidSettingsError,
    SyncSettings,
    apply_assignments,
    parse_settings,
    parse_value,
    setting_changes,
    settings_from_item,
    settings_json_schema,
    settings_json_schema_text,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def refused(data: dict) -> str:
    with pytest.raises(InvalidSettingsError) as caught:
        parse_settings(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- validation ---------------------------------------------------------------------------------------


def test_the_defaults_are_valid_and_name_every_issue_4_setting() -> None:
    settings = SyncSettings()
    assert settings.student_match_id == "provider_id"
    assert settings.deletion_threshold_percent == 10.0
    assert settings.schedule.summer_pause is None
    for key in (
        "classrooms.name_template",
        "guardians.contact_types",
        "phones.sms_phone_types",
        "update_edited_contact_details",
        "home_language_from_roster",
        "schools_in_scope",
        "schedule.summer_pause.end",
    ):
        assert key in SETTING_KEYS


def test_a_template_placeholder_that_does_not_exist_is_refused_naming_the_key() -> None:
    message = refused({"classrooms": {"name_template": "{course} ({teacher_name})"}})
    assert message.startswith("settings: classrooms.name_template: ")
    assert "{teacher_name}" in message and "{teacher}" in message


def test_a_malformed_template_and_one_without_placeholders_are_refused() -> None:
    assert "malformed" in refused({"classrooms": {"name_template": "{course"}})
    assert "at least one placeholder" in refused({"classrooms": {"name_template": "Homeroom"}})


def test_the_documented_example_template_is_accepted() -> None:
    template = "{course} – P{period} ({teacher})"
    assert parse_settings({"classrooms": {"name_template": template}}).classrooms.name_template == template


def test_a_time_zone_that_does_not_exist_is_refused() -> None:
    message = refused({"schedule": {"timezone": "America/Springfield"}})
    assert "schedule.timezone: 'America/Springfield' is not an IANA time zone" in message


@pytest.mark.parametrize("day", ["6-20", "13-01", "06-32", "02-30", "04-31", "june"])
def test_a_pause_day_that_is_not_a_day_of_the_year_is_refused(day: str) -> None:
    message = refused({"schedule": {"summer_pause": {"start": day, "end": "08-20"}}})
    assert f"schedule.summer_pause.start: {day!r} is not" in message


def test_february_29_is_a_pause_day() -> None:
    pause = parse_settings({"schedule": {"summer_pause": {"start": "02-29", "end": "03-01"}}}).schedule.summer_pause
    assert pause is not None and pause.start == "02-29"


@pytest.mark.parametrize("time_of_day", ["2:00", "24:00", "02:60", "0200"])
def test_a_time_of_day_that_is_not_hh_mm_is_refused(time_of_day: str) -> None:
    assert "schedule.time_of_day" in refused({"schedule": {"time_of_day": time_of_day}})


def test_an_unknown_key_is_refused_with_the_closest_key() -> None:
    message = refused({"guardians": {"managed": False}})
    assert message == "settings: guardians.managed: not a setting (did you mean guardians.manage?)"


def test_a_threshold_outside_0_to_100_and_an_unknown_student_id_are_refused() -> None:
    assert "deletion_threshold_percent" in refused({"deletion_threshold_percent": 101})
    assert "student_match_id" in refused({"student_match_id": "email"})


def test_a_half_given_summer_pause_names_the_missing_end() -> None:
    assert refused({"schedule": {"summer_pause": {"start": "06-20"}}}) == (
        "settings: schedule.summer_pause.end: missing"
    )


def test_stored_settings_that_no_longer_validate_name_the_field_and_the_version() -> None:
    item = {"settings": {"guardians": {"manage": True, "include_emergency": True}}, "version": 4}
    with pytest.raises(InvalidSettingsError) as caught:
        settings_from_item(item, "d-1")
    message = str(caught.value)
    assert "district d-1 (version 4)" in message
    assert "guardians.include_emergency: not a setting" in message
    assert "rostersync settings set --file" in message


def test_no_stored_settings_are_the_defaults_at_version_0() -> None:
    assert settings_from_item(None) == (SyncSettings(), 0)


# -- dotted keys --------------------------------------------------------------------------------------


def defaults() -> dict:
    return SyncSettings().model_dump(mode="json")


def test_values_are_read_by_the_type_of_their_key() -> None:
    assert parse_value("guardians.manage", "off") is False
    assert parse_value("guardians.manage", "TRUE") is True
    assert parse_value("schools_in_scope", "sch-1, sch-2") == ["sch-1", "sch-2"]
    assert parse_value("schools_in_scope", '["a,b"]') == ["a,b"]
    assert parse_value("schools_in_scope", "") == []
    assert parse_value("deletion_threshold_percent", "12.5") == 12.5
    assert parse_value("schedule.summer_pause", "none") is None
    assert parse_value("schedule.summer_pause", '{"start": "06-20", "end": "08-20"}') == {
        "start": "06-20",
        "end": "08-20",
    }
    # Text stays text even when it reads as JSON of another type; a JSON string is unquoted.
    assert parse_value("schedule.time_of_day", "0200") == "0200"
    assert parse_value("classrooms.name_template", '"{name}, P{period}"') == "{name}, P{period}"
    assert parse_value("classrooms.name_template", "{course}, P{period}") == "{course}, P{period}"


def test_a_switch_given_something_else_is_refused() -> None:
    with pytest.raises(InvalidSettingsError, match=r"guardians.manage: 'maybe' is not on/off"):
        parse_value("guardians.manage", "maybe")


def test_a_group_needs_a_json_object_or_none() -> None:
    with pytest.raises(InvalidSettingsError, match=r"^schedule.summer_pause: give its fields one by one"):
        parse_value("schedule.summer_pause", "06-20")


def test_assignments_change_only_their_keys() -> None:
    changed = apply_assignments(
        defaults(),
        [
            ("classrooms.name_template", "{course} – P{period} ({teacher})"),
            ("schedule.summer_pause.start", "06-20"),
            ("schedule.summer_pause.end", "08-20"),
        ],
    )
    settings = parse_settings(changed)
    assert settings.classrooms.name_template == "{course} – P{period} ({teacher})"
    assert settings.schedule.summer_pause is not None and settings.schedule.summer_pause.end == "08-20"
    assert [key for key, _, _ in setting_changes(defaults(), settings.model_dump(mode="json"))] == [
        "classrooms.name_template",
        "schedule.summer_pause",
    ]


def test_assignments_do_not_touch_the_settings_they_were_given() -> None:
    given = defaults()
    apply_assignments(given, [("guardians.manage", "off")])
    assert given == defaults()


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("guardian.manage", "guardians.manage"),
        ("schedule.timezon", "schedule.timezone"),
        ("deletion_threshold", "deletion_threshold_percent"),
    ],
)
def test_an_unknown_key_suggests_the_closest(key: str, suggestion: str) -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        apply_assignments(defaults(), [(key, "x")])
    assert str(caught.value) == f"{key}: not a setting (did you mean {suggestion}?)"


def test_a_key_below_a_plain_setting_is_unknown() -> None:
    with pytest.raises(InvalidSettingsError, match=r"^guardians.manage.always: not a setting"):
        apply_assignments(defaults(), [("guardians.manage.always", "on")])


def test_a_key_nothing_resembles_gets_no_suggestion() -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        apply_assignments(defaults(), [("zzz", "1")])
    assert str(caught.value) == "zzz: not a setting"


def test_clearing_the_pause_is_one_change() -> None:
    paused = parse_settings({"schedule": {"summer_pause": {"start": "06-20", "end": "08-20"}}})
    cleared = apply_assignments(paused.model_dump(mode="json"), [("schedule.summer_pause", "none")])
    assert parse_settings(cleared).schedule.summer_pause is None
    assert setting_changes(paused.model_dump(mode="json"), cleared) == [
        ("schedule.summer_pause", {"start": "06-20", "end": "08-20"}, None)
    ]


# -- the published schema -----------------------------------------------------------------------------


def test_the_published_schema_file_is_the_models_schema() -> None:
    published = (REPO_ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert published == settings_json_schema_text(), (
        f"{SCHEMA_PATH} is out of date with SyncSettings: regenerate it with "
        f"`rostersync settings schema > {SCHEMA_PATH}`"
    )


def test_the_schema_names_itself_and_refuses_unknown_keys() -> None:
    schema = settings_json_schema()
    assert schema["$id"] == "urn:rostersync:schema:sync-settings"
    assert schema["title"] == "rostersync sync settings"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(SyncSettings.model_fields)
    assert json.loads(settings_json_schema_text()) == schema
