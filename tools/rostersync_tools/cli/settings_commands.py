"""rostersync settings show|set|history|schema: a district's sync settings.

Settings are versioned (``SyncStateRepository.put_settings``): ``set`` reads the current version, applies
the change and saves the next version only if nobody saved in between; each run records the version it used.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from rostersync.directory.schedules import ScheduleRepository
from rostersync.schedule import next_run
from rostersync.settings import (
    SCHEMA_PATH,
    SettingsError,
    SettingsVersion,
    SyncSettings,
    apply_assignments,
    parse_settings,
    setting_changes,
    settings_json_schema_text,
    shown,
)
from rostersync.steps.schedule import reschedule
from rostersync_tools.cli.connect import StackError, StackHandle, add_stack_arguments, connect_from_args
from rostersync_tools.cli.inputs import UsageError

# How `show` groups the settings: the top-level fields that are not groups go under "General".
_GROUP_TITLES = {
    "": "General",
    "classrooms": "Classrooms",
    "guardians": "Guardians",
    "phones": "Phones",
    "schedule": "Schedule",
}


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``rostersync settings show|set|history|schema``."""
    settings = commands.add_parser("settings", help="show and change a district's sync settings")
    actions = settings.add_subparsers(dest="settings_command", required=True)

    show = actions.add_parser("show", help="the current settings, their version and the next scheduled run")
    show.add_argument("--district", required=True, metavar="D", help="the district's id")
    show.add_argument("--json", action="store_true", help="print JSON (its settings can be edited and given to set)")
    add_stack_arguments(show)
    show.set_defaults(handler=_stack_command(show_settings))

    change = actions.add_parser(
        "set",
        help="change settings and save them as a new version",
        description="KEY is a dotted setting name (classrooms.name_template, schedule.summer_pause.start); "
        "VALUE is JSON when it is valid JSON, on/off/true/false for switches, comma-separated for lists, "
        "none to clear an optional group (schedule.summer_pause=none).",
    )
    change.add_argument("--district", required=True, metavar="D", help="the district's id")
    change.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help="the settings to change")
    change.add_argument(
        "--file",
        metavar="FILE",
        help="replace the whole settings with this JSON file (the settings object, or what `show --json` prints: "
        "then its version must still be the current one); KEY=VALUE pairs apply on top",
    )
    change.add_argument("--dry-run", action="store_true", help="show the change without saving it")
    change.add_argument("--by", metavar="WHO", help="who is saving, kept with the version (default: your user name)")
    add_stack_arguments(change)
    change.set_defaults(handler=_stack_command(set_settings))

    history = actions.add_parser("history", help="every saved version: when, by whom, what changed")
    history.add_argument("--district", required=True, metavar="D", help="the district's id")
    history.add_argument("--json", action="store_true", help="print JSON")
    add_stack_arguments(history)
    history.set_defaults(handler=_stack_command(settings_history))

    schema = actions.add_parser("schema", help=f"print the settings' JSON schema (as published in {SCHEMA_PATH})")
    schema.set_defaults(handler=print_schema)


