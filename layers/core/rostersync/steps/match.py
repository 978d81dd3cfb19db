"""Match the fetched roster against the directory and write the plan (DESIGN step 2, §3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter

from rostersync.contracts import MatchResult, SyncState
from rostersync.directory.keys import COLLECTIONS
from rostersync.directory.repository import IndexEntry
from rostersync.domain.records import DeletedRecord, RecordError, RosterRecord
from rostersync.errors import BadInputError
from rostersync.matching.people import CandidateIndex
from rostersync.matching.plan import SyncPlanner, index_by_provider_id
from rostersync.matching.rekey import classroom_key, id_change
from rostersync.observability import logger
from rostersync.steps.context import DistrictContext

_record = TypeAdapter(RosterRecord)


def _rekey_indexes(
    ctx: DistrictContext, provider: str, index: dict[str, Any], manifest: dict[str, list[str]], delta: bool
) -> tuple[CandidateIndex | None, dict[str, list[IndexEntry]] | None]:
    """When the roster's ids of people or sections were replaced wholesale (a provider re-key), the
    records about to be archived, by district ids, for the planner to link the new ids to."""
    if delta:
        return None, None
    found: list[Any] = [None, None]
    for position, (collection, snapshot) in enumerate(
        (("people", ("people", "guardians")), ("classrooms", ("classrooms",)))
    ):
        entries = index[collection]
        managed = {pid for pid, e in entries.items() if e.managed_by_sync and e.status == "active"}
        if not managed:
            continue
        roster = {str(data["provider_id"]) for name in snapshot for data in ctx.store.read_all(manifest.get(name, []))}
        change = id_change(managed, roster, set(entries))
        if not change.is_rekey():
            continue
        gone = managed - roster
        records = [r for r in ctx.directory.records(collection) if r.provider_ids.get(provider) in gone]
        logger.info("provider re-key", extra={"collection": collection, "gone": change.gone, "new": change.new})
        if position == 0:
            found[0] = CandidateIndex.from_records(records)
        else:
            by_key: dict[str, list[IndexEntry]] = {}
            for record in records:
                key = classroom_key(
                    str(record.fields.get("school", "")),
                    str(record.fields.get("sis_id", "")),
                    str(record.fields.get("name", "")),
                )
                by_key.setdefault(key, []).append(record.index_entry())
            found[1] = by_key
    return found[0], found[1]


def match_roster(state: SyncState) -> MatchResult:
    """Plan the run's writes and archive candidates; write them as chunks with a manifest."""
    run, fetch = state.run_ref(), state.fetch
    if fetch is None:
        raise BadInputError("Match needs the result of Fetch")
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    store = ctx.store
    if not store.owns(fetch.snapshot_manifest_key):
        raise BadInputError("the snapshot manifest does not belong to this run")
    manifest: dict[str, list[str]] = store.get_json(fetch.snapshot_manifest_key)

    index = {c: index_by_provider_id(ctx.directory.index(c), run.provider) for c in COLLECTIONS}
    settings = ctx.state.settings_at(run.settings_version)
    # The product's accounts nobody linked to this provider yet: person matching looks among them.
    candidates = CandidateIndex.from_records(ctx.directory.unlinked("people", run.provider))
    school_names = {r.id: str(r.effective_fields().get("name", "")) for r in ctx.directory.records("schools")}
    product_schools = {
        r.id: str(r.effective_fields().get("name", ""))
        for r in ctx.directory.unlinked("schools", run.provider)
        if r.status == "active"
    }
    rekey_people, rekey_classrooms = _rekey_indexes(ctx, run.provider, index, manifest, fetch.delta)
    touched: dict[str, set[str]] = {"people": set(), "classrooms": set()}
    for data in store.read_all(manifest.get("touched", [])):
        touched.setdefault(str(data["collection"]), set()).add(str(data["provider_id"]))
    writes = store.chunk_writer("plan/writes", ctx.config.plan_chunk_records)
    lines = store.chunk_writer("plan/lines", 50_000)
    errors = store.chunk_writer("plan/errors", 50_000)
    planner = SyncPlanner(
        run.district_id,
        run.provider,
        index,
        delta=fetch.delta,
        complete=fetch.complete,
        write=lambda w: writes.write(w.to_json()),
        line=lambda line: lines.write(line.to_json()),
        error=errors.write,
        settings=settings,
        candidates=candidates,
        product_schools=product_schools,
        school_names=school_names,
        rekey_people=rekey_people,
        rekey_classrooms=rekey_classrooms,
        touched=touched,
        touched_only=fetch.touched_only,
        tonight_known=fetch.tonight_known,
    )

    def records(collection: str) -> Iterator[Any]:
        for data in store.read_all(manifest.get(collection, [])):
            yield _record.validate_python(data)

    for data in store.read_all(manifest.get("errors", [])):
        planner.record_error(RecordError.model_validate(data))
    for data in store.read_all(manifest.get("deleted", [])):
        planner.record_deleted(DeletedRecord.model_validate(data))
    archive = store.chunk_writer("plan/archive", 50_000)
    for candidate in planner.plan(records):
        archive.write(candidate.to_json())

    chunk_keys = writes.close()
    plan_manifest_key = store.put_json("plan/manifest.json", [{"chunk_key": k} for k in chunk_keys])
    summary = planner.summary.to_json() | {
        "lines_keys": lines.close(),
        "errors_keys": errors.close(),
        "archive_keys": archive.close(),
    }
    summary_key = store.put_json("plan/summary.json", summary)
    logger.info(
        "plan written",
        extra={
            "run_id": run.run_id,
            "writes": writes.count,
            "chunks": len(chunk_keys),
            "errors": errors.count,
            "settings_version": run.settings_version,
            "match_candidates": len(candidates),
        },
    )
    return MatchResult(
        plan_manifest_key=plan_manifest_key,
        plan_chunks=len(chunk_keys),
        writes=writes.count,
        summary_key=summary_key,
    )
