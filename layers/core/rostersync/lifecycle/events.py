"""The lifecycle's events: what the product sends, and what the stack publishes when a run ends.

The product's events arrive on the account's default bus with ``source`` = the template's
``ProductEventSource`` (``product.directory``): "Sync Enabled" (a rule starts the enabled run), "Sync
Disabled" and "District Plan Changed" (a rule invokes the DistrictLifecycle function). Every run that ends
is announced on the stack's own bus (``SyncEventBus``) with ``source`` ``rostersync`` and one of the
``RUN_END_TYPES``. ``events/schemas/*.schema.json`` are generated from these models (``write_schemas``;
a unit test fails when a file is stale).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rostersync.domain.ids import DistrictId
from rostersync.lifecycle.entitlement import plan_problem

RUN_EVENT_SOURCE = "rostersync"
SYNC_ENABLED = "Sync Enabled"
SYNC_DISABLED = "Sync Disabled"
PLAN_CHANGED = "District Plan Changed"
PRODUCT_EVENT_TYPES = (SYNC_ENABLED, SYNC_DISABLED, PLAN_CHANGED)

SYNC_COMPLETED = "Sync Completed"
SYNC_COMPLETED_WITH_ERRORS = "Sync Completed With Errors"
SYNC_NEEDS_REVIEW = "Sync Needs Review"
SYNC_FAILED = "Sync Failed"
RUN_END_TYPES = (SYNC_COMPLETED, SYNC_COMPLETED_WITH_ERRORS, SYNC_NEEDS_REVIEW, SYNC_FAILED)


class _Detail(BaseModel):
    # A newer product may add fields: they are ignored, never a refusal.
    model_config = ConfigDict(extra="ignore")

    district_id: DistrictId = Field(description="The product's district id.")
    changed_by: str | None = Field(
        default=None, max_length=256, description="Who made the change in the product (a user id or name)."
    )


class SyncEnabledDetail(_Detail):
    """ "Sync Enabled": the admin launched sync (step 6 of their path); the stack's rule starts the first run."""


class SyncDisabledDetail(_Detail):
    """ "Sync Disabled": stop syncing the district (off the schedule, uploads checked only)."""

    reason: str | None = Field(default=None, max_length=500, description="Why, as the product puts it.")


class PlanChangedDetail(_Detail):
    """ "District Plan Changed": the district's plan in the product (``rostersync.lifecycle.entitlement``)."""

    plan: str = Field(description="free | essentials | premium | enterprise (premium and enterprise include sync).")

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: str) -> str:
        problem = plan_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip().lower()


class ReportLinks(BaseModel):
    """Where the run's report is: a presigned link (valid ``REPORT_LINK_SECONDS``), its S3 location, and
    the command that opens it again later."""

    url: str | None = None
    expires_in_seconds: int | None = None
    s3_uri: str | None = None
    command: str


class RunEndedDetail(BaseModel):
    """The detail of every run-end event. Ids and counts only: no person's data."""

    model_config = ConfigDict(extra="forbid")

    district_id: str
    district_name: str = ""
    run_id: str
    status: str = Field(
        description="succeeded, succeeded_with_errors, threshold_exceeded, needs_review, failed, not_entitled"
    )
    trigger: str
    dry_run: bool = False
    started_at: str = ""
    finished_at: str = ""
    counts: dict[str, dict[str, int]] = Field(default_factory=dict, description="Per kind and action, as report.json.")
    totals: dict[str, int] = Field(default_factory=dict, description="created, updated, archived, restored, errors.")
    reason: str | None = Field(default=None, description="Why it failed, was refused or needs review: what to do.")
    target_run_id: str | None = Field(default=None, description="The run an undo or approval acted on.")
    report: ReportLinks | None = None


def product_event_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schemas of whole events (envelope and detail), by file name."""
    schemas: dict[str, dict[str, Any]] = {}
    for name, detail_type, model, source in (
        ("sync-enabled", SYNC_ENABLED, SyncEnabledDetail, "product.directory"),
        ("sync-disabled", SYNC_DISABLED, SyncDisabledDetail, "product.directory"),
        ("district-plan-changed", PLAN_CHANGED, PlanChangedDetail, "product.directory"),
        *[(kind.lower().replace(" ", "-"), kind, RunEndedDetail, RUN_EVENT_SOURCE) for kind in RUN_END_TYPES],
    ):
        detail = model.model_json_schema()
        schemas[f"{name}.schema.json"] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": detail_type,
            "type": "object",
            "required": ["source", "detail-type", "detail"],
            "properties": {
                "source": {"type": "string", "examples": [source]},
                "detail-type": {"const": detail_type},
                "detail": detail,
            },
        }
    return schemas


def write_schemas(folder: Path) -> list[Path]:
    """Write ``product_event_schemas()`` into ``folder`` (``events/schemas``)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in product_event_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def detail_type_of(
    status: str,
) -> Literal["Sync Completed", "Sync Completed With Errors", "Sync Needs Review", "Sync Failed"]:
    """Which run-end event a final run status is announced as."""
    if status == "succeeded":
        return SYNC_COMPLETED
    if status == "succeeded_with_errors":
        return SYNC_COMPLETED_WITH_ERRORS
    if status in ("threshold_exceeded", "needs_review"):
        return SYNC_NEEDS_REVIEW
    return SYNC_FAILED
