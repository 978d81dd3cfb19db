"""Versioned settings in the sync-state table (moto): current item, immutable history, optimistic saves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rostersync.directory.repository import SyncStateRepository
from rostersync.settings import (
    InvalidSettingsError,
    SettingsConflictError,
    SettingsVersionNotFoundError,
    SyncSettings,
    parse_settings,
)

SAVED_AT = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


@pytest.fixture
def state(dynamodb: Any, sync_state_table: str) -> SyncStateRepository:
    return SyncStateRepository(dynamodb, sync_state_table, "d-1")


def item(dynamodb: Any, table: str, district: str, sk: str) -> dict[str, Any] | None:
    return dynamodb.get_item(TableName=table, Key={"pk": {"S": district}, "sk": {"S": sk}}).get("Item")


def test_a_district_that_never_saved_has_the_defaults_at_version_0(state: SyncStateRepository) -> None:
    assert state.current_settings() == (SyncSettings(), 0)
    assert state.settings_at(0) == SyncSettings()
    assert state.settings_history() == []
    assert state.settings_record().version == 0


def test_saving_writes_the_next_version_and_its_history_item(
    state: SyncStateRepository, dynamodb: Any, sync_state_table: str
) -> None:
    settings = parse_settings({"guardians": {"manage": False}, "deletion_threshold_percent": 12.5})

    saved = state.put_settings(settings, expected_version=0, updated_by="alice", now=SAVED_AT)

    assert saved.version == 1
    assert state.current_settings() == (settings, 1)
    record = state.settings_record()
    assert (record.updated_at, record.updated_by) == ("2026-11-28T21:00:00+00:00", "alice")
    current = item(dynamodb, sync_state_table, "d-1", "SETTINGS")
    history = item(dynamodb, sync_state_table, "d-1", "SETTINGS#v000001")
    assert current is not None and history is not None
    assert current["version"] == {"N": "1"} and "M" in current["settings"]
    assert history["settings"] == current["settings"]


def test_a_fractional_threshold_comes_back_exactly(state: SyncStateRepository) -> None:
    state.put_settings(parse_settings({"deletion_threshold_percent": 12.5}), 0, "alice")
    assert state.current_settings()[0].deletion_threshold_percent == 12.5
    assert state.settings_at(1).deletion_threshold_percent == 12.5


def test_each_version_stays_readable_after_later_saves(state: SyncStateRepository) -> None:
    first = parse_settings({"schedule": {"time_of_day": "03:00"}})
    second = parse_settings({"schedule": {"time_of_day": "04:00", "summer_pause": {"start": "06-20", "end": "08-20"}}})
    state.put_settings(first, 0, "alice")
    state.put_settings(second, 1, "bob")

    assert state.settings_at(1) == first
    assert state.settings_at(2) == second
    assert state.current_settings() == (second, 2)
    assert [(v.version, v.updated_by) for v in state.settings_history()] == [(1, "alice"), (2, "bob")]


def test_a_save_based_on_an_old_version_is_refused_and_writes_nothing(
    state: SyncStateRepository, dynamodb: Any, sync_state_table: str
) -> None:
    state.put_settings(parse_settings({"guardians": {"manage": False}}), 0, "alice", now=SAVED_AT)
    # Bob read version 0 before Alice saved, and saves his change on top of it.
    with pytest.raises(SettingsConflictError) as caught:
        state.put_settings(parse_settings({"home_language_from_roster": False}), 0, "bob")

    message = str(caught.value)
    assert "since version 0 was read" in message and "version 1 was saved" in message and "by alice" in message
    assert "nothing was saved" in message
    assert state.current_settings()[0].guardians.manage is False
    assert state.current_settings()[0].home_language_from_roster is True
    assert item(dynamodb, sync_state_table, "d-1", "SETTINGS#v000002") is None
    assert [v.version for v in state.settings_history()] == [1]


def test_a_save_expecting_a_version_ahead_of_the_current_one_is_refused(state: SyncStateRepository) -> None:
    with pytest.raises(SettingsConflictError):
        state.put_settings(SyncSettings(), expected_version=3, updated_by="bob")
    assert state.settings_history() == []


def test_a_history_item_is_never_overwritten(state: SyncStateRepository, dynamodb: Any, sync_state_table: str) -> None:
    # A history item for version 1 exists (a half-restored table, say) while SETTINGS does not.
    state.put_item("SETTINGS#v000001", {"version": 1, "settings": {}, "updated_by": "restore"})
    with pytest.raises(SettingsConflictError):
        state.put_settings(parse_settings({"guardians": {"manage": False}}), 0, "alice")
    assert item(dynamodb, sync_state_table, "d-1", "SETTINGS") is None
    assert state.settings_at(1) == SyncSettings()


def test_a_version_never_saved_is_a_clear_error(state: SyncStateRepository) -> None:
    state.put_settings(SyncSettings(), 0, "alice")
    with pytest.raises(SettingsVersionNotFoundError, match=r"district d-1 has no settings version 7 \(its current "):
        state.settings_at(7)


def test_stored_settings_that_no_longer_validate_name_the_field(state: SyncStateRepository) -> None:
    # Written by an older rostersync, with a field since removed.
    state.put_item("SETTINGS", {"version": 3, "settings": {"guardians": {"emergency_contacts": True}}})
    state.put_item("SETTINGS#v000003", {"version": 3, "settings": {"schedule": {"timezone": "Mars/Olympus"}}})

    with pytest.raises(InvalidSettingsError, match=r"guardians\.emergency_contacts: not a setting"):
        state.current_settings()
    with pytest.raises(InvalidSettingsError, match=r"schedule\.timezone: 'Mars/Olympus' is not an IANA time zone"):
        state.settings_at(3)


def test_settings_are_per_district(dynamodb: Any, sync_state_table: str) -> None:
    one = SyncStateRepository(dynamodb, sync_state_table, "d-1")
    two = SyncStateRepository(dynamodb, sync_state_table, "d-2")
    one.put_settings(parse_settings({"guardians": {"manage": False}}), 0, "alice")

    assert two.current_settings() == (SyncSettings(), 0)
    assert two.settings_history() == []
    with pytest.raises(SettingsVersionNotFoundError):
        two.settings_at(1)
