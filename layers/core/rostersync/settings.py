"""A district's sync settings, stored versioned in the sync-state table.

``SyncSettings`` is the one definition: the CLI validates against it, Start records the version a run
uses, Match plans by it, and ``schemas/sync-settings.schema.json`` is generated from it.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StudentMatchId(StrEnum):
    """Which roster id links a student to a product student who has no provider link yet."""

    PROVIDER_ID = "provider_id"
    SIS_ID = "sis_id"
    STUDENT_NUMBER = "student_number"
    STATE_ID = "state_id"


# The placeholders a classroom name template may use, filled from the section and its first teacher.
CLASSROOM_NAME_FIELDS = ("name", "course", "period", "teacher", "subject", "grade", "term", "section_number")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassroomSettings(_Settings):
    create_for_unlinked_sections: bool = Field(
        default=True,
        description="Create a classroom for each section no product classroom is linked to. Off: such sections "
        "are skipped and listed; only linked classrooms are synced.",
    )
    name_template: str = Field(
        default="{name}",
        description="The name of a synced classroom. Placeholders: "
        + ", ".join(f"{{{f}}}" for f in CLASSROOM_NAME_FIELDS)
        + ". Example: '{course} – P{period} ({teacher})'.",
    )
    unarchive_reappearing: bool = Field(
        default=True,
        description="A classroom archived by sync that reappears in the roster is unarchived. Off: it stays "
        "archived and the section is skipped.",
    )

    @field_validator("name_template")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        except ValueError as exc:
            raise ValueError(f"classroom name template {template!r} is malformed: {exc}") from exc
        unknown = [n for n in names if n not in CLASSROOM_NAME_FIELDS]
        if unknown:
            raise ValueError(
                f"classroom name template uses {{{unknown[0]}}}; the placeholders are "
                + ", ".join(f"{{{f}}}" for f in CLASSROOM_NAME_FIELDS)
            )
        if not names:
            raise ValueError("classroom name template needs at least one placeholder, e.g. {name}")
        return template


class GuardianSettings(_Settings):
    manage: bool = Field(
        default=True, description="Sync guardians (contacts) and their links to students. Off: none are synced."
    )
    contact_types: list[str] = Field(
        default_factory=list,
        description="Only links of these contact types (e.g. 'Parent/Guardian', 'Family'; case ignored). Empty: all.",
    )
    relationships: list[str] = Field(
        default_factory=list,
        description="Only links with these relationships (e.g. 'Parent', 'Grandparent'; case ignored). Empty: all.",
    )


class PhoneSettings(_Settings):
    sms_phone_types: list[str] = Field(
        default_factory=lambda: ["cell", "mobile"],
        description="Phone types that take texts: such a number becomes the SMS/login phone. 'any' takes every "
        "number, whatever its type.",
    )
    home_phone_types: list[str] = Field(
        default_factory=lambda: ["home"], description="Phone types that become the home phone."
    )


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


class SummerPause(_Settings):
    start: str = Field(description="First paused day, MM-DD (e.g. '06-20').")
    end: str = Field(description="Last paused day, MM-DD (e.g. '08-20'); may be earlier than start (wraps the year).")

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        if not _MONTH_DAY.match(value):
            raise ValueError(f"{value!r} is not a month and day as MM-DD")
        return value


class Schedule(_Settings):
    enabled: bool = Field(default=True, description="Run on the schedule once sync is enabled.")
    time_of_day: str = Field(default="02:00", description="Local time the nightly sync starts, HH:MM (24 h).")
    timezone: str = Field(default="America/New_York", description="IANA time zone of time_of_day.")
    frequency: Literal["daily", "weekdays", "weekly"] = Field(default="daily", description="How often it runs.")
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = Field(
        default="sunday", description="The day of a weekly sync."
    )
    summer_pause: SummerPause | None = Field(
        default=None, description="No scheduled syncs between these days (inclusive); None: never paused."
    )

    @field_validator("time_of_day")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM (24 h)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Chicago)") from exc
        return value


class SyncSettings(_Settings):
    """What a district admin chooses about their sync. Each run records the version it used."""

    student_match_id: StudentMatchId = Field(
        default=StudentMatchId.PROVIDER_ID,
        description="Which roster id links a student to an existing product student without a provider link "
        "(provider_id: none, only a stored provider link matches).",
    )
    classrooms: ClassroomSettings = Field(default_factory=ClassroomSettings)
    guardians: GuardianSettings = Field(default_factory=GuardianSettings)
    phones: PhoneSettings = Field(default_factory=PhoneSettings)
    update_edited_contact_details: Literal["never", "always"] = Field(
        default="never",
        description="Contact details (email, phones) a person edited in the product: never overwritten by the "
        "roster, or always. Other edited fields are never overwritten.",
    )
    home_language_from_roster: bool = Field(
        default=True, description="Take each person's home language from the roster."
    )
    schools_in_scope: list[str] = Field(
        default_factory=list,
        description="Only these schools (product school ids or provider school ids) are synced. Empty: every "
        "matched school.",
    )
    deletion_threshold_percent: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description="A run that would archive more than this share of a kind's sync-managed records archives "
        "nothing of that kind and ends threshold_exceeded.",
    )
    schedule: Schedule = Field(default_factory=Schedule)

    @model_validator(mode="after")
    def _distinct_scope(self) -> SyncSettings:
        self.schools_in_scope = list(dict.fromkeys(s.strip() for s in self.schools_in_scope if s.strip()))
        return self


def settings_from_item(item: dict[str, Any] | None) -> tuple[SyncSettings, int]:
    """Parse the stored settings item; a district that never saved settings gets the defaults (version 0)."""
    if not item:
        return SyncSettings(), 0
    return SyncSettings.model_validate(item.get("settings") or {}), int(item.get("version", 0))
