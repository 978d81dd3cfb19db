"""A district's sync settings, stored versioned in the sync-state table.

``SyncSettings`` is the one definition: the CLI validates against it, Start records the version a run
uses, Match plans by it, and ``schemas/sync-settings.schema.json`` is generated from it.
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rostersync.errors import RostersyncError


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
    start: str = Field(
        description="First paused day, MM-DD (e.g. '06-20').", json_schema_extra={"pattern": _MONTH_DAY.pattern}
    )
    end: str = Field(
        description="Last paused day, MM-DD (e.g. '08-20'); may be earlier than start (wraps the year).",
        json_schema_extra={"pattern": _MONTH_DAY.pattern},
    )

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        if not _MONTH_DAY.match(value):
            raise ValueError(f"{value!r} is not a month and day as MM-DD")
        try:
            date(2000, int(value[:2]), int(value[3:]))  # a leap year: 02-29 is a day, 02-30 is not
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a day of the year (MM-DD)") from exc
        return value


class Schedule(_Settings):
    enabled: bool = Field(default=True, description="Run on the schedule once sync is enabled.")
    time_of_day: str = Field(
        default="02:00",
        description="Local time the sync starts, HH:MM (24 h).",
        json_schema_extra={"pattern": _TIME.pattern},
    )
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


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class IncrementalSettings(_Settings):
    """How a provider that can send only what changed (Clever events, OneRoster ``dateLastModified``,
    OneRoster CSV delta bundles) is read, and when a full read reconciles what the deltas missed."""

    mode: Literal["auto", "full"] = Field(
        default="auto",
        description="auto: read only the changes when the provider can send them (Clever events, OneRoster "
        "dateLastModified); full: read the whole roster every run.",
    )
    reconcile_every_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="A full read (a reconcile) at least this often, which archives what the deltas missed.",
    )
    reconcile_day: Literal["auto"] | Weekday = Field(
        default="auto",
        description="The weekday of the weekly reconcile; auto: the quietest night (the weekday whose runs "
        "brought the fewest changes), Saturday until a week of runs is known.",
    )


class LimitSettings(_Settings):
    """How large a roster's parts may be. A hostile or broken export stops early with a clear error;
    the defaults leave room for the largest districts (NYC: about 1M students, 2M contacts) and keep
    under AWS's limits with margin (DynamoDB: key 1,024/2,048 bytes, item 400 KB)."""

    max_bundle_bytes: int = Field(
        default=8 << 30,
        ge=1 << 20,
        le=32 << 30,
        description="A OneRoster bundle's uncompressed size, all files together, in bytes (default 8 GiB). A "
        "larger bundle is refused before it is read (a zip bomb stops here).",
    )
    max_compression_ratio: int = Field(
        default=200,
        ge=10,
        le=10_000,
        description="How many times a zip member may be larger than its compressed bytes (CSV compresses "
        "about 10 times; a zip bomb thousands of times). Refused before it is read.",
    )
    max_rows_per_file: int = Field(
        default=10_000_000,
        ge=1_000,
        le=100_000_000,
        description="Rows of one OneRoster CSV file; past it the file is not read further and nothing is archived.",
    )
    max_field_chars: int = Field(
        default=8_192,
        ge=256,
        le=100_000,
        description="Characters of one CSV value; a longer one is an unclosed quote or a broken row: an error "
        "line, the row not synced, nothing of its file archived.",
    )
    max_record_bytes: int = Field(
        default=100_000,
        ge=4_096,
        le=350_000,
        description="Bytes of one roster record (all its fields, as JSON); a larger one is an error line, not "
        "synced (DynamoDB refuses items over 400 KB).",
    )
    max_id_bytes: int = Field(
        default=255,
        ge=32,
        le=480,
        description="Bytes of one record id (UTF-8); a longer one is an error line, not synced (DynamoDB keys "
        "are at most 1,024/2,048 bytes, and an enrollment id holds two ids).",
    )
    max_error_lines: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="Error lines kept in errors.csv; the report still counts every error.",
    )


