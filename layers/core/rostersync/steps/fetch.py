"""Fetch the district's roster from its provider into snapshot chunks in S3."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rostersync import aws
from rostersync.contracts import UPLOAD_PREFIX, FetchResult, RunRef
from rostersync.domain.records import DeletedRecord, PersonRecord, RecordError, Role, TouchedRecord, limit_error
from rostersync.errors import BadInputError
from rostersync.incremental import IncrementalState, RunStoreMirror, run_kind
from rostersync.observability import logger
from rostersync.providers.base import FetchOutcome, RetryPolicy, RosterProvider
from rostersync.providers.clever_events import build_clever_provider
from rostersync.providers.registry import build_provider
from rostersync.settings import LimitSettings, SyncSettings
from rostersync.steps.context import DistrictContext
from rostersync.storage import ChunkWriter, download_bundle

# Where each record lands in the snapshot; guardians apart, so Match can sync only the guardians of
# synced students.
SNAPSHOT_COLLECTIONS = (
    "schools",
    "classrooms",
    "people",
    "guardians",
    "enrollments",
    "guardian_links",
    "deleted",
    "touched",
)
_COLLECTION_OF_TYPE = {
    "school": "schools",
    "classroom": "classrooms",
    "enrollment": "enrollments",
    "guardian_link": "guardian_links",
}


def fetch_roster(run: RunRef) -> FetchResult:
    """Stream the provider's roster into ``snapshot/<collection>-NNNNN.ndjson.gz``.

    Raises the provider's ``ProviderAuthError`` / ``ProviderUnavailableError`` when nothing usable can
    be read; a page that could not be read leaves the result ``complete=False`` (no archiving).
    """
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    connection = ctx.state.get_item("CONNECTION") or {}
    secret = ""
    if connection.get("secret_id"):
        secret = aws.client("secretsmanager").get_secret_value(SecretId=connection["secret_id"])["SecretString"]
    retry = RetryPolicy(
        max_attempts=ctx.config.provider_max_attempts, base_delay=ctx.config.provider_retry_base_seconds
    )
    cursor = (ctx.state.get_item(f"CURSOR#{run.provider}") or {}).get("cursor")
    settings = ctx.state.settings_at(run.settings_version)
    limits = settings.limits
    incremental = IncrementalState.from_item(ctx.state.get_item(f"INCREMENTAL#{run.provider}"))
    full_reason = (
        ""
        if run.dry_run
        else run_kind(settings.incremental, incremental, datetime.now(UTC), settings.schedule.timezone)
    )
    if run.dry_run:
        cursor = None  # a self-check reads the whole roster and leaves no cursor
    with tempfile.TemporaryDirectory() as scratch:
        bundle = _download_bundle(ctx, run, Path(scratch)) if run.bundle_key else None
        if connection.get("provider") == "clever" and not run.dry_run:
            mirror = RunStoreMirror(aws.client("s3"), ctx.config.sync_bucket, run.district_id, run.run_id)
            provider: RosterProvider = build_clever_provider(connection, secret, retry, mirror, cursor, full_reason)
        else:
            # OneRoster REST reads a delta from its cursor; a due reconcile drops the cursor (a full read).
            provider = build_provider(
                connection, secret, retry, cursor=None if full_reason else cursor, bundle=bundle, limits=limits
            )
        result = _write_snapshot(ctx, run, provider, limits)
    if full_reason and result.sync_kind == "full" and not result.full_reason and cursor is not None:
        result.full_reason = full_reason
    if result.sync_kind == "delta" and _reconcile_overdue(settings, incremental):
        result.full_reason = (
            "a full reconcile is due but this run read a delta (a OneRoster delta bundle): upload a bulk bundle "
            "to archive what the deltas missed"
        )
    result.reconcile = (
        bool(full_reason) and settings.incremental.mode != "full" and result.sync_kind == "full" and cursor is not None
    )
    if result.sync_kind == "full" and not result.full_reason and connection.get("provider") == "oneroster-rest":
        result.full_reason = "no cursor yet (the first sync, or no run since the last full read finished)"
    result.incremental_state = incremental.after_run(
        datetime.now(UTC), settings.schedule.timezone, result.sync_kind == "full" and result.complete, result.changes
    ).to_item()
    return result


def _reconcile_overdue(settings: SyncSettings, state: IncrementalState) -> bool:
    return bool(run_kind(settings.incremental, state, datetime.now(UTC), settings.schedule.timezone))


def _download_bundle(ctx: DistrictContext, run: RunRef, scratch: Path) -> Path | bytes:
    """The uploaded bundle: a zip's bytes, or the folder holding the uploaded ``manifest.csv``."""
    key = run.bundle_key or ""
    if not key.startswith(f"{UPLOAD_PREFIX}{run.district_id}/"):
        raise BadInputError("the bundle was not uploaded to this district's folder")
    return download_bundle(aws.client("s3"), ctx.config.sync_bucket, key, scratch)


def _write_snapshot(
    ctx: DistrictContext, run: RunRef, provider: RosterProvider, limits: LimitSettings | None = None
) -> FetchResult:
    limits = limits or LimitSettings()
    size = ctx.config.snapshot_chunk_records
    writers = {c: ctx.store.chunk_writer(f"snapshot/{c}", size) for c in SNAPSHOT_COLLECTIONS}
    errors: ChunkWriter = ctx.store.chunk_writer("snapshot/errors", size)
    outcome = FetchOutcome()
    for item in provider.fetch(outcome):
        if isinstance(item, RecordError):
            errors.write(item)
        elif isinstance(item, TouchedRecord):
            writers["touched"].write(item)
        elif isinstance(item, DeletedRecord):
            writers["deleted"].write(item)
        elif (too_large := limit_error(item, limits.max_id_bytes, limits.max_record_bytes)) is not None:
            errors.write(too_large)
        elif isinstance(item, PersonRecord):
            writers["guardians" if item.roles == [Role.GUARDIAN] else "people"].write(item)
        else:
            writers[_COLLECTION_OF_TYPE[item.record_type]].write(item)

    manifest = {c: w.close() for c, w in writers.items()} | {"errors": errors.close()}
    key = ctx.store.put_json("snapshot/manifest.json", manifest)
    records = {c: w.count for c, w in writers.items()}
    logger.info(
        "roster fetched",
        extra={"run_id": run.run_id, "records": records, "errors": errors.count, "complete": outcome.complete},
    )
    return FetchResult(
        snapshot_manifest_key=key,
        complete=outcome.complete,
        delta=outcome.delta,
        cursor=outcome.cursor,
        sync_kind="delta" if outcome.delta and outcome.sync_kind == "full" else outcome.sync_kind,
        full_reason=outcome.full_reason,
        touched_only=outcome.touched_only,
        tonight_known=outcome.tonight_known,
        changes=outcome.changes if outcome.changes is not None else (records_total(records) if outcome.delta else None),
        problems=outcome.problems,
        records=records,
        error_count=errors.count,
    )


def records_total(records: dict[str, int]) -> int:
    """Records a delta sent (what the quietest night is judged by)."""
    return sum(n for name, n in records.items() if name not in ("touched",))
