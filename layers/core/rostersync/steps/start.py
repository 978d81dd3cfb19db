"""Start a run: take the district's lock, record the run, read its connection and settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rostersync import aws
from rostersync.contracts import RUN_ACTIONS, RunRef, StartRequest
from rostersync.errors import ConnectionNotConfiguredError
from rostersync.lifecycle.district import DistrictLifecycle
from rostersync.observability import logger
from rostersync.providers.registry import provider_name
from rostersync.settings import InvalidSettingsError, SyncSettings
from rostersync.steps.context import DistrictContext
from rostersync.steps.schedule import schedule_enabled_district
from rostersync.storage import latest_upload_key
from rostersync.uploads import check_upload


def start_run(request: StartRequest) -> RunRef:
    """Take the lock (``LockHeldError`` if a run is in progress) and create the run record."""
    sync = request.input
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    ctx = DistrictContext.for_run(sync.district_id, request.run_id)

    def ended_early(**why: Any) -> RunRef:
        """The run of a folder upload still waiting for files, or of a district not entitled: it ends here."""
        return RunRef(
            district_id=sync.district_id,
            run_id=request.run_id,
            trigger=sync.trigger,
            bundle_key=sync.bundle_key,
            started_at=started_at,
            **why,
        )

    if sync.trigger == "upload" and sync.bundle_key:
        # Every file of a folder upload starts an execution: only the one that finds the bundle complete
        # (and claims it) syncs; the others end here, before any lock or run record.
        upload = check_upload(aws.client("s3"), ctx.config.sync_bucket, sync.bundle_key, ctx.state)
        if not upload.complete:
            logger.info("upload not synced", extra={"district_id": sync.district_id, "reason": upload.waiting})
            return ended_early(upload_waiting=True, waiting_reason=upload.waiting)
        sync = sync.model_copy(update={"bundle_key": upload.bundle_key})
    lifecycle = DistrictLifecycle(ctx.state)
    if not sync.dry_run and sync.trigger not in RUN_ACTIONS:
        # Enable, a scheduled run, an upload and a manual sync of a district whose plan does not include
        # sync are refused here, before any lock, fetch or write: the run record says why.
        entitlement = lifecycle.entitlement()
        if not entitlement.entitled:
            ctx.state.put_run(
                request.run_id,
                status="not_entitled",
                trigger=sync.trigger,
                dry_run=False,
                started_at=started_at,
                finished_at=started_at,
                refused_reason=entitlement.reason,
                failure_reason=entitlement.reason,
                plan=entitlement.plan,
                bundle_key=sync.bundle_key,
                requested_by=sync.requested_by,
            )
            logger.info(
                "run refused",
                extra={"district_id": sync.district_id, "run_id": request.run_id, "status": "not_entitled"},
            )
            return ended_early(refused=True, refused_reason=entitlement.reason)
    ctx.state.acquire_lock(request.run_id, ctx.config.lock_ttl_seconds)
    connection = ctx.state.get_item("CONNECTION") or {}
    # The run records the version it plans with; Match reads exactly that version back (settings_at).
    settings_problem: InvalidSettingsError | None = None
    try:
        settings, version = ctx.state.current_settings()
    except InvalidSettingsError as exc:
        settings, version, settings_problem = SyncSettings(), ctx.state.settings_record().version, exc
    run = RunRef(
        district_id=sync.district_id,
        run_id=request.run_id,
        dry_run=sync.dry_run,
        trigger=sync.trigger,
        provider=str(connection.get("provider", "")),
        connection=str(connection.get("provider", "")),
        bundle_key=sync.bundle_key,
        started_at=started_at,
        settings_version=version,
        deletion_threshold_percent=settings.deletion_threshold_percent,
        target_run_id=sync.target_run_id,
    )
    ctx.state.put_run(
        request.run_id,
        status="running",
        trigger=sync.trigger,
        dry_run=sync.dry_run,
        provider=run.provider,
        started_at=started_at,
        settings_version=version,
        requested_by=sync.requested_by,
        target_run_id=sync.target_run_id,
        # the upload an upload's run reads (a run that reads the latest upload records it below): a run
        # that dies past every Catch is closed from this record, and its report names the upload too
        bundle_key=sync.bundle_key,
    )
    if settings_problem is not None:
        raise settings_problem
    if not connection:
        raise ConnectionNotConfiguredError(
            f"district {sync.district_id} has no provider connection: connect Clever or OneRoster before syncing"
        )
    run.provider = provider_name(connection)
    if sync.bundle_key and run.connection != "oneroster-csv":
        raise ConnectionNotConfiguredError(
            f"a OneRoster bundle was uploaded for district {sync.district_id}, whose sync is connected to "
            f"{run.connection}: switch the connection to SFTP (OneRoster CSV) to sync from uploads"
        )
    if sync.trigger in RUN_ACTIONS:
        # An undo or approval acts on the directory as an earlier run left it: no roster is read.
        logger.info("run started", extra={"district_id": sync.district_id, "run_id": request.run_id})
        return run
    if sync.trigger == "enabled" and not sync.dry_run:
        lifecycle.mark_enabled(request.run_id, sync.requested_by)
    elif sync.trigger == "upload" and not sync.dry_run and ctx.state.enabled() is None:
        # An SFTP drop before the admin enabled sync (steps 2-5 of their path may not be done): check it,
        # write nothing. The report says so; enabling then syncs the latest upload.
        run.dry_run = True
        run.dry_run_reason = (
            f"Sync is not enabled for district {sync.district_id} yet, so this upload was only checked (a "
            "self-check): nothing was written. Enable sync to apply it; later uploads then sync."
        )
        ctx.state.update_run(request.run_id, dry_run=True)
    if run.connection == "oneroster-csv" and not sync.bundle_key:
        # A self-check, a manual run or the first sync of an SFTP district reads its latest upload.
        run.bundle_key = latest_upload_key(aws.client("s3"), ctx.config.sync_bucket, sync.district_id)
        if run.bundle_key is None:
            then = (
                "sync is enabled, so its first upload will start the first sync"
                if sync.trigger == "enabled"
                else "upload the district's export first"
            )
            raise ConnectionNotConfiguredError(
                f"district {sync.district_id} syncs from uploaded OneRoster bundles and none has been uploaded yet "
                f"to uploads/{sync.district_id}/: {then}"
            )
        ctx.state.update_run(request.run_id, bundle_key=run.bundle_key)
    if sync.trigger == "enabled" and not sync.dry_run and run.connection != "oneroster-csv":
        # An SFTP district syncs when it uploads: a schedule would only replay its last bundle.
        schedule_enabled_district(ctx.state, settings, datetime.now(UTC))
    logger.info("run started", extra={"district_id": sync.district_id, "run_id": request.run_id})
    return run
