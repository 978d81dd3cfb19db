"""The sync report: what one run did, per kind of record, in the district admin's words.

``SyncReport.model_dump(mode="json")`` *is* ``report.json``; the CSV files carry the per-record lines
(``ReportLine``) and every error, which can run into millions for a large district.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rostersync.domain.records import Kind

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


class RunStatus(StrEnum):
    """How a sync run ended."""

    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
    THRESHOLD_EXCEEDED = "threshold_exceeded"
    FAILED = "failed"


class Action(StrEnum):
    """The count columns of a report: what happened to the records of one kind."""

    CREATED = "created"
    UPDATED = "updated"
    ARCHIVED = "archived"
    RESTORED = "restored"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    ERRORS = "errors"


class LineAction(StrEnum):
    """What happened to one record, as listed in the per-kind CSV files.

    Unchanged records are counted but not listed. ``would_archive`` lists the records a run would have
    archived had the deletion threshold not stopped it.
    """

    CREATED = "created"
    UPDATED = "updated"
    ARCHIVED = "archived"
    RESTORED = "restored"
    SKIPPED = "skipped"
    ERROR = "error"
    WOULD_ARCHIVE = "would_archive"
    LINKED = "linked"
    POSSIBLE_DUPLICATE = "possible_duplicate"
    AMBIGUOUS = "ambiguous"
    MERGED = "merged"
    SEPARATE_ACCOUNT = "separate_account"
    EDIT_KEPT = "edit_kept"
    EDIT_OVERWRITTEN = "edit_overwritten"


class _ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindCounts(_ReportModel):
    """The counts of one kind of record; ``would_archive`` is non-zero only when archiving was held back."""

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

    @property
    def changed(self) -> int:
        """Records created, updated, restored or archived."""
        return self.created + self.updated + self.restored + self.archived


class ReportLine(_ReportModel):
    """One record's line in its kind's CSV file."""

    kind: Kind
    action: LineAction
    id: str = ""
    provider_id: str
    name: str = ""
    reason: str = ""


class ReportError(_ReportModel):
    """A record the run could not use, with a reason the district admin can act on."""

    kind: Kind
    provider_id: str = ""
    reason: str


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


def _percent(value: float) -> str:
    return f"{round(value, 1):g}"


def _every_kind() -> dict[Kind, KindCounts]:
    return {kind: KindCounts() for kind in Kind}


class SyncReport(_ReportModel):
    """What one sync run did; ``model_dump(mode="json")`` is the content of ``report.json``.

    ``counts`` always holds all kinds in ``Kind`` order. ``errors`` is capped at ``MAX_JSON_ERRORS``
    (longer lists are cut on validation); ``errors_total`` keeps the full count.
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
    files: dict[str, str] = Field(default_factory=dict)
    errors_total: int = 0
    errors: list[ReportError] = Field(default_factory=list)

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
