"""Archive sync-managed records that left the roster (deprovisioning), within the deletion threshold."""

from __future__ import annotations

from collections import Counter

from rostersync.contracts import ArchiveResult, SyncState
from rostersync.domain.records import Kind
from rostersync.errors import BadInputError
from rostersync.lifecycle import before_images
from rostersync.lifecycle.holds import HELD_NAME
from rostersync.matching.archive import check_deletion_threshold
from rostersync.matching.plan import PlanLine
from rostersync.observability import emit, emit_record_counts, logger
from rostersync.reports.details import display_name
from rostersync.steps.context import DistrictContext

# Records archived per before-image object (one BatchGetItem per 100 of them first).
ARCHIVE_BATCH = 1_000


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
    # The kinds over the threshold are held: what `rostersync runs approve` archives (lifecycle.holds).
    held = ctx.store.chunk_writer(HELD_NAME, 50_000)
    archived: Counter[Kind] = Counter()
    batch: list[dict[str, str]] = []
    batches = 0

    def archive_batch() -> None:
        # Keep each record as it was first (lifecycle.before_images): undo restores it.
        nonlocal batches
        if not batch:
            return
        existing = ctx.directory.raw_items((Kind(d["kind"]), d["id"]) for d in batch)
        before_images.write_once(
            ctx.store,
            f"archive-{batches:05d}",
            (
                before_images.WrittenRecord(
                    Kind(d["kind"]),
                    d["id"],
                    "archive",
                    existing.get(d["id"]),
                    before_images.with_status(existing.get(d["id"]) or {}, "archived"),
                )
                for d in batch
                if d["id"] in existing
            ),
        )
        batches += 1
        for data in batch:
            kind = Kind(data["kind"])
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
        batch.clear()

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
            held.write(data)
            continue
        batch.append(data)
        if len(batch) >= ARCHIVE_BATCH:
            archive_batch()
    archive_batch()
    lines_keys = lines.close()
    held_keys = held.close()
    logger.info("archived", extra={"run_id": run.run_id, "archived": dict(archived), "over_threshold": exceeded})
    emit_record_counts("archive_unmanaged", {kind.value: {"archived": n} for kind, n in archived.items()})
    emit("DirectoryWriteRequests", ctx.directory.write_requests, step="archive_unmanaged")
    return ArchiveResult(
        archived=dict(archived),
        threshold_exceeded=exceeded,
        lines_keys=lines_keys,
        held_keys=held_keys,
        held=dict(Counter(Kind(d["kind"]) for d in ctx.store.read_all(held_keys))) if held_keys else {},
    )
