"""The plan of an undo or an approval, and how Upsert applies it.

An undo reads what the undone run wrote (``before_images.written_records``) and the directory as it is
now; for each record still exactly as the run left it (``state_digest`` equal to its ``after_state``):

============ ==============================================================
the run       the undo
============ ==============================================================
created       archives it again (``archive``: a status update, never a delete)
updated       puts the item back as it was (``put``), links to the provider included
restored      puts it back archived
archived      puts it back active
============ ==============================================================

A record changed since — by a later run or in the product — is a ``skipped`` line, left alone. An
approval archives exactly the held records (each still active and sync-managed). Both write their plan as
chunks of ``{"revert": "put"|"archive", "kind", "id", "item"?}`` lines and their own report lines and
summary (the shape Match's summary has), so the rest of the state machine — Upsert's Map, Write report,
Release lock — treats them as any run. Upsert keeps before-images of these writes too: an undo can be
undone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rostersync.domain.records import Kind
from rostersync.lifecycle.before_images import WrittenRecord, state_digest, with_status, write_once
from rostersync.matching.plan import COUNT_FIELDS, PlanLine

REVERT = "revert"


@dataclass
class ReversalPlan:
    """The writes, report lines and counts of an undo or approval."""

    writes: list[dict[str, Any]] = field(default_factory=list)
    lines: list[PlanLine] = field(default_factory=list)
    counts: dict[Kind, dict[str, int]] = field(
        default_factory=lambda: {k: dict.fromkeys(COUNT_FIELDS, 0) for k in Kind}
    )
    conflicts: int = 0

    def count(self, kind: Kind, action: str) -> None:
        self.counts[kind][action] = self.counts[kind].get(action, 0) + 1

    def summary(self) -> dict[str, Any]:
        """What Write report reads (Match's summary shape): counts; nothing managed, nothing to archive."""
        return {
            "counts": {k.value: self.counts[k] for k in Kind},
            "managed": {k.value: 0 for k in Kind},
            "archive_candidates": {k.value: 0 for k in Kind},
        }


def _provider_id(item: dict[str, Any] | None) -> str:
    ids = (item or {}).get("provider_ids") or {}
    return str(next(iter(ids.values()), "")) if ids else ""


def plan_undo(target_run_id: str, written: Iterable[WrittenRecord], current: dict[str, dict[str, Any]]) -> ReversalPlan:
    """Undo what run ``target_run_id`` wrote (``written``), given the directory's current items by id."""
    plan = ReversalPlan()
    merged: dict[str, WrittenRecord] = {}
    for record in written:  # a record written twice in one run: its first before, its last after
        first = merged.get(record.id)
        merged[record.id] = (
            record
            if first is None
            else WrittenRecord(record.kind, record.id, first.op, first.before, record.after_state)
        )
    for record in merged.values():
        now = current.get(record.id)
        provider_id = _provider_id(now or record.before)
        if now is None or state_digest(now) != record.after_state:
            plan.conflicts += 1
            plan.count(record.kind, "skipped")
            plan.lines.append(
                PlanLine(
                    record.kind,
                    "skipped",
                    record.id,
                    provider_id,
                    "",
                    f"changed since run {target_run_id} (by a later run or in the product): left as it is",
                )
            )
            continue
        if record.before is None:  # the run created it
            plan.writes.append({REVERT: "archive", "kind": record.kind.value, "id": record.id})
            action, reason = "archived", f"created by run {target_run_id}: archived again"
        else:
            plan.writes.append({REVERT: "put", "kind": record.kind.value, "id": record.id, "item": record.before})
            was, is_ = record.before.get("status", "active"), now.get("status", "active")
            if was != is_:
                action = "restored" if was == "active" else "archived"
                reason = f"{'archived' if was == 'active' else 'restored'} by run {target_run_id}: put back {was}"
            elif not record.before.get("managed_by_sync") and now.get("managed_by_sync"):
                action, reason = "updated", f"linked by run {target_run_id}: the link is undone, the record as before"
            else:
                action, reason = "updated", f"updated by run {target_run_id}: put back as before"
        plan.count(record.kind, action)
        plan.lines.append(PlanLine(record.kind, action, record.id, provider_id, "", reason))
    return plan


def plan_approval(
    target_run_id: str, held: Iterable[dict[str, Any]], current: dict[str, dict[str, Any]]
) -> ReversalPlan:
    """Archive exactly the records run ``target_run_id`` held; those no longer active and sync-managed are
    ``conflicts`` (the caller refuses the whole approval then: the roster or the directory moved on)."""
    plan = ReversalPlan()
    for data in held:
        kind, record_id = Kind(data["kind"]), str(data["id"])
        now = current.get(record_id)
        if now is None or now.get("status") != "active" or not now.get("managed_by_sync"):
            plan.conflicts += 1
            plan.count(kind, "skipped")
            plan.lines.append(
                PlanLine(
                    kind,
                    "skipped",
                    record_id,
                    str(data.get("provider_id", "")),
                    "",
                    "no longer active since the run held it",
                )
            )
            continue
        plan.writes.append({REVERT: "archive", "kind": kind.value, "id": record_id})
        plan.count(kind, "archived")
        plan.lines.append(
            PlanLine(
                kind,
                "archived",
                record_id,
                str(data.get("provider_id", "")),
                "",
                f"held by run {target_run_id} (deletion threshold): archived on approval",
            )
        )
    return plan


def apply_reversal_chunk(ctx: Any, chunk_name: str, lines: list[dict[str, Any]]) -> int:
    """Apply one chunk of an undo or approval (``ctx``: the step's ``DistrictContext``), keeping the
    before-images first; returns how many records were written."""
    wanted = [(Kind(line["kind"]), str(line["id"])) for line in lines]
    existing = ctx.directory.raw_items(wanted)
    images = []
    for line in lines:
        before = existing.get(str(line["id"]))
        if line[REVERT] == "archive":
            after = with_status(before or {}, "archived")
            op = "archive"
        else:
            after = state_digest(line["item"])
            op = "update"
        images.append(WrittenRecord(Kind(line["kind"]), str(line["id"]), op, before, after))  # type: ignore[arg-type]
    write_once(ctx.store, chunk_name, images)
    written = 0
    for line in lines:
        if line[REVERT] == "archive":
            if ctx.directory.set_status(Kind(line["kind"]), str(line["id"]), "archived") is not None:
                written += 1
        else:
            ctx.directory.put_item_image(line["item"])
            written += 1
    return written
