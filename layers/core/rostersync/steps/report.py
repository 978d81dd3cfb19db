"""Write the run's report (report.json, per-kind CSVs, report.html) and its final status."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from rostersync import metering
from rostersync.contracts import RUN_ACTIONS, ReportResult, StepError, SyncState
from rostersync.directory.keys import MATCH_BUCKETS
from rostersync.domain.records import Kind, RecordError
from rostersync.incremental import describe_run
from rostersync.observability import emit, emit_record_counts, logger
from rostersync.reports.cost import RunCost, price_run, state_transitions, sum_meters
from rostersync.reports.html import render_html
from rostersync.reports.index import RUNS_SHOWN, RunRow, SchoolRow, render_index
from rostersync.reports.model import (
    KIND_SINGULAR,
    Findings,
    LineAction,
    ReportError,
    ReportLine,
    RunStatus,
    SyncReport,
    ThresholdBreach,
    UploadFacts,
)
from rostersync.reports.readiness import RunFacts, readiness_checklist
from rostersync.reports.writer import CsvReportWriter, render_json
from rostersync.schedule import next_run
from rostersync.settings import LimitSettings, SettingsError
from rostersync.steps.context import DistrictContext
from rostersync.steps.fetch import fetch_slices, fetched_upload_time
from rostersync.steps.match import PAIR_INDEX
from rostersync.storage import RunStore, upload_name

# An AWS call refused for want of a permission: the message names the role (so the step) and the action.
_ACCESS_DENIED = re.compile(r"\((AccessDenied\w*)\) when calling the (\w+) operation: (.+)")

# Errors whose message was written for a district admin; anything else is ours to fix.
_ADMIN_ERRORS = {
    "ProviderAuthError",
    "ProviderUnavailableError",
    "ProviderRequestError",
    "ConnectionNotConfiguredError",
    "BadBundleError",
    "InvalidSettingsError",
    "SettingsVersionNotFoundError",
    "RunActionRefusedError",
}


def _kind_label(kind: Kind, n: int) -> str:
    return KIND_SINGULAR[kind] if n == 1 else kind.value.replace("_", " ")


def failure_reason(error: StepError) -> str:
    """A sentence a district admin can act on, never a stack trace."""
    try:
        message = str(json.loads(error.cause).get("errorMessage", ""))
    except (ValueError, AttributeError):
        message = ""
    if error.error in _ADMIN_ERRORS and message:
        return f"{message} Nothing was archived."
    denied = _ACCESS_DENIED.search(message)
    if denied:
        return (
            f"The sync stopped on a missing permission ({denied.group(1)} on {denied.group(2)}: {denied.group(3)}). "
            "The deployment's roles need fixing by the rostersync team; nothing was archived."
        )
    return (
        f"The sync stopped on an internal error ({error.error or 'unknown'}). Nothing was archived; "
        "the directory keeps what earlier runs wrote. The rostersync team can trace it by the run id."
    )


def _lines(store: RunStore, keys: list[str]) -> Iterator[ReportLine]:
    for line in store.read_all_lines(keys):
        yield ReportLine.model_validate_json(line)  # parsed and validated in one pass


def _limits(ctx: DistrictContext, version: int) -> LimitSettings:
    try:
        return ctx.state.settings_at(version).limits
    except SettingsError:
        return LimitSettings()


def _settings_used(ctx: DistrictContext, version: int) -> dict[str, Any] | None:
    """The values of the settings version the run recorded; None when they cannot be read (the run's
    failure reason then says why)."""
    try:
        return ctx.state.settings_at(version).model_dump(mode="json")
    except SettingsError:
        return None


def write_district_index(
    ctx: DistrictContext, report: SyncReport, summary: dict[str, Any] | None, link_seconds: int
) -> None:
    """Rewrite the district's ``index.html``: its runs (each linked to its report for ``link_seconds``), the
    next scheduled run, and its schools as the latest real run's plan saw them (kept in ``SCHOOLS``)."""
    store = ctx.store
    if summary and summary.get("schools") and not report.dry_run:
        ctx.state.put_item("SCHOOLS", {"run_id": report.run_id, "schools": summary["schools"]})
    kept = (ctx.state.get_item("SCHOOLS") or {}).get("schools") or {}
    schools = [
        SchoolRow(
            name=str(counts.get("name") or school),
            **{k: int(counts.get(k, 0)) for k in ("students", "teachers", "classrooms", "changed", "leaving")},
        )
        for school, counts in kept.items()
    ]
    records = sorted(ctx.state.runs(), key=lambda r: str(r.get("started_at", "")), reverse=True)[:RUNS_SHOWN]
    runs = [
        RunRow.from_record(
            record, store.link(str(record["html_key"]), link_seconds) if _linkable(store, record) else ""
        )
        for record in records
    ]
    enabled = ctx.state.enabled() is not None
    try:
        upcoming = next_run(ctx.state.current_settings()[0].schedule, datetime.now(UTC)) if enabled else None
    except SettingsError:  # settings that no longer validate: the next run is not known (the run said why)
        upcoming = None
    page = render_index(
        report.district_id,
        report.district_name,
        report.timezone,
        runs,
        schools,
        upcoming.isoformat() if upcoming else None,
        enabled,
    )
    store.put_district("index.html", page, "text/html; charset=utf-8")


