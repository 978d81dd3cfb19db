"""Close a run whose execution ended where the state machine could not report it.

Step Functions fails some executions past every ``Catch``: a state whose data grew over 256 KB
(``States.DataLimitExceeded``), a time-out, an execution stopped by hand. Such a run would keep its run
record ``running`` and its district's lock until the lock expired. EventBridge announces every execution
that ends ``FAILED``, ``TIMED_OUT`` or ``ABORTED`` (the template's rule); this step then writes the
run's failed report, records it, and lets the lock go. A run the state machine did report is left as it
is, so the step is idempotent and harmless after an ordinary failure.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import ValidationError

from rostersync.contracts import CloseRunResult, ExecutionEnded, SyncRequest
from rostersync.lifecycle.announce import announce_run
from rostersync.observability import logger
from rostersync.reports.html import render_html
from rostersync.reports.model import RunStatus, SyncReport, UploadFacts
from rostersync.reports.writer import render_json
from rostersync.steps.context import DistrictContext
from rostersync.steps.fetch import fetched_upload_time
from rostersync.storage import upload_name

FINAL = {status.value for status in RunStatus}

_WHY = {
    "States.DataLimitExceeded": "a step's data grew over the workflow's 256 KB limit",
    "States.Timeout": "the run took longer than the workflow allows",
}


def abandoned_reason(ended: ExecutionEnded) -> str:
    """What the admin reads: what happened, that nothing was archived by it, and what to do."""
    if ended.status == "ABORTED":
        why = "the run was stopped before it finished"
    elif ended.status == "TIMED_OUT":
        why = _WHY["States.Timeout"]
    else:
        why = _WHY.get(ended.error or "", f"the workflow failed outside its steps ({ended.error or 'no error name'})")
    return (
        f"The sync stopped before it could write its report: {why}. Whatever the run had not finished was "
        "not archived; the next run starts from the directory as it is. If it happens again, the rostersync "
        "team can trace it by the run id."
    )


def close_ended_execution(ended: ExecutionEnded) -> CloseRunResult:
    """Record the run as failed with a report and expire its lock, unless the run was already reported;
    then announce its end (every execution that ended, ``SUCCEEDED`` included: ``lifecycle.announce``)."""
    run_id = ended.name
    try:
        request = SyncRequest.model_validate_json(ended.input or "{}")
    except ValidationError:
        logger.warning("ended execution names no district", extra={"run_id": run_id})
        return CloseRunResult(run_id=run_id, closed=False, lock_released=False)
    ctx = DistrictContext.for_run(request.district_id, run_id)
    if ended.status == "SUCCEEDED":  # the state machine reported it and released its lock: announce only
        announced = announce_run(ctx.state, run_id)
        return CloseRunResult(run_id=run_id, closed=False, lock_released=False, announced=announced)
    record = ctx.state.get_run(run_id)
    closed = False
    if record is not None and record.get("status") not in FINAL:
        closed = True
        now = datetime.now(UTC).isoformat(timespec="seconds")
        district = ctx.state.get_item("DISTRICT") or {}
        # an SFTP district's run names the upload it read, as Write report's does (when it came is known once
        # Fetch's plan read it)
        bundle_key = str(record.get("bundle_key") or "")
        upload = (
            UploadFacts(name=upload_name(request.district_id, bundle_key), uploaded_at=fetched_upload_time(ctx.store))
            if bundle_key
            else None
        )
        report = SyncReport(
            district_id=request.district_id,
            district_name=str(district.get("name", "")),
            run_id=run_id,
            provider=str(record.get("provider") or "unknown"),
            trigger=str(record.get("trigger") or request.trigger),
            dry_run=bool(record.get("dry_run", request.dry_run)),
            status=RunStatus.FAILED,
            started_at=str(record.get("started_at") or now),
            finished_at=now,
            failure_reason=abandoned_reason(ended),
            upload=upload,
        )
        html_key = ctx.store.key("report/report.html")
        report_key = ctx.store.key("report/report.json")
        report.files.update({"report.html": html_key, "report.json": report_key})
        ctx.store.put_bytes("report/report.html", render_html(report), "text/html; charset=utf-8")
        ctx.store.put_bytes("report/report.json", render_json(report), "application/json")
        ctx.state.update_run(
            run_id,
            status=RunStatus.FAILED.value,
            finished_at=now,
            report_key=report_key,
            html_key=html_key,
            failure_reason=report.failure_reason,
            upload=upload.model_dump() if upload else None,
        )
    released = ctx.state.expire_lock(run_id)
    if record is not None and (closed or released):
        ctx.state.update_run(run_id, lock_released=released)
    announced = announce_run(ctx.state, run_id)
    logger.info(
        "ended execution closed",
        extra={"run_id": run_id, "execution_status": ended.status, "closed": closed, "lock_released": released},
    )
    return CloseRunResult(run_id=run_id, closed=closed, lock_released=released, announced=announced)


def execution_ended_from_event(event: dict) -> ExecutionEnded:
    """The EventBridge "Step Functions Execution Status Change" event, as the step reads it."""
    detail = event.get("detail", event)
    cause = detail.get("cause")
    return ExecutionEnded(
        execution_arn=str(detail.get("executionArn", "")),
        name=str(detail.get("name") or str(detail.get("executionArn", "")).rsplit(":", 1)[-1]),
        status=str(detail.get("status", "")),
        input=detail.get("input") if isinstance(detail.get("input"), str) else json.dumps(detail.get("input") or {}),
        error=detail.get("error"),
        cause=cause if isinstance(cause, str) else None,
    )
