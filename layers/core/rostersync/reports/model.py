"""The sync report: what one run did, per kind of record, in the district admin's words.

``SyncReport.model_dump(mode="json")`` *is* ``report.json``; the CSV files carry the per-record lines
(``ReportLine``) and every error, which can run into millions for a large district. ``Findings`` and
the readiness checklist (``ReadinessItem``, computed by ``reports.readiness``) are what a district admin
acts on before enabling sync; every run's report carries them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rostersync.domain.records import Kind, RecordError
from rostersync.reports.cost import RunCost

LIST_SHOWN = 50
"""report.html (and report.json) list this many lines of each kind and action; the CSV files list all."""

MAX_JSON_ERRORS = 1_000
"""``report.json`` keeps this many errors; ``errors_total`` has the full count, ``errors.csv`` all of them."""

KIND_LABELS: dict[Kind, str] = {
    Kind.SCHOOLS: "Schools",
    Kind.CLASSROOMS: "Classrooms",
    Kind.STUDENTS: "Students",
    Kind.TEACHERS: "Teachers",
    Kind.STAFF: "Staff",
    Kind.GUARDIANS: "Guardians",
    Kind.ENROLLMENTS: "Enrollments",
    Kind.GUARDIAN_LINKS: "Guardian links",
}
KIND_SINGULAR: dict[Kind, str] = {  # one of a kind, in a sentence: "1 staff member", "1 guardian link"
    Kind.SCHOOLS: "school",
    Kind.CLASSROOMS: "classroom",
    Kind.STUDENTS: "student",
    Kind.TEACHERS: "teacher",
    Kind.STAFF: "staff member",
    Kind.GUARDIANS: "guardian",
    Kind.ENROLLMENTS: "enrollment",
    Kind.GUARDIAN_LINKS: "guardian link",
}


class RunStatus(StrEnum):
    """How a sync run ended."""

    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
    THRESHOLD_EXCEEDED = "threshold_exceeded"
    # a provider re-key left records that could not be told apart: nothing written for them
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"
    # refused before anything was fetched: the district's plan does not include sync (rostersync.lifecycle)
    NOT_ENTITLED = "not_entitled"


class Action(StrEnum):
    """The count columns of a report: what happened to the records of one kind."""

    CREATED = "created"
    UPDATED = "updated"
    LINKED = "linked"
    ARCHIVED = "archived"
    RESTORED = "restored"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    ERRORS = "errors"


class LineAction(StrEnum):
    """What happened to one record, as listed in the per-kind CSV files.

    Unchanged records are counted but not listed. ``would_archive`` lists the records a run would have
    archived had the deletion threshold not stopped it (or, in a self-check, would archive). ``linked``:
    an existing product record got its provider link. The review actions: ``possible_duplicate`` (same
    name and date of birth as a product person, never merged unasked), ``ambiguous`` (several product
    people match). ``merged``/``separate_account``: a person in several roles got one account or
    several. ``edit_kept``/``edit_overwritten``: a field edited in the product that the roster would change.
    """

    CREATED = "created"
    UPDATED = "updated"
    LINKED = "linked"
    ARCHIVED = "archived"
    RESTORED = "restored"
    SKIPPED = "skipped"
    ERROR = "error"
    WOULD_ARCHIVE = "would_archive"
    POSSIBLE_DUPLICATE = "possible_duplicate"
    AMBIGUOUS = "ambiguous"
    MERGED = "merged"
    SEPARATE_ACCOUNT = "separate_account"
    EDIT_KEPT = "edit_kept"
    EDIT_OVERWRITTEN = "edit_overwritten"


class _ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindCounts(_ReportModel):
    """The counts of one kind of record.

    ``would_archive`` is non-zero when archiving was held back, and in a self-check (what the sync would
    archive). ``edits_kept``/``edits_overwritten`` count *fields* people edited in the product that the
    roster would change, not records.
    """

    created: int = 0
    updated: int = 0
    linked: int = 0
    archived: int = 0
    restored: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    would_archive: int = 0
    edits_kept: int = 0
    edits_overwritten: int = 0

    @classmethod
    def from_summary(cls, counts: dict[str, Any] | None) -> KindCounts:
        """Read one kind's counts from Match's ``plan/summary.json``: a field it lacks (an older run) is 0,
        one this model does not know (a newer planner) is left out rather than failing the report."""
        return cls.model_validate({k: v for k, v in (counts or {}).items() if k in cls.model_fields})

    @property
    def changed(self) -> int:
        """Records created, updated, linked, restored or archived."""
        return self.created + self.updated + self.linked + self.restored + self.archived


class FieldChange(_ReportModel):
    """One synced field an update changed: its value before the run and after it.

    The before-image is read from the directory by Match and travels with the run's artefacts (the plan's
    lines, the report's CSV files in S3), never through logs: names and contact details are personal data.
    """

    field: str
    before: str = ""
    after: str = ""


class ReportLine(_ReportModel):
    """One record's line in its kind's CSV file, in the district admin's terms.

    ``sis_id`` is the district's own id of the record (SIS id, else student, teacher or school number),
    ``school`` the school's name (several joined with "; "), ``grade`` the grade (a school: its grade
    range); ``changes`` lists what an update changed, before → after. Enrollments and guardian links are
    named by their people and classroom ("Ava Li in Algebra 1").
    """

    kind: Kind
    action: LineAction
    id: str = ""
    provider_id: str
    name: str = ""
    reason: str = ""
    sis_id: str = ""
    school: str = ""
    grade: str = ""
    changes: list[FieldChange] = Field(default_factory=list)


# "users.csv line 12: …" / "users.csv: …": where a OneRoster CSV error sits, for the error's own columns.
_WHERE = re.compile(r"^(?P<file>[\w.-]+\.csv)(?: line (?P<row>\d+))?\b")
# "…; not synced. Fix the id in the export" / "… (export the bundle as UTF-8)": the admin's fix, when the
# reason ends with one.
_FIX = re.compile(r"(?:[.;:] |\()(?P<fix>(?:Fix|Check|Export|export|Link|Match|Add|Give|Set|Ask)\b[^()]*)\)?\.?$")


class ReportError(_ReportModel):
    """A record the run could not use, with a reason the district admin can act on.

    ``file`` and ``row`` say where it sits in an uploaded bundle (read from the reason when not given);
    ``fix`` is what to do about it, when the reason ends with an instruction.
    """

    kind: Kind
    provider_id: str = ""
    reason: str
    sis_id: str = ""
    file: str = ""
    row: int | None = None
    fix: str = ""

    @classmethod
    def from_record_error(cls, error: RecordError) -> ReportError:
        """The report's line for a record a step could not use (Fetch's mapping, Match's planner)."""
        return cls(kind=error.kind, provider_id=error.provider_id, sis_id=error.sis_id, reason=error.reason)

    @model_validator(mode="after")
    def _where_and_fix_from_the_reason(self) -> ReportError:
        where = _WHERE.match(self.reason)
        if where and not self.file:
            self.file = where.group("file")
            self.row = int(where.group("row")) if where.group("row") else self.row
        fix = _FIX.search(self.reason)
        if fix and not self.fix:
            self.fix = fix.group("fix").strip()
        return self