def _linkable(store: RunStore, record: dict[str, Any]) -> bool:
    key = str(record.get("html_key") or "")
    return key.startswith(store.district_prefix) and ".." not in key


def _timezone(settings: dict[str, Any] | None) -> str:
    """The district's time zone (settings ``schedule.timezone``), for the times report.html shows."""
    schedule = (settings or {}).get("schedule") or {}
    return str(schedule.get("timezone") or "UTC")


def _run_cost(state: SyncState, store: RunStore, failed: bool) -> RunCost | None:
    """The run's meters (``meter/…``, one per step and per plan chunk) summed and priced, with Write report's
    own figures so far. Steps that did not run have no meter; a meter that cannot be read is left out."""
    run = state.run_ref()
    action = run.trigger in RUN_ACTIONS
    slices = {} if action else fetch_slices(store)
    partitions = state.matching.partitions if state.matching and not action else 0
    if action:
        planned = [metering.meter_name("plan_reversal", None)]
    else:
        planned = [*metering.fetch_meter_names(slices), *metering.match_meter_names(partitions)]
    names = [metering.meter_name("start_run", None), *planned]
    chunks = 0
    if state.match and not run.dry_run and not failed:
        try:
            manifest = store.get_json(state.match.plan_manifest_key)
        except ClientError:
            manifest = []
        chunk_keys = [str(item["chunk_key"]) for item in manifest if isinstance(item, dict) and "chunk_key" in item]
        chunks = len(chunk_keys)
        names += [metering.meter_name("upsert_chunk", {"chunk_key": key}) for key in chunk_keys]
        if not action and state.fetch and state.fetch.complete:
            names.append(metering.meter_name("archive_unmanaged", None))
    meters: list[dict[str, Any]] = []
    for name in names:
        try:
            meters.append(store.get_json(store.key(name)))
        except ClientError:  # the step never ran this far, or its meter was not kept
            continue
    own = metering.current.get()
    if own is not None:
        meters.append(own.so_far())
    if not meters:
        return None
    transitions = state_transitions(
        action=action,
        dry_run=run.dry_run,
        chunks=chunks,
        fetch_complete=bool(state.fetch and state.fetch.complete),
        failed=failed,
        fetch_lists=len(slices),
        fetch_slices=sum(slices.values()),
        match_partitions=partitions,
    )
    return price_run(sum_meters(meters), transitions)


