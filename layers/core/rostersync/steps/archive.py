"""Archive sync-managed records that left the roster (deprovisioning), within the deletion threshold."""

from __future__ import annotations

from collections import Counter

from rostersync.contracts import ArchiveResult, SyncState
from rostersync.domain.records import Kind
from rostersync.errors import BadInputError
from rostersync.matching.archive import check_deletion_threshold
from rostersync.matching.plan import PlanLine
from rostersync.observability import emit, emit_record_counts, logger
from rostersync.reports.details import display_name
from rostersync.steps.context import DistrictContext


def _details(data: dict[str, object]) -> dict[str, str]:
    """The district id, school and grade Match read for an archive candidate (``described_candidates``)."""
    return {name: str(data.get(name) or "") for name in ("sis_id", "school", "grade")}


def archive_unmanaged(state: SyncState) -> ArchiveResult:
    """Archive (never delete) the run's archive candidates.

    Nothing is archived when the fetch was incomplete or the run is a self-check; a kind whose
    candidates exceed the deletion threshold is left untouched and listed as "would archive".
    """
    run, fetch, match = state.run_ref(), state.fetch, state.match
    if fetch is None or match is None:
        raise BadInputError("Archive needs the results of Fetch and Match")
    if run.dry_run:
        return ArchiveResult(skipped_reason="Self-check: nothing was archived.")
    if not fetch.complete:
        return ArchiveResult(
            skipped_reason=f"Archiving skipped: the roster fetch did not complete ({'; '.join(fetch.problems)}). "
            "Nobody was archived; the next complete sync will catch up."
        )
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    summary = ctx.store.get_json(match.summary_key)
    checks = check_deletion_threshold(
        {Kind(k): v for k, v in summary["archive_candidates"].items()},
        {Kind(k): v for k, v in summary["managed"].items()},
        run.deletion_threshold_percent,
    )
    exceeded = [kind for kind, check in checks.items() if check.exceeded]
    # An emptied school's records (a broken export) are not candidates at all: Match held them back.

    lines = ctx.store.chunk_writer("archive/lines", 50_000)
    archived: Counter[Kind] = Counter()
    for data in ctx.store.read_all(summary["archive_keys"]):
        kind = Kind(data["kind"])
        if kind in exceeded:
            reason = f"no longer in the {run.provider} roster; held back by the deletion threshold"
            lines.write(
                PlanLine(
                    kind,
                    "would_archive",
                    data["id"],
                    data["provider_id"],
                    str(data.get("name", "")),
                    reason,
                    **_details(data),
                ).to_json()
            )
            continue
        record = ctx.directory.set_status(kind, data["id"], "archived")
        if record is not None:
            archived[kind] += 1
            reason = f"no longer in the {run.provider} roster"
            lines.write(
                PlanLine(
                    kind,
                    "archived",
                    record.id,
                    data["provider_id"],
                    display_name(record.fields) or str(data.get("name", "")),
                    reason,
                    **_details(data),
                ).to_json()
            )
    lines_keys = lines.close()
    logger.info("archived", extra={"run_id": run.run_id, "archived": dict(archived), "over_threshold": exceeded})
    emit_record_counts("archive_unmanaged", {kind.value: {"archived": n} for kind, n in archived.items()})
    emit("DirectoryWriteRequests", ctx.directory.write_requests, step="archive_unmanaged")
    return ArchiveResult(
        archived=dict(archived),
        threshold_exceeded=exceeded,
        lines_keys=lines_keys,
    )