class ThresholdBreach(_ReportModel):
    """A kind whose archiving was held back by the deletion threshold."""

    would_archive: int
    managed: int
    percent: float
    limit_percent: float

    def note(self, kind: Kind) -> str:
        """Return the admin-facing note for this breach, for ``SyncReport.notes``.

        e.g. "Deletion threshold exceeded for students: 240 of 1,000 (24 %) would be archived, over the
        10 % limit; nothing was archived".
        """
        return (
            f"Deletion threshold exceeded for {KIND_LABELS[kind].lower()}: {self.would_archive:,} of "
            f"{self.managed:,} ({_percent(self.percent)} %) would be archived, over the "
            f"{_percent(self.limit_percent)} % limit; nothing was archived"
        )


class _FindingsModel(BaseModel):
    # Read from the planner's summary: a key a newer planner adds must not fail the report.
    model_config = ConfigDict(extra="ignore")


class ProviderSchool(_FindingsModel):
    """A school as the roster names it."""

    provider_id: str = ""
    name: str = ""


class ProductSchool(_FindingsModel):
    """A school of the product's directory."""

    id: str = ""
    name: str = ""


class UnlinkedSections(_FindingsModel):
    """Sections no product classroom is linked to, by what the settings make of them."""

    create: int = 0
    skip: int = 0


class MultiRole(_FindingsModel):
    """People in several roles (a teacher who is also a parent): one account, or separate ones."""

    merged: int = 0
    separate: int = 0


class Findings(_FindingsModel):
    """What Match found that a district admin should look at, from ``plan/summary.json``'s ``findings``.

    Every field defaults to empty, so a summary written before findings existed (or a run that failed
    before Match) reads as "nothing found"; ``from_summary`` says whether it was reported at all.
    """

    unmatched_provider_schools: list[ProviderSchool] = Field(default_factory=list)
    out_of_scope_schools: list[ProviderSchool] = Field(default_factory=list)
    unlinked_product_schools: list[ProductSchool] = Field(default_factory=list)
    sections_without_teacher: int = 0
    students_without_section: int = 0
    unlinked_sections: UnlinkedSections = Field(default_factory=UnlinkedSections)
    guardians_skipped: dict[str, int] = Field(default_factory=dict)
    duplicate_candidates: int = 0
    ambiguous_matches: int = 0
    multi_role: MultiRole = Field(default_factory=MultiRole)
    edits_kept: int = 0
    edits_overwritten: int = 0
    # Product students of synced schools no roster record matched (rostersync cleanup archive-unmanaged)
    students_not_in_sync: int = 0
    schools_with_students_not_in_sync: int = 0

    @classmethod
    def from_summary(cls, summary: dict[str, Any] | None) -> Findings | None:
        """Read ``summary["findings"]``; None when the summary has none or it cannot be read.

        An unreadable block must not cost the admin the rest of the report, so it reads as unreported
        (the checklist then says what it could not check) instead of failing the report step.
        """
        data = (summary or {}).get("findings")
        if not isinstance(data, dict):
            return None
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None

    @property
    def guardians_skipped_total(self) -> int:
        """Guardians skipped, all reasons together."""
        return sum(self.guardians_skipped.values())