def write_report(state: SyncState) -> ReportResult:
    """Assemble the report from the run's artefacts, upload it, and record the run's final status.

    In a self-check (``dry_run``) the counts are what the sync would do, ``would_archive`` included.
    Every run's report carries Match's findings and the readiness checklist (``reports.readiness``),
    computed from the same summary, fetch outcome, errors and threshold checks as the counts.
    """
    run = state.run_ref()
    ctx = DistrictContext.for_run(run.district_id, run.run_id)
    store = ctx.store
    summary = store.get_json(state.match.summary_key) if state.match else None
    facts = RunFacts.from_summary(
        summary,
        district_id=run.district_id,
        dry_run=run.dry_run,
        fetch_complete=None if state.fetch is None else state.fetch.complete,
        fetch_problems=state.fetch.problems if state.fetch else (),
        fetched_records=sum(state.fetch.records.values()) if state.fetch else 0,
        limit_percent=run.deletion_threshold_percent,
    )
    if summary and "findings" in summary and facts.findings is None:
        # Ours to fix; the report goes on without them (the checklist says "not reported"). Ids only in logs.
        logger.warning("plan findings unreadable", extra={"run_id": run.run_id})
    counts = {kind: planned.model_copy() for kind, planned in facts.counts.items()}
    notes: list[str] = []
    threshold: dict[Kind, ThresholdBreach] = {}
    for kind, check in facts.threshold.items():
        if check.exceeded:
            threshold[kind] = ThresholdBreach(
                would_archive=check.would_archive,
                managed=check.managed,
                percent=round(check.percent, 1),
                limit_percent=check.limit_percent,
            )
            counts[kind].would_archive = check.would_archive
        elif run.dry_run:
            counts[kind].would_archive = check.would_archive
    held_schools = (summary or {}).get("held_schools") or {}
    for school_id, count in facts.emptied_schools.items():
        school = held_schools.get(school_id) or {}
        name = f"{school['name']} ({school_id})" if school.get("name") else school_id
        held = {Kind(k): int(v) for k, v in (school.get("held") or {}).items() if int(v)}
        for kind, n in held.items():
            counts[kind].would_archive += n
        what = ", ".join(f"{n:,} {_kind_label(kind, n)}" for kind, n in held.items()) or f"{count:,} students"
        notes.append(
            f"The roster would remove every student of school {name} ({count:,} students): that looks like a "
            f"broken export, so nothing of that school was archived (held back: {what}). Check the export; if "
            "the school really closed, archive it by hand."
        )
    held_unreadable = {Kind(k): int(v) for k, v in ((summary or {}).get("held_unreadable") or {}).items() if v}
    for kind, n in held_unreadable.items():
        counts[kind].would_archive += n
    if held_unreadable:
        what = ", ".join(f"{n:,} {_kind_label(kind, n)}" for kind, n in held_unreadable.items())
        notes.append(
            f"Some roster records could not be read (see errors.csv: the file, the line and the fix), so the "
            f"records of their kind that look absent may still be in the roster: nothing of them was archived "
            f"(held back: {what})."
        )
    rekey = (summary or {}).get("rekey") or {}
    if rekey:
        review = int(rekey.get("needs_review", 0))
        notes.append(
            f"The provider changed the ids of this district's records (a re-key): {int(rekey.get('relinked', 0)):,} "
            "records were linked to their existing records by their district ids (SIS id, student number, "
            "email), none was created twice"
            + (
                f"; {review:,} could not be told apart and need review: nothing was written for them and nothing "
                "of their kind was archived (lines marked 'needs review' in the CSV files)."
                if review
                else "."
            )
        )
    if state.archive:
        for kind, archived in state.archive.archived.items():
            counts[kind].archived = archived
        if state.archive.skipped_reason:
            notes.append(state.archive.skipped_reason)
    sync_section, sync_notes = describe_run(state.fetch, summary)
    notes.extend(sync_notes)
    if state.fetch and not state.fetch.complete:
        notes.append(
            "Archiving skipped: the roster fetch did not complete ("
            + "; ".join(state.fetch.problems)
            + "). Nobody was archived; the next complete sync will catch up."
        )
    notes.extend(str(note) for note in (summary or {}).get("notes") or [])  # an undo's or approval's
    kept = {str(k): int(v) for k, v in ((summary or {}).get("kept_by_admin") or {}).items() if v}
    if kept:
        what = ", ".join(f"{n:,} {_kind_label(Kind(k), n)}" for k, n in kept.items())
        notes.append(
            f"Kept, not archived, although no longer in the roster: {what}, whose archiving the admin discarded "
            "(rostersync runs discard); lines marked skipped."
        )
    if run.dry_run_reason:
        notes.append(run.dry_run_reason)
    if run.dry_run and run.trigger in RUN_ACTIONS:
        notes.append(f"Preview: nothing was written. The counts show what the {run.trigger} would do.")
    elif run.dry_run:
        notes.append("Self-check: nothing was written. The counts show what the first sync would do.")
    notes.extend(breach.note(kind) for kind, breach in threshold.items())

    csv = CsvReportWriter(
        store.report_sink(ctx.config.report_part_bytes),
        max_error_lines=_limits(ctx, run.settings_version).max_error_lines,
        buffer_bytes=ctx.config.report_buffer_bytes,
    )
    with csv:
        if summary:
            csv.add_all(_lines(store, summary["lines_keys"]))
            if run.dry_run:
                csv.add_all(
                    ReportLine(
                        kind=Kind(d["kind"]),
                        action=LineAction.WOULD_ARCHIVE,
                        id=d["id"],
                        provider_id=d["provider_id"],
                        name=str(d.get("name", "")),
                        sis_id=str(d.get("sis_id", "")),
                        school=str(d.get("school", "")),
                        grade=str(d.get("grade", "")),
                        reason="no longer in the roster",
                    )
                    for d in store.read_all(summary["archive_keys"])
                )
            for data in store.read_all(summary["errors_keys"]):
                csv.add_error(ReportError.from_record_error(RecordError.model_validate(data)))
        if state.archive:
            csv.add_all(_lines(store, state.archive.lines_keys))
        files = {name: str(key) for name, key in csv.finish().items()}

    if state.error is not None:
        status = RunStatus.FAILED
    elif rekey.get("needs_review") and not run.dry_run:
        status = RunStatus.NEEDS_REVIEW
    elif (threshold or facts.emptied_schools) and not run.dry_run:
        status = RunStatus.THRESHOLD_EXCEEDED
    elif csv.errors_total or (state.fetch and not state.fetch.complete):
        status = RunStatus.SUCCEEDED_WITH_ERRORS
    else:
        status = RunStatus.SUCCEEDED

    reason = failure_reason(state.error) if state.error else None
    readiness = readiness_checklist(replace(facts, counts=counts, errors_total=csv.errors_total, failure_reason=reason))
    if run.trigger in RUN_ACTIONS:  # no roster was read: a readiness checklist would only say so
        readiness = []
    hold = None
    if status == RunStatus.THRESHOLD_EXCEEDED and state.archive and state.archive.held_keys:
        hold = {
            "state": "held",
            "keys": state.archive.held_keys,
            "counts": {k.value: n for k, n in state.archive.held.items()},
        }
        undecided = [
            r["run_id"]
            for r in ctx.state.runs()
            if (r.get("hold") or {}).get("state") == "held" and r.get("run_id") != run.run_id
        ]
        notes.append(
            f"The held records wait for a decision: `rostersync runs approve {run.run_id} --district "
            f"{run.district_id}` archives exactly them, `rostersync runs discard {run.run_id} --district "
            f"{run.district_id}` keeps them (later runs then leave them alone)."
            + (
                f" Earlier runs held archives nobody decided on ({', '.join(sorted(undecided))}): decide on this "
                "run's, the newest."
                if undecided
                else ""
            )
        )

    district = ctx.state.get_item("DISTRICT") or {}
    settings_used = _settings_used(ctx, run.settings_version)
    finished_at = datetime.now(UTC)
    link_seconds = ctx.config.report_link_seconds
    report = SyncReport(
        district_id=run.district_id,
        district_name=str(district.get("name", "")),
        run_id=run.run_id,
        provider=run.provider or "unknown",
        trigger=run.trigger,
        dry_run=run.dry_run,
        status=status,
        started_at=run.started_at,
        finished_at=finished_at.isoformat(timespec="seconds"),
        failure_reason=reason,
        notes=notes,
        counts=counts,
        threshold=threshold,
        settings_version=run.settings_version,
        settings=settings_used,
        files=files,
        errors_total=csv.errors_total,
        errors=csv.first_errors,
        findings=facts.findings or Findings(),
        readiness=readiness,
        lists=csv.lists,
        list_totals=csv.list_totals,
        timezone=_timezone(settings_used),
        links_expire_at=(finished_at + timedelta(seconds=link_seconds)).isoformat(timespec="seconds"),
        sync=sync_section,
        cost=_run_cost(state, store, failed=state.error is not None),
        upload=UploadFacts(name=upload_name(run.district_id, run.bundle_key), uploaded_at=fetched_upload_time(store))
        if run.bundle_key
        else None,
    )
    html_key = store.key("report/report.html")
    report_key = store.key("report/report.json")
    index_key = store.district_key("index.html")
    report.files.update({"report.html": html_key, "report.json": report_key, "index.html": index_key})
    # Opened from S3 by a presigned link, report.html cannot reach its files by their names (each object
    # needs its own signature): it links each by a presigned link of the same lifetime as the page's.
    links = {name: store.link(key, link_seconds) for name, key in report.files.items() if name != "report.html"}
    store.put_bytes("report/report.html", render_html(report, links), "text/html; charset=utf-8")
    store.put_bytes("report/report.json", render_json(report), "application/json")
    ctx.state.update_run(
        run.run_id,
        status=status.value,
        finished_at=report.finished_at,
        report_key=report_key,
        html_key=html_key,
        counts={k.value: c.model_dump() for k, c in counts.items()},
        failure_reason=report.failure_reason,
        hold=hold,
        upload=report.upload.model_dump() if report.upload else None,
    )
    write_district_index(ctx, report, summary, link_seconds)
    if summary and summary.get("pair_index_ready"):
        # Match's partitions read the table and found every enrollment and guardian link carrying its match
        # bucket (every write since does too): the district's next runs read their shares from the index.
        ctx.state.put_item(PAIR_INDEX, {"buckets": MATCH_BUCKETS, "run_id": run.run_id, "at": report.finished_at})
    if state.fetch and state.fetch.cursor and status != RunStatus.FAILED and not run.dry_run:
        # The next delta starts where this one ended, only once this run's changes are written.
        ctx.state.put_item(f"CURSOR#{run.provider}", {"cursor": state.fetch.cursor, "run_id": run.run_id})
    if state.fetch and state.fetch.incremental_state and status != RunStatus.FAILED and not run.dry_run:
        ctx.state.put_item(f"INCREMENTAL#{run.provider}", state.fetch.incremental_state)
    if not run.dry_run:  # what the run did, per kind and action; a self-check's "would" counts are not
        emit_record_counts("write_report", {k.value: c.model_dump() for k, c in counts.items()})
        emit("Runs", 1, step="write_report", status=status.value)
    logger.info(
        "report written",
        extra={"run_id": run.run_id, "status": status.value, "ready": report.ready, "to_fix": len(report.to_fix)},
    )
    return ReportResult(status=status.value, report_key=report_key, html_key=html_key)
