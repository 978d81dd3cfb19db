"""Plan an undo or an approval (the PlanReversal function, in place of Fetch and Match for those runs).

It checks the run acted on again under the district's lock (the CLI checked before starting: this
catches a second undo or approval started meanwhile), stamps it (``undone_by`` / ``hold.state =
approved``) unless this is a preview, and writes the plan in Match's shapes: ``plan/writes-*`` chunks,
``plan/manifest.json`` for the Upsert Map, ``plan/lines-*`` and ``plan/summary.json`` for Write report.
Memory stays bounded: an undo is planned one before-image object (one plan chunk of the undone run) at
a time.
"""

from __future__ import annotations

from rostersync import aws
from rostersync.contracts import MatchResult, SyncState
from rostersync.domain.records import Kind
from rostersync.errors import BadInputError, RunActionRefusedError
from rostersync.lifecycle.before_images import PREFIX, WrittenRecord
from rostersync.lifecycle.holds import held_records, run_action_problem
from rostersync.lifecycle.reversal import ReversalPlan, plan_approval, plan_undo
from rostersync.observability import logger
from rostersync.steps.context import DistrictContext
from rostersync.storage import RunStore


def plan_reversal(state: SyncState) -> MatchResult:
    """Write the plan of the run's undo or approval; ``RunActionRefusedError`` when it cannot act."""
    run = state.run_ref()
    if run.trigger not in ("undo", "approve") or not run.target_run_id:
        raise BadInputError("PlanReversal plans undo and approve runs only")
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    target_id = run.target_run_id
    problem = run_action_problem(ctx.state, run.trigger, target_id)
    if problem:
        raise RunActionRefusedError(problem)
    target = ctx.state.get_run(target_id) or {}
    writes = ctx.store.chunk_writer("plan/writes", ctx.config.plan_chunk_records)
    lines = ctx.store.chunk_writer("plan/lines", 50_000)
    total = ReversalPlan()

    def take(plan: ReversalPlan) -> None:
        for write in plan.writes:
            writes.write(write)
        for line in plan.lines:
            lines.write(line.to_json())
        for kind, actions in plan.counts.items():
            for action, n in actions.items():
                total.counts[kind][action] = total.counts[kind].get(action, 0) + n
        total.conflicts += plan.conflicts

    notes: list[str] = []
    if run.trigger == "undo":
        target_store = RunStore(aws.client("s3"), ctx.config.sync_bucket, run.district_id, target_id)
        for key in target_store.list_keys(PREFIX):
            written = [WrittenRecord.from_json(d) for d in target_store.read_ndjson(key)]
            current = ctx.directory.raw_items((w.kind, w.id) for w in written)
            take(plan_undo(target_id, written, current))
        notes.append(
            f"This run undid run {target_id} ({target.get('trigger', '?')}, {target.get('started_at', '?')}): its "
            "creates archived again, its updates and links put back, its archives and restores reversed."
            + (
                f" {total.conflicts:,} records changed since then were left as they are (lines marked skipped)."
                if total.conflicts
                else ""
            )
        )
        if not run.dry_run:
            previous = target.get("undone_by")
            condition = "attribute_not_exists(undone_by)" + (" OR undone_by = :previous" if previous else "")
            if not ctx.state.update_run_if(
                target_id, condition, {":previous": previous} if previous else {}, undone_by=run.run_id
            ):
                raise RunActionRefusedError(f"run {target_id} is being undone by another run")
    else:
        hold = target.get("hold") or {}
        held = list(held_records(aws.client("s3"), ctx.config.sync_bucket, hold.get("keys", [])))
        current = ctx.directory.raw_items((Kind(h["kind"]), str(h["id"])) for h in held)
        plan = plan_approval(target_id, held, current)
        if plan.conflicts:
            raise RunActionRefusedError(
                f"{plan.conflicts:,} of the {len(held):,} records run {target_id} held are no longer active: the "
                f"directory changed since; start a new run (rostersync sync --district {run.district_id})"
            )
        take(plan)
        notes.append(
            f"This run archived the {len(held):,} records run {target_id} held back at the deletion threshold, "
            "as the admin approved."
        )
        if not run.dry_run:
            decided = {**hold, "state": "approved", "approve_run": run.run_id}
            condition = "#hold.#state = :held" + (
                " OR #hold.approve_run = :previous" if hold.get("approve_run") else ""
            )
            values = {":held": "held", **({":previous": hold["approve_run"]} if hold.get("approve_run") else {})}
            if not ctx.state.update_run_if(
                target_id, condition, values, names={"#hold": "hold", "#state": "state"}, hold=decided
            ):
                raise RunActionRefusedError(f"the held archives of run {target_id} were decided meanwhile")
    chunk_keys = writes.close()
    manifest_key = ctx.store.put_json("plan/manifest.json", [{"chunk_key": k} for k in chunk_keys])
    summary = total.summary() | {
        "lines_keys": lines.close(),
        "errors_keys": [],
        "archive_keys": [],
        "notes": notes,
        "target_run_id": target_id,
    }
    summary_key = ctx.store.put_json("plan/summary.json", summary)
    logger.info(
        "reversal planned",
        extra={"run_id": run.run_id, "action": run.trigger, "writes": writes.count, "conflicts": total.conflicts},
    )
    return MatchResult(
        plan_manifest_key=manifest_key, plan_chunks=len(chunk_keys), writes=writes.count, summary_key=summary_key
    )
