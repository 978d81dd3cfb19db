"""Read a district's roster from the CLI, keeping only what matching schools and classrooms needs.

The admin matches schools and classrooms before the first sync, from their own machine: this reads the
district's ``CONNECTION`` item and its secret through a ``StackHandle`` (the same stack the sync runs
on), builds the provider as Fetch does (``providers.registry.build_provider``) and streams the roster,
keeping schools, sections, their teachers' names and emails and the section → teacher links. Nothing is
written and nothing is logged of the people read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rostersync.contracts import UPLOAD_PREFIX
from rostersync.domain.records import (
    ClassroomRecord,
    EnrollmentRecord,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
    SnapshotItem,
)
from rostersync.errors import ConnectionNotConfiguredError
from rostersync.matching.suggest import RosterTeacher, Section
from rostersync.providers.base import FetchOutcome, RetryPolicy
from rostersync.providers.registry import build_provider, provider_name
from rostersync.storage import download_bundle, latest_upload_key

# The Clever users a preview keeps without being asked for people (``collect_preview``: teachers and staff).
PREVIEW_USER_ROLES = ("district_admin", "staff", "teacher")
# Up to this many people asked for are read by id (a request each, 15 s at Clever's 1,200 a minute); more,
# and every user is read.
PREVIEW_USERS_BY_ID = 300


@dataclass
class RosterPreview:
    """What matching needs of a roster: schools, sections with their teachers, and asked-for people."""

    provider: str
    schools: list[SchoolRecord] = field(default_factory=list)
    sections: list[ClassroomRecord] = field(default_factory=list)
    section_teachers: dict[str, list[str]] = field(default_factory=dict)
    teachers: dict[str, RosterTeacher] = field(default_factory=dict)
    people: dict[str, PersonRecord] = field(default_factory=dict)
    complete: bool = True
    problems: list[str] = field(default_factory=list)

    def section_list(self) -> list[Section]:
        return [Section(s, tuple(self.section_teachers.get(s.provider_id, []))) for s in self.sections]


def collect_preview(
    items: Iterable[SnapshotItem], provider: str, people: Iterable[str] = (), schools_only: bool = False
) -> RosterPreview:
    """Keep what matching needs from a stream of roster records.

    ``people``: provider user ids to keep whole (``people link`` checks they are in the roster).
    ``schools_only``: stop at the first section or person. Every provider yields the schools first (Clever
    reads ``/schools`` before ``/sections``; OneRoster maps ``orgs`` before ``classes``), so a district of
    a million users is not read through to match its schools.
    """
    preview = RosterPreview(provider=provider)
    wanted = set(people)
    adults: dict[str, PersonRecord] = {}
    for item in items:
        if isinstance(item, SchoolRecord):
            preview.schools.append(item)
        elif schools_only and isinstance(item, ClassroomRecord | PersonRecord | EnrollmentRecord):
            break
        elif isinstance(item, ClassroomRecord):
            preview.sections.append(item)
        elif isinstance(item, EnrollmentRecord) and item.role == "teacher":
            preview.section_teachers.setdefault(item.classroom, []).append(item.person)
        elif isinstance(item, PersonRecord):
            if item.provider_id in wanted:
                preview.people[item.provider_id] = item
            # Teachers and staff are few next to students; sections may come before or after them.
            if Role.TEACHER in item.roles or Role.STAFF in item.roles:
                adults[item.provider_id] = item
        elif isinstance(item, RecordError) and not item.provider_id:
            preview.problems.append(item.reason)
    taught = {t for ids in preview.section_teachers.values() for t in ids}
    for person_id in taught:
        person = adults.get(person_id)
        name = " ".join(p for p in (person.given_name, person.family_name) if p) if person else ""
        preview.teachers[person_id] = RosterTeacher(person_id, name, person.email if person else "")
    return preview


def read_roster_preview(
    handle: Any,
    district_id: str,
    people: Iterable[str] = (),
    schools_only: bool = False,
    retry: RetryPolicy | None = None,
) -> RosterPreview:
    """Read the district's roster from its provider through the stack ``handle`` (a ``StackHandle``).

    Raises ``ConnectionNotConfiguredError`` when the district has no connection (or, for OneRoster CSV,
    no uploaded bundle), and the provider's own errors (``ProviderAuthError``…) when it cannot be read.
    ``retry``: the provider's backoff (tests inject one that never sleeps).
    """
    state = handle.state(district_id)
    connection = state.get_item("CONNECTION")
    if not connection:
        raise ConnectionNotConfiguredError(f"district {district_id} has no provider connection")
    name = provider_name(connection)
    secret = ""
    if connection.get("secret_id"):
        secret = handle.client("secretsmanager").get_secret_value(SecretId=connection["secret_id"])["SecretString"]
    with tempfile.TemporaryDirectory(prefix="rostersync-preview-") as scratch:
        bundle = None
        if connection.get("provider") == "oneroster-csv":
            bundle = _latest_bundle(handle, district_id, Path(scratch))
        # A full read, never a delta: matching needs every school and section. Of Clever's users, only the
        # adults' lists (teachers and staff: a few percent of the users; NYC's whole list is 310 pages, theirs
        # about 8) and the people asked for, by id; every user when more are asked for than pages would take.
        people = tuple(dict.fromkeys(people))
        by_id = len(people) <= PREVIEW_USERS_BY_ID
        provider = build_provider(
            connection,
            secret,
            retry or RetryPolicy(),
            cursor=None,
            bundle=bundle,
            clever_user_roles=PREVIEW_USER_ROLES if by_id else None,
            clever_user_ids=people if by_id else (),
        )
        outcome = FetchOutcome()
        preview = collect_preview(provider.fetch(outcome), name, people, schools_only)
    preview.complete = outcome.complete
    preview.problems = list(dict.fromkeys([*outcome.problems, *preview.problems]))
    return preview


def _latest_bundle(handle: Any, district_id: str, scratch: Path) -> Path | bytes:
    """The district's most recent upload under ``uploads/<district>/``: a zip's bytes, or a folder's CSVs.

    Fetch downloads a run's bundle the same way (``steps.fetch``); here the newest one is chosen.
    """
    s3 = handle.client("s3")
    bucket = handle.resources.sync_bucket
    latest = latest_upload_key(s3, bucket, district_id)
    if latest is None:
        folder = f"{UPLOAD_PREFIX}{district_id}/"
        raise ConnectionNotConfiguredError(f"no OneRoster bundle has been uploaded to {folder} yet")
    return download_bundle(s3, bucket, latest, scratch)
