"""The archives a ``threshold_exceeded`` run held back, and the admin's decision on them.

Archive writes the held candidates (the kinds over the deletion threshold) to ``runs/<d>/<run>/held/``
and Write report stamps the run record ``hold = {state: held, keys, counts}``. Then:

- ``rostersync runs approve RUN`` starts an ``approve`` run that archives exactly those records, if the
  roster has not changed since (``approve_problem``: no later sync of the district, every held record still
  active and sync-managed); the hold becomes ``approved`` (with the approving run).
- ``rostersync runs discard RUN`` keeps them: the hold becomes ``discarded`` and a ``KEPT#<run>`` item
  remembers the set, so the next runs do not hold the same records again night after night: Match leaves
  them out of the archive candidates and lists each as ``skipped`` ("kept: the admin discarded…"), and the
  report says how many (``kept_records``). The set is read from the held run's artefacts, which expire
  with them (90 days): after that the records, if still absent from the roster, are held and asked about
  once more.
- Left undecided, the next run that would archive them holds them again and says so in its report and
  its "Sync Needs Review" event: nothing is archived until someone decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from rostersync.directory.repository import SyncStateRepository
from rostersync.domain.records import Kind
from rostersync.storage import run_prefix

HELD_NAME = "held/archive"
FINAL = {"succeeded", "succeeded_with_errors", "threshold_exceeded", "needs_review", "failed", "not_entitled"}
SYNCS = {"enabled", "schedule", "upload", "manual"}


def held_records(s3: Any, bucket: str, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The held candidates (``{"kind", "id", "provider_id"}``) kept under the given keys; a key that expired
    (or never existed) gives nothing."""
    import gzip
    import io
    import json

    for key in keys:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
                continue
            raise
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def later_syncs(state: SyncStateRepository, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Real sync runs of the district that started after ``run`` (any status but a refusal)."""
    started = str(run.get("started_at", ""))
    return [
        r
        for r in state.runs()
        if r.get("run_id") != run.get("run_id")
        and r.get("trigger") in SYNCS
        and not r.get("dry_run")
        and r.get("status") != "not_entitled"
        and str(r.get("started_at", "")) > started
    ]


def run_action_problem(state: SyncStateRepository, action: str, target_run_id: str) -> str | None:
    """Why ``action`` (undo, approve, discard) cannot act on the run, or None when it can. Only the run
    record is read: a run of another district is simply not found under this district."""
    run = state.get_run(target_run_id)
    d = state.district_id
    if run is None:
        return f"district {d} has no run {target_run_id} (a run of another district cannot be {action}d here)"
    status = str(run.get("status", ""))
    if status not in FINAL:
        return f"run {target_run_id} of district {d} is still {status or 'running'}: wait for it to end"
    if run.get("dry_run"):
        return f"run {target_run_id} was a self-check: it wrote nothing to {action}"
    if action == "undo":
        if status == "not_entitled":
            return f"run {target_run_id} was refused before it wrote anything: nothing to undo"
        undo_run = run.get("undone_by")
        if undo_run:
            undo = state.get_run(str(undo_run)) or {}
            if undo.get("status") != "failed":
                return f"run {target_run_id} was undone already, by run {undo_run}"
        return None
    hold = run.get("hold") or {}
    if status != "threshold_exceeded" or not hold:
        return f"run {target_run_id} held no archives (its status is {status}): nothing to {action}"
    if hold.get("state") == "approved":
        approver = state.get_run(str(hold.get("approve_run", ""))) or {}
        if approver.get("status") != "failed":
            return f"the held archives of run {target_run_id} were approved already (run {hold.get('approve_run')})"
    if hold.get("state") == "discarded":
        return f"the held archives of run {target_run_id} were discarded already, by {hold.get('decided_by', '?')}"
    if action == "approve":
        later = later_syncs(state, run)
        if later:
            newest = max(later, key=lambda r: str(r.get("started_at", "")))
            return (
                f"the roster may have changed since run {target_run_id}: run {newest['run_id']} synced the "
                f"district after it; start a new run (rostersync sync --district {d}) and decide on its holds"
            )
    return None


def discard_hold(state: SyncStateRepository, target_run_id: str, by: str, now: datetime | None = None) -> int:
    """Drop a run's held archives (nothing is archived) and remember the set as kept; returns how many
    records it held. The caller checked ``run_action_problem`` first; a concurrent decision still loses."""
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    run = state.get_run(target_run_id) or {}
    hold = dict(run.get("hold") or {})
    decided = {**hold, "state": "discarded", "decided_by": by or "unknown", "decided_at": at}
    if not state.update_run_if(
        target_run_id,
        "#hold.#state = :held",
        {":held": "held"},
        names={"#hold": "hold", "#state": "state"},
        hold=decided,
    ):
        raise ValueError(f"the held archives of run {target_run_id} were decided meanwhile")
    state.put_item(f"KEPT#{target_run_id}", {"run_id": target_run_id, "keys": hold.get("keys", []), "by": by, "at": at})
    return sum(int(v) for v in (hold.get("counts") or {}).values())


def kept_ids(state: SyncStateRepository, s3: Any, bucket: str) -> dict[str, str]:
    """Record id → the run whose discarded hold keeps it (Match leaves them out of archiving)."""
    kept: dict[str, str] = {}
    for item in state.items_with_prefix("KEPT#"):
        prefix = run_prefix(state.district_id, str(item.get("run_id", "")))
        keys = [k for k in item.get("keys", []) if str(k).startswith(prefix)]
        for record in held_records(s3, bucket, keys):
            kept.setdefault(str(record["id"]), str(item["run_id"]))
    return kept


def held_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        kind = Kind(record["kind"]).value
        counts[kind] = counts.get(kind, 0) + 1
    return counts