def _stack_command(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Settings problems become a usage error (one line, exit 2); AWS errors after connecting a stack error."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except SettingsError as exc:
            raise UsageError(str(exc)) from exc
        except (ClientError, BotoCoreError) as exc:
            raise StackError(f"the stack answered: {exc}") from exc

    return run


# -- show ----------------------------------------------------------------------------------------------


def show_settings(args: argparse.Namespace, now: datetime | None = None) -> int:
    stack = connect_from_args(args)
    state = stack.state(args.district)
    record = state.settings_record()
    scheduled = _schedules(stack).get(args.district)
    problem: SettingsError | None = None
    try:
        settings: SyncSettings | None = record.validated(args.district)
    except SettingsError as exc:
        settings, problem = None, exc
    upcoming = next_run(settings.schedule, now or datetime.now(UTC)) if settings else None
    if args.json:
        print(
            json.dumps(
                {
                    "district_id": args.district,
                    "version": record.version,
                    "updated_at": record.updated_at or None,
                    "updated_by": record.updated_by or None,
                    "settings": record.settings,
                    "next_run": upcoming.isoformat() if upcoming else None,
                    "on_schedule": scheduled is not None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(_saved_line(args.district, record))
        print()
        defaults = _leaves(SyncSettings().model_dump(mode="json"))
        rows = _leaves(record.settings)
        width = max(len(key) for key in rows) + 2
        group = None
        for key, value in rows.items():
            section = key.split(".")[0] if "." in key else ""
            title = _GROUP_TITLES.get(section, section.capitalize())
            if title != group:
                group = title
                print(group)
            marker = "" if defaults.get(key, object()) == value else "  *"
            print(f"  {key:<{width}}{shown(value)}{marker}")
        print(f"  {'next scheduled run':<{width}}{_next_run_text(settings, upcoming, scheduled is not None)}")
        print()
        print(f"* differs from the default. Change with: rostersync settings set --district {args.district} KEY=VALUE")
    if problem is not None:
        raise problem
    return 0


def _saved_line(district: str, record: SettingsVersion) -> str:
    if record.version == 0:
        return f"District {district}: default settings (never saved; runs use version 0)"
    return (
        f"District {district}: settings version {record.version}, saved {_when(record.updated_at)} "
        f"by {record.updated_by or '?'}"
    )


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso or "?"


def _next_run_text(settings: SyncSettings | None, upcoming: datetime | None, on_schedule: bool) -> str:
    if settings is None:
        return "unknown (the settings do not validate)"
    if upcoming is not None:
        local = upcoming.astimezone(ZoneInfo(settings.schedule.timezone))
        text = f"{local:%a %Y-%m-%d %H:%M %Z} ({upcoming:%H:%M UTC})"
        return text if on_schedule else f"{text}, once sync is enabled for the district"
    if not settings.schedule.enabled:
        return "none (the schedule is off)"
    return "none (every day of the coming year is in the summer pause)"


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → value; top-level fields first, then each group (the order `show` prints)."""
    if not isinstance(value, dict):
        return {prefix.rstrip("."): value}
    scalars: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for name, item in value.items():
        (groups if isinstance(item, dict) else scalars).update(_leaves(item, f"{prefix}{name}."))
    return {**scalars, **groups}


# -- set -----------------------------------------------------------------------------------------------


def set_settings(args: argparse.Namespace) -> int:
    assignments = [_assignment(text) for text in args.assignments]
    if not assignments and not args.file:
        raise UsageError("settings set: nothing to change: give KEY=VALUE pairs or --file FILE")
    apply_assignments({}, assignments)  # unknown keys and unreadable values are refused before any connection
    stack = connect_from_args(args)
    state = stack.state(args.district)
    current = state.settings_record()
    base = current.settings
    if args.file:
        base, file_version = _read_settings_file(Path(args.file))
        if file_version is not None and file_version != current.version:
            raise UsageError(
                f"{args.file} holds settings version {file_version}, but district {args.district} is at version "
                f"{current.version} (saved {_when(current.updated_at)} by {current.updated_by or '?'}): "
                "show them again and redo the edit; nothing was saved"
            )
    data = apply_assignments(base, assignments)
    new = parse_settings(data, "settings not saved")
    changes = setting_changes(current.settings, new.model_dump(mode="json"))
    if not changes:
        print(f"No change: district {args.district} stays at settings version {current.version}.")
        return 0
    width = max(len(key) for key, _, _ in changes) + 2
    for key, old, value in changes:
        print(f"  {key:<{width}}{shown(old)} → {shown(value)}")
    if args.dry_run:
        print(f"Dry run: not saved (would be settings version {current.version + 1}).")
        return 0
    saved = state.put_settings(new, current.version, args.by or _user())
    print(f"Saved settings version {saved.version} of district {args.district} (was {current.version}).")
    if reschedule(_schedules(stack), args.district, new, datetime.now(UTC)):
        upcoming = next_run(new.schedule, datetime.now(UTC))
        print(f"Next scheduled run: {_next_run_text(new, upcoming, True)}.")
    return 0


def _schedules(stack: StackHandle) -> ScheduleRepository:
    return ScheduleRepository(stack.client("dynamodb"), stack.resources.sync_state_table)


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"settings set: {text!r} is not KEY=VALUE (e.g. guardians.manage=off)")
    return key.strip(), value


def _read_settings_file(path: Path) -> tuple[dict[str, Any], int | None]:
    """The settings in ``path`` and, when it is what ``show --json`` printed, the version they were read at."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object of settings")
    if isinstance(data.get("settings"), dict) and "version" in data:
        version = data["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise UsageError(f"{path}: version must be a whole number")
        return data["settings"], version
    return data, None


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


# -- history -------------------------------------------------------------------------------------------


def settings_history(args: argparse.Namespace) -> int:
    versions = connect_from_args(args).state(args.district).settings_history()
    previous = SyncSettings().model_dump(mode="json")
    rows = []
    for each in versions:
        rows.append((each, [key for key, _, _ in setting_changes(previous, each.settings)]))
        previous = each.settings
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "version": each.version,
                        "updated_at": each.updated_at,
                        "updated_by": each.updated_by,
                        "changed": changed,
                    }
                    for each, changed in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        print(f"District {args.district} never saved settings: runs use the defaults (version 0).")
        return 0
    by_width = max(len(each.updated_by) for each, _ in rows) + 2
    print(f"{'version':<9}{'saved':<22}{'by':<{by_width}}changed")
    for each, changed in rows:
        print(
            f"{each.version:<9}{_when(each.updated_at):<22}{each.updated_by:<{by_width}}"
            f"{', '.join(changed) or '(nothing)'}"
        )
    return 0


# -- schema --------------------------------------------------------------------------------------------


def print_schema(args: argparse.Namespace) -> int:
    print(settings_json_schema_text(), end="")
    return 0