class ReadinessStatus(StrEnum):
    """A checklist item's verdict: ``fail`` blocks enabling sync, ``warn`` asks for a look."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"


class ReadinessItem(_ReportModel):
    """One line of the readiness checklist.

    ``detail`` says what was found, with numbers; ``action`` what the admin should do about it, naming
    the command (empty when there is nothing to do).
    """

    status: ReadinessStatus
    check: str
    detail: str
    action: str = ""


def _percent(value: float) -> str:
    return f"{round(value, 1):g}"


def _every_kind() -> dict[Kind, KindCounts]:
    return {kind: KindCounts() for kind in Kind}


class UploadFacts(_ReportModel):
    """The OneRoster bundle an SFTP district's run read: its name in the district's upload folder
    (``storage.upload_name``: ``night-3/bundle.zip``, a folder upload as ``night-3/``) and when it was
    uploaded (ISO 8601, UTC; "" when S3 could not tell). A scheduled run reads the latest upload, so an SIS
    export that stopped shows here as the same upload night after night."""

    name: str
    uploaded_at: str = ""


class SyncReport(_ReportModel):
    """What one sync run did; ``model_dump(mode="json")`` is the content of ``report.json``.

    ``counts`` always holds all kinds in ``Kind`` order. ``errors`` is capped at ``MAX_JSON_ERRORS``
    (longer lists are cut on validation); ``errors_total`` keeps the full count. ``ready`` is derived
    from ``readiness`` on validation: a checklist with no ``fail`` item. No checklist (a report built
    without one) is not ready: nothing was checked.
    """

    district_id: str
    district_name: str = ""
    run_id: str
    provider: str = "clever"
    trigger: str
    dry_run: bool = False
    status: RunStatus
    started_at: str
    finished_at: str
    failure_reason: str | None = None
    notes: list[str] = Field(default_factory=list)
    counts: dict[Kind, KindCounts] = Field(default_factory=_every_kind)
    threshold: dict[Kind, ThresholdBreach] = Field(default_factory=dict)
    settings_version: int | None = None
    # The settings the run planned with (that version's values), so a report explains itself.
    settings: dict[str, Any] | None = None
    files: dict[str, str] = Field(default_factory=dict)
    errors_total: int = 0
    errors: list[ReportError] = Field(default_factory=list)
    findings: Findings = Field(default_factory=Findings)
    readiness: list[ReadinessItem] = Field(default_factory=list)
    ready: bool = False
    # Who and what: the first LIST_SHOWN lines of each kind and action (report.html lists them), and how
    # many lines each has in all (the kind's CSV file lists every one).
    lists: dict[Kind, dict[LineAction, list[ReportLine]]] = Field(default_factory=dict)
    list_totals: dict[Kind, dict[LineAction, int]] = Field(default_factory=dict)
    # The district's time zone (settings schedule.timezone): report.html shows times in it.
    timezone: str = "UTC"
    # When the presigned links report.html holds stop working (ISO 8601, UTC); "" when it holds none.
    links_expire_at: str = ""
    # which kind of run (full, events, delta, reconcile), why, and what a reconcile caught (incremental.py)
    sync: dict[str, Any] = Field(default_factory=dict)
    # what the run cost on AWS, counted by each step (reports.cost); None where nothing was metered
    cost: RunCost | None = None
    # the uploaded bundle the run read (an SFTP district's run); None for a provider's API
    upload: UploadFacts | None = None

    @field_validator("counts")
    @classmethod
    def _all_kinds_in_order(cls, counts: dict[Kind, KindCounts]) -> dict[Kind, KindCounts]:
        return {kind: counts.get(kind, KindCounts()) for kind in Kind}

    @field_validator("threshold")
    @classmethod
    def _threshold_in_kind_order(cls, threshold: dict[Kind, ThresholdBreach]) -> dict[Kind, ThresholdBreach]:
        return {kind: threshold[kind] for kind in Kind if kind in threshold}

    @model_validator(mode="after")
    def _cap_errors(self) -> SyncReport:
        self.errors_total = max(self.errors_total, len(self.errors))
        if len(self.errors) > MAX_JSON_ERRORS:
            self.errors = self.errors[:MAX_JSON_ERRORS]
        return self

    @model_validator(mode="after")
    def _ready_when_nothing_fails(self) -> SyncReport:
        self.ready = bool(self.readiness) and all(item.status is not ReadinessStatus.FAIL for item in self.readiness)
        return self

    @property
    def to_fix(self) -> list[ReadinessItem]:
        """The checklist's ``fail`` items."""
        return [item for item in self.readiness if item.status is ReadinessStatus.FAIL]

    @property
    def to_review(self) -> list[ReadinessItem]:
        """The checklist's ``warn`` items."""
        return [item for item in self.readiness if item.status is ReadinessStatus.WARN]
