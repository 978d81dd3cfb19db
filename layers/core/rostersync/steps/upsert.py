"""Write one plan chunk to the directory (one iteration of the Upsert Map)."""

from __future__ import annotations

from typing import Any

from rostersync.contracts import UpsertChunkRequest, UpsertChunkResult, plan_chunk_name
from rostersync.domain.records import Kind
from rostersync.errors import BadInputError
from rostersync.lifecycle import before_images
from rostersync.lifecycle.reversal import REVERT, apply_reversal_chunk
from rostersync.matching.plan import PlannedWrite
from rostersync.observability import emit, emit_record_counts, logger
from rostersync.steps.context import DistrictContext


def keep_before_images(ctx: DistrictContext, chunk_key: str, planned: list[PlannedWrite]) -> None:
    """Before the chunk's first write, keep each record as it was (``lifecycle.before_images``): what undo
    puts back. A retried chunk keeps its first attempt's images."""
    existing = ctx.directory.raw_items((w.record.kind, w.record.id) for w in planned if w.op != "create")
    images = []
    for write in planned:
        before = existing.get(write.record.id) if write.op != "create" else None
        images.append(
            before_images.WrittenRecord(
                kind=write.record.kind,
                id=write.record.id,
                op=write.op,  # type: ignore[arg-type]
                before=before,
                after_state=before_images.after_update(before, write.record, write.clear_edits),
            )
        )
    before_images.write_once(ctx.store, plan_chunk_name(chunk_key), images)


def upsert_chunk(request: UpsertChunkRequest) -> UpsertChunkResult:
    """Apply a chunk of planned writes. Idempotent: creates put items whose ids derive from provider ids,
    updates and restores set the same values again. A chunk of an undo or approval
    (``lifecycle.reversal``) puts items back or archives them."""
    ctx = DistrictContext.for_run(request.district_id, request.run_id)
    if not ctx.store.owns(request.chunk_key):
        raise BadInputError("the plan chunk does not belong to this run")
    lines: list[dict[str, Any]] = list(ctx.store.read_ndjson(request.chunk_key))
    if lines and REVERT in lines[0]:
        written = apply_reversal_chunk(ctx, plan_chunk_name(request.chunk_key), lines)
        emit("DirectoryWriteRequests", ctx.directory.write_requests, step="upsert_chunk")
        return UpsertChunkResult(
            chunk_key=request.chunk_key, written=written, write_requests=ctx.directory.write_requests
        )
    planned = [PlannedWrite.from_json(d) for d in lines]
    keep_before_images(ctx, request.chunk_key, planned)
    written = ctx.directory.put_records(w.record for w in planned if w.op == "create")
    written += ctx.directory.update_many((w.record, w.clear_edits) for w in planned if w.op != "create")
    logger.info("plan chunk written", extra={"run_id": request.run_id, "written": written})
    by_kind: dict[str, dict[str, int]] = {}
    for write in planned:
        actions = by_kind.setdefault(write.record.kind.value, {})
        actions[write.op] = actions.get(write.op, 0) + 1
    emit_record_counts("upsert_chunk", by_kind)
    emit("DirectoryWriteRequests", ctx.directory.write_requests, step="upsert_chunk")
    return UpsertChunkResult(chunk_key=request.chunk_key, written=written, write_requests=ctx.directory.write_requests)


__all__ = ["Kind", "keep_before_images", "upsert_chunk"]