class NotificationSettings(_Settings):
    """Who is told when a run ends, and about what (``rostersync.lifecycle.announce``). Addresses are
    personal data: never logged, never in an event's detail."""

    emails: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Who is emailed when a run ends (at most 20 addresses). Empty: nobody.",
    )
    when: Literal["failures", "needs_review", "every_run"] = Field(
        default="needs_review",
        description="failures: failed and refused runs only; needs_review: those and runs held for review "
        "(deletion threshold, a school losing every student, a re-key to review); every_run: every run that "
        "ends, self-checks excepted.",
    )

    @field_validator("emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        for address in cleaned:
            if not _EMAIL.fullmatch(address):
                raise ValueError(f"{address!r} is not an email address")
        return cleaned


_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+")


class CleanupSettings(_Settings):
    """When archiving students who are not part of the sync needs the admin to type the number."""

    confirm_over_students: int = Field(
        default=50,
        ge=0,
        le=1_000_000,
        description="A clean-up archiving more students than this needs --yes-archive N with the number.",
    )
    confirm_over_school_percent: float = Field(
        default=20,
        ge=0,
        le=100,
        description="A clean-up archiving more than this share of a school's active students needs --yes-archive N.",
    )


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
    limits: LimitSettings = Field(default_factory=LimitSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    cleanup: CleanupSettings = Field(default_factory=CleanupSettings)
    incremental: IncrementalSettings = Field(default_factory=IncrementalSettings)

    @model_validator(mode="after")
    def _distinct_scope(self) -> SyncSettings:
        self.schools_in_scope = list(dict.fromkeys(s.strip() for s in self.schools_in_scope if s.strip()))
        return self


# -- errors ------------------------------------------------------------------------------------------


class SettingsError(RostersyncError):
    """Settings that cannot be used; the message names the key and the problem, on one line."""


class InvalidSettingsError(SettingsError):
    """Settings (given, or stored by an older version of rostersync) that do not validate."""


class SettingsConflictError(SettingsError):
    """Someone else saved the district's settings after they were read: nothing was saved."""


class SettingsVersionNotFoundError(SettingsError):
    """A run or a command asked for a settings version the district never saved."""


def describe_validation_error(exc: ValidationError) -> str:
    """One line, ``key: problem; key: problem``, with dotted keys as ``rostersync settings set`` takes them."""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "not a setting" + _suggestion(key)
        elif error["type"] == "missing":
            message = "missing"
        problems.append(f"{key}: {message}")
    return "; ".join(dict.fromkeys(problems))


def parse_settings(data: Any, what: str = "settings") -> SyncSettings:
    """Validate ``data`` as settings, or raise ``InvalidSettingsError`` naming ``what`` and each bad key."""
    try:
        return SyncSettings.model_validate(data)
    except ValidationError as exc:
        raise InvalidSettingsError(f"{what}: {describe_validation_error(exc)}") from exc


def settings_from_item(item: dict[str, Any] | None, district_id: str = "") -> tuple[SyncSettings, int]:
    """Parse a stored settings item (``SETTINGS`` or a ``SETTINGS#v…`` history item).

    A district that never saved settings gets the defaults (version 0). Stored settings that no longer
    validate (a field since renamed, say) raise ``InvalidSettingsError`` naming the field, the version and
    how to repair it, never a traceback.
    """
    if not item:
        return SyncSettings(), 0
    version = int(item.get("version", 0))
    where = f" of district {district_id}" if district_id else ""
    settings = parse_settings(
        item.get("settings") or {},
        f"the stored settings{where} (version {version}) no longer validate, replace them with "
        "`rostersync settings set --file`",
    )
    return settings, version


@dataclass(frozen=True)
class SettingsVersion:
    """One saved version of a district's settings, as stored (the JSON form; ``validated()`` parses it)."""

    version: int
    settings: dict[str, Any]
    updated_at: str = ""
    updated_by: str = ""

    def validated(self, district_id: str = "") -> SyncSettings:
        return settings_from_item({"settings": self.settings, "version": self.version}, district_id)[0]


# -- the published JSON schema -----------------------------------------------------------------------

SCHEMA_ID = "urn:rostersync:schema:sync-settings"
SCHEMA_PATH = "schemas/sync-settings.schema.json"


def settings_json_schema() -> dict[str, Any]:
    """The JSON schema of ``SyncSettings`` as published in ``schemas/sync-settings.schema.json``."""
    schema = SyncSettings.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "rostersync sync settings",
    }


def settings_json_schema_text() -> str:
    """The schema file's exact text (the file is compared with it byte for byte)."""
    return json.dumps(settings_json_schema(), indent=2, ensure_ascii=False) + "\n"


# -- dotted keys, as `rostersync settings set` takes them ----------------------------------------------


def _group_model(annotation: Any) -> type[BaseModel] | None:
    """The settings group a field holds (``Schedule``, or ``SummerPause`` of ``SummerPause | None``)."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, info.annotation
        group = _group_model(info.annotation)
        if group is not None:
            yield from _keys(group, f"{key}.")


SETTING_KEYS: dict[str, Any] = dict(_keys(SyncSettings))
"""Every dotted key (groups and their fields) and its type annotation."""


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, SETTING_KEYS, n=1, cutoff=0.5)
    if not close:
        # A misspelt last part under a known group: compare the last parts only.
        parent, _, last = key.rpartition(".")
        siblings = [k.rpartition(".")[2] for k in SETTING_KEYS if k.rpartition(".")[0] == parent]
        close = [f"{parent}.{c}" if parent else c for c in difflib.get_close_matches(last, siblings, n=1, cutoff=0.5)]
    return f" (did you mean {close[0]}?)" if close else ""


_TRUE = {"true", "on", "yes"}
_FALSE = {"false", "off", "no"}
_NONE = {"none", "null"}


def _kinds(annotation: Any) -> set[str]:
    """What a value of this annotation may be: ``bool``, ``list``, ``none``, ``group``, ``number``, ``text``."""
    kinds: set[str] = set()
    for part in get_args(annotation) if get_origin(annotation) not in (None, Literal, list) else (annotation,):
        if part is type(None):
            kinds.add("none")
        elif part is bool:
            kinds.add("bool")
        elif get_origin(part) is list:
            kinds.add("list")
        elif isinstance(part, type) and issubclass(part, BaseModel):
            kinds.add("group")
        elif part in (int, float):
            kinds.add("number")
        else:
            kinds.add("text")
    return kinds


def parse_value(key: str, text: str) -> Any:
    """The value ``text`` means for ``key``: JSON when it is valid JSON of a fitting type, booleans from
    true/false/on/off, lists comma-separated, ``none`` for an optional group; else the text itself."""
    kinds = _kinds(SETTING_KEYS[key])
    word = text.strip().lower()
    if "none" in kinds and word in _NONE | {""}:
        return None
    if "bool" in kinds:
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise InvalidSettingsError(f"{key}: {text!r} is not on/off (true, false, on, off, yes, no)")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = _NO_JSON
    if "list" in kinds:
        if isinstance(parsed, list):
            return parsed
        return [part.strip() for part in text.split(",") if part.strip()]
    if "group" in kinds:
        if isinstance(parsed, dict):
            return parsed
        raise InvalidSettingsError(
            f"{key}: give its fields one by one ({key}.…=VALUE), a JSON object"
            + (" or none" if "none" in kinds else "")
        )
    if "number" in kinds and isinstance(parsed, int | float) and not isinstance(parsed, bool):
        return parsed
    # Text (and choices): a JSON string is unquoted; anything else is taken as typed, "02:00" stays text.
    return parsed if isinstance(parsed, str) else text


_NO_JSON = object()


def apply_assignments(settings: dict[str, Any], assignments: list[tuple[str, str]]) -> dict[str, Any]:
    """A copy of the settings ``settings`` (as JSON) with each ``(dotted key, text)`` assigned, in order.

    Unknown keys raise ``InvalidSettingsError`` suggesting the closest key. Setting a field of an empty
    optional group (``schedule.summer_pause.start`` while there is no pause) creates the group; the result
    is validated by the caller, so a half-filled group is reported as a missing field.
    """
    result = json.loads(json.dumps(settings))
    for key, text in assignments:
        if key not in SETTING_KEYS:
            raise InvalidSettingsError(f"{key}: not a setting{_suggestion(key)}")
        value = parse_value(key, text)
        *parents, last = key.split(".")
        target = result
        for part in parents:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[last] = value
    return result


def setting_changes(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old, new)`` for each setting that differs, groups compared field by field."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for name in list(dict.fromkeys([*old, *new])):
            changes += setting_changes(old.get(name), new.get(name), f"{prefix}{name}.")
        return changes
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def shown(value: Any) -> str:
    """A setting's value as the CLI prints it (and as ``set`` would take it back)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "(empty)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
