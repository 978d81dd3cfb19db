"""Tell who needs to know that a run ended: one event on the stack's bus per run.

CloseRun (``steps.close``) is invoked for every execution of the sync that ends — ``SUCCEEDED`` as well as
``FAILED``, ``TIMED_OUT`` and ``ABORTED`` — and, once the run record holds its final status, calls
``announce_run``: the event's detail type follows the status (``events.detail_type_of``), its detail
carries the district, run id, counts, the reason an admin can act on and the report's links. The run
record is stamped ``announced_at`` afterwards, so a second delivery of the execution's event announces
nothing twice (EventBridge delivers at least once; so does this, if the stamp fails after the put).

Delivery to people (emails) is the NotifyAdmins function's: a rule on the bus (``steps.notify``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import SyncStateRepository
from rostersync.lifecycle.events import RUN_EVENT_SOURCE, ReportLinks, RunEndedDetail, detail_type_of
from rostersync.observability import logger

FINAL_STATUSES = frozenset(
    {"succeeded", "succeeded_with_errors", "threshold_exceeded", "needs_review", "failed", "not_entitled"}
)


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    totals = {"created": 0, "updated": 0, "archived": 0, "restored": 0, "errors": 0, "would_archive": 0}
    for kind in counts.values():
        for action in totals:
            totals[action] += int(kind.get(action, 0) or 0)
    return totals


def review_reason(district_id: str, run_id: str, status: str, totals: dict[str, int], stored: str | None) -> str | None:
    """What the admin reads in a needs-review event: what was held and the commands that decide it."""
    if status == "threshold_exceeded":
        return (
            f"{totals.get('would_archive', 0):,} records that left the roster were not archived: more than the "
            "deletion threshold allows, or a school would lose every student. Check the report; then "
            f"`rostersync runs approve {run_id} --district {district_id}` archives exactly the held records, "
            f"or `rostersync runs discard {run_id} --district {district_id}` keeps them."
        )
    if status == "needs_review":
        return stored or "The provider changed record ids and some could not be linked: see the report's review lines."
    return stored


def run_ended_detail(state: SyncStateRepository, record: dict[str, Any], s3: Any | None = None) -> RunEndedDetail:
    """The run-end event's detail for a run record holding its final status."""
    config = runtime_config()
    district_id, run_id = state.district_id, str(record["run_id"])
    counts = {
        str(kind): {str(k): int(v or 0) for k, v in actions.items()}
        for kind, actions in (record.get("counts") or {}).items()
    }
    totals = _totals(counts)
    status = str(record.get("status"))
    reason = record.get("failure_reason") or record.get("refused_reason")
    reason = review_reason(district_id, run_id, status, totals, reason)
    report = None
    command = f"rostersync report --district {district_id} --run {run_id}"
    if record.get("html_key"):
        s3 = s3 or aws.link_signer()
        url = s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": config.sync_bucket, "Key": record["html_key"]},
            ExpiresIn=config.report_link_seconds,
        )
        report = ReportLinks(
            url=url,
            expires_in_seconds=config.report_link_seconds,
            s3_uri=f"s3://{config.sync_bucket}/{record['html_key']}",
            command=command,
        )
    district = state.get_item("DISTRICT") or {}
    return RunEndedDetail(
        district_id=district_id,
        district_name=str(district.get("name", "")),
        run_id=run_id,
        status=status,
        trigger=str(record.get("trigger", "")),
        dry_run=bool(record.get("dry_run", False)),
        started_at=str(record.get("started_at", "")),
        finished_at=str(record.get("finished_at", "")),
        counts=counts,
        totals=totals,
        reason=reason,
        target_run_id=record.get("target_run_id"),
        report=report,
    )


def announce_run(state: SyncStateRepository, run_id: str, events: Any | None = None) -> str | None:
    """Publish the run-end event of a run that ended (once); return its detail type, or None when there is
    nothing to announce (no run record, not final yet, announced already)."""
    record = state.get_run(run_id)
    if record is None or record.get("status") not in FINAL_STATUSES or record.get("announced_at"):
        return None
    detail = run_ended_detail(state, record)
    detail_type = detail_type_of(detail.status)
    bus = runtime_config().event_bus_name
    answer = (events or aws.client("events")).put_events(
        Entries=[
            {
                "Source": RUN_EVENT_SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail.model_dump(mode="json", exclude_none=True)),
                "EventBusName": bus,
                "Resources": [],
            }
        ]
    )
    entry = answer["Entries"][0]
    if "EventId" not in entry:  # refused by EventBridge: the function fails and is retried
        raise RuntimeError(f"run-end event refused: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    state.update_run(run_id, announced_at=datetime.now(UTC).isoformat(timespec="seconds"), announced_as=detail_type)
    logger.info("run announced", extra={"run_id": run_id, "detail_type": detail_type, "status": detail.status})
    return detail_type
