"""Write one plan chunk to the directory (one iteration of the Upsert Map)."""

from __future__ import annotations

from rostersync.contracts import UpsertChunkRequest, UpsertChunkResult
from rostersync.errors import BadInputError
from rostersync.matching.plan import PlannedWrite
from rostersync.observability import emit, emit_record_counts, logger
from rostersync.steps.context import DistrictContext


def upsert_chunk(request: UpsertChunkRequest) -> UpsertChunkResult:
    """Apply a chunk of planned writes. Idempotent: creates put items whose ids derive from provider ids,
    updates and restores set the same values again."""
    ctx = DistrictContext.for_run(request.district_id, request.run_id)
    if not ctx.store.owns(request.chunk_key):
        raise BadInputError("the plan chunk does not belong to this run")
    planned = [PlannedWrite.from_json(d) for d in ctx.store.read_ndjson(request.chunk_key)]
    written = ctx.directory.put_records(w.record for w in planned if w.op == "create")
    for write in planned:
        if write.op != "create":
            ctx.directory.update_synced(write.record, clear_edits=write.clear_edits)
            written += 1
    logger.info("plan chunk written", extra={"run_id": request.run_id, "written": written})
    by_kind: dict[str, dict[str, int]] = {}
    for write in planned:
        actions = by_kind.setdefault(write.record.kind.value, {})
        actions[write.op] = actions.get(write.op, 0) + 1
    emit_record_counts("upsert_chunk", by_kind)
    emit("DirectoryWriteRequests", ctx.directory.write_requests, step="upsert_chunk")
    return UpsertChunkResult(chunk_key=request.chunk_key, written=written, write_requests=ctx.directory.write_requests)
