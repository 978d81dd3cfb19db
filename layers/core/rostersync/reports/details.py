"""What a report line says about its record, in the district admin's terms: name, the district's own id,
school, grade, and what an update changed (before → after).

Pure functions over a directory record's fields (``DirectoryRecord.fields``, as the planner builds them),
shared by Match (created, updated, restored, skipped lines), Archive (archived lines) and Report (lines a
self-check would archive). What they return goes into the run's report files in S3, never into logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rostersync.domain.records import Kind, PersonRecord, district_id_of

# The district's own id of a line's record is ``district_id_of`` (domain.records): the providers and the
# planner name the records they could not use by the same rule, for the report's errors.

# Fields that are the sync's bookkeeping, not something an admin recognises as changed.
_NOT_SHOWN = frozenset({"guardian_provider_id"})
# Before-images shown for an update are cut at this many characters a value (a CSV cell stays readable).
VALUE_CHARS = 200


def display_name(fields: Mapping[str, Any]) -> str:
    """A record's name for the report (people: given and family name)."""
    if fields.get("name"):
        return str(fields["name"])
    return " ".join(str(fields[f]) for f in ("given_name", "family_name") if fields.get(f))


def grade_of(kind: Kind, fields: Mapping[str, Any]) -> str:
    """A person's or classroom's grade; a school's grade range (``K–5``)."""
    if kind is Kind.SCHOOLS:
        low, high = str(fields.get("low_grade") or ""), str(fields.get("high_grade") or "")
        return f"{low}–{high}" if low and high and low != high else low or high
    return str(fields.get("grade") or "")


def school_of(fields: Mapping[str, Any], school_names: Mapping[str, str]) -> str:
    """The names of a record's schools (a person's ``schools``, a classroom's ``school``), joined by "; "."""
    ids = fields.get("schools")
    if not isinstance(ids, list):
        ids = [fields["school"]] if fields.get("school") else []
    return "; ".join(school_names.get(str(i), str(i)) for i in ids)


def line_details(kind: Kind, fields: Mapping[str, Any], school_names: Mapping[str, str]) -> dict[str, str]:
    """The ``sis_id``, ``school`` and ``grade`` of a report line, from the record's directory fields."""
    school = "" if kind is Kind.SCHOOLS else school_of(fields, school_names)
    return {"sis_id": district_id_of(fields), "school": school, "grade": grade_of(kind, fields)}


def roster_details(person: PersonRecord, school_names: Mapping[str, str]) -> dict[str, str]:
    """The same for a roster person the sync skipped (its schools are provider ids)."""
    fields = person.model_dump(mode="json")
    return {
        "sis_id": district_id_of(fields),
        "school": "; ".join(school_names.get(s, s) for s in person.schools),
        "grade": person.grade,
    }


def _shown(value: Any, school_names: Mapping[str, str], field: str) -> str:
    if field in ("schools", "school"):
        ids = value if isinstance(value, list) else [value] if value else []
        return "; ".join(school_names.get(str(i), str(i)) for i in ids)
    if type(value) is not str:  # most values are text: they skip these
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if value is None or value is False:
            return "" if value is None else "no"
        if value is True:
            return "yes"
    text = str(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def field_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], school_names: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The synced fields whose value differs, before → after, in the order of ``after`` (then removed ones),
    each as the report's ``FieldChange`` holds it (``{"field", "before", "after"}``: what a plan line carries).

    A field absent on one side counts as empty: a roster that starts sending a phone shows ``(empty) → …``.
    """
    names = school_names or {}
    changes: list[dict[str, str]] = []
    for field in [*after, *(f for f in before if f not in after)]:
        was, now = before.get(field), after.get(field)
        if field in _NOT_SHOWN or (was == now and type(was) is type(now)):  # the same value is shown the same
            continue
        old, new = _shown(was, names, field), _shown(now, names, field)
        if old != new:
            changes.append({"field": field, "before": old, "after": new})
    return changes
