"""rostersync cleanup archive-unmanaged|undo and rostersync duplicates list|merge|undo: the clean-up after
the first sync (admin steps 8 and 9). The rules are the runtime's (``rostersync.cleanup``); this module
reads the directory, prints, and starts the clean-up state machine.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rostersync.cleanup.batches import new_batch_id, undo_batch, write_plan
from rostersync.cleanup.duplicates import DuplicatePair, find_duplicates
from rostersync.cleanup.merge import MergeChangedError, MergePlan, MergeRefusedError, MergeService
from rostersync.cleanup.unmanaged import (
    CleanupRefusedError,
    confirmation_needed,
    preview_changes,
    select_unmanaged_students,
    synced_school_ids,
)
from rostersync.directory.history import DirectoryItems
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync.matching.people import normal_name
from rostersync.providers.registry import provider_name
from rostersync_tools.cli.connect import StackHandle, add_stack_arguments, connect_from_args
from rostersync_tools.cli.inputs import UsageError
from rostersync_tools.cli.run_commands import RunStillRunningError, require_district, wait_for_execution

SYNCED_STATUSES = {"succeeded", "succeeded_with_errors", "threshold_exceeded", "needs_review"}


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


# -- reading the district ----------------------------------------------------------------------------------


class DistrictView:
    """What a clean-up reads of one district (through the CLI's stack handle)."""

    def __init__(self, handle: StackHandle, district_id: str) -> None:
        require_district(handle, district_id)
        self.handle = handle
        self.district_id = district_id
        self.directory = handle.directory(district_id)
        self.state = handle.state(district_id)
        self.bucket = handle.resources.sync_bucket
        self.s3 = handle.client("s3")

    def provider(self) -> str:
        connection = self.state.get_item("CONNECTION")
        if not connection:
            raise UsageError(f"--district {self.district_id}: no provider connected (rostersync connect)")
        return provider_name(connection)

    def has_synced(self) -> bool:
        return any(r.get("status") in SYNCED_STATUSES and not r.get("dry_run") for r in self.state.runs())

    def schools(self) -> dict[str, DirectoryRecord]:
        return {r.id: r for r in self.directory.records("schools")}

    def people(self) -> list[DirectoryRecord]:
        return list(self.directory.records("people"))

    def items(self) -> DirectoryItems:
        return DirectoryItems(
            self.handle.client("dynamodb"),
            self.handle.resources.directory_table,
            self.district_id,
            self.handle.resources.sync_state_table,
        )

    def merges(self) -> MergeService:
        return MergeService(
            self.items(),
            self.handle.client("dynamodb"),
            self.handle.resources.sync_state_table,
            self.s3,
            self.bucket,
        )


# -- cleanup archive-unmanaged ------------------------------------------------------------------------------


def _preview_key(district_id: str, scope: str, schools: list[str], students: list[str]) -> str:
    digest = hashlib.sha256(json.dumps([scope, schools, sorted(students)]).encode()).hexdigest()[:16]
    return f"cleanups/{district_id}/previews/{digest}.json"


def _command(args: argparse.Namespace, extra: str = "") -> str:
    scope = "--scope district" if args.scope == "district" else " ".join(f"--school {s}" for s in args.school)
    named = "".join(f" --student {s}" for s in args.student or [])
    return f"rostersync cleanup archive-unmanaged --district {args.district} {scope}{named}{extra}"


def run_archive_unmanaged(args: argparse.Namespace) -> int:
    """Preview (default) or confirm the archiving of students not in the sync."""
    if bool(args.scope) == bool(args.school):
        raise UsageError("cleanup archive-unmanaged: give --scope district or one or more --school SCHOOL_ID")
    if args.scope and args.scope != "district":
        raise UsageError(f"--scope {args.scope}: only 'district' (for schools, use --school SCHOOL_ID)")
    if args.yes_archive is not None and not args.confirm:
        raise UsageError("--yes-archive goes with --confirm")
    view = DistrictView(connect_from_args(args), args.district)
    provider = view.provider()
    if not view.has_synced():
        raise UsageError(
            f"--district {args.district}: no sync has run yet, so every student would look 'not in the sync'; "
            "run the first sync, then clean up"
        )
    settings, _ = view.state.current_settings()
    schools = view.schools()
    synced = synced_school_ids(schools.values(), provider, settings.schools_in_scope)
    try:
        selection = select_unmanaged_students(
            args.district,
            view.people(),
            schools,
            synced,
            None if args.scope else list(args.school),
            list(args.student or []) or None,
        )
    except CleanupRefusedError as exc:
        raise UsageError(str(exc)) from exc
    preview = selection.to_json()
    key = _preview_key(args.district, args.scope or "schools", list(args.school or []), list(args.student or []))
    if not args.confirm:
        _print_preview(selection, args)
        view.s3.put_object(Bucket=view.bucket, Key=key, Body=json.dumps(preview).encode())
        if args.out:
            _write_preview(Path(args.out), preview)
        if selection.total:
            needed = confirmation_needed(selection, settings.cleanup)
            extra = f" --confirm --yes-archive {selection.total}" if needed else " --confirm"
            print(f"\nNothing was written. To archive exactly these {selection.total}: {_command(args, extra)}")
            if needed:
                print(f"  (over the clean-up threshold: {needed})")
        return 0
    try:
        previewed = json.loads(view.s3.get_object(Bucket=view.bucket, Key=key)["Body"].read())
    except ClientError as exc:
        raise UsageError(f"no preview of this clean-up: run it first without --confirm ({_command(args)})") from exc
    changes = preview_changes(previewed, selection)
    if changes:
        print(f"The directory changed since the preview; nothing was archived. {len(changes)} change(s):")
        for line in changes[:50]:
            print(f"  {line}")
        print(f"Preview it again: {_command(args)}")
        return 1
    if not selection.total:
        print("Nothing to archive: every active student in scope is sync-managed.")
        return 0
    needed = confirmation_needed(selection, settings.cleanup)
    if needed and args.yes_archive != selection.total:
        raise UsageError(
            f"this clean-up archives {selection.total} students ({needed}): confirm with --yes-archive "
            f"{selection.total}" + (f" (not {args.yes_archive})" if args.yes_archive is not None else "")
        )
    return _apply(view, args, preview, selection.total)


def _print_preview(selection: Any, args: argparse.Namespace) -> None:
    print(f"Students not in the sync, district {selection.district_id} (preview: nothing is written)")
    for school in selection.schools:
        print(
            f"  {school.school_name} ({school.school_id or '-'}): {len(school.to_archive)} to archive of "
            f"{school.active_students} active; {school.kept_sync_managed} sync-managed kept"
        )
        for c in school.to_archive[: args.limit]:
            print(f"    {c.id:<28} {c.name:<30} {c.reason}")
        if len(school.to_archive) > args.limit:
            print(f"    … {len(school.to_archive) - args.limit} more (--out DIR lists them all)")
    if selection.named_but_sync_managed:
        named = ", ".join(selection.named_but_sync_managed)
        print(
            f"  {len(selection.named_but_sync_managed)} named student(s) are sync-managed and are never archived "
            f"this way: {named}"
        )
    print(f"Total: {selection.total} to archive; nothing is deleted; people with other roles are untouched.")


def _write_preview(folder: Path, preview: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preview.json").write_text(json.dumps(preview, indent=1, ensure_ascii=False), encoding="utf-8")
    with (folder / "preview.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["school_id", "school_name", "student_id", "name", "reason"])
        for school in preview["schools"]:
            for c in school["to_archive"]:
                writer.writerow([school["school_id"], school["school_name"], c["id"], c["name"], c["reason"]])
    print(f"  preview written to {folder}/preview.json and preview.csv")


def _apply(view: DistrictView, args: argparse.Namespace, preview: dict[str, Any], total: int) -> int:
    arn = view.handle.resources.cleanup_state_machine_arn
    if not arn:
        raise UsageError("this stack has no clean-up state machine (deploy the current template)")
    batch_id = new_batch_id()
    manifest_key = write_plan(view.s3, view.bucket, args.district, batch_id, preview)
    view.state.put_item(
        f"CLEANUP#{batch_id}",
        {
            "batch_id": batch_id,
            "status": "running",
            "scope": preview["scope"],
            "schools": [s["school_id"] for s in preview["schools"] if s["to_archive"]],
            "planned": total,
            "by": _by(args),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fingerprint": preview["fingerprint"],
            "manifest_key": manifest_key,
        },
    )
    payload = json.dumps({"district_id": args.district, "batch_id": batch_id, "manifest_key": manifest_key})
    execution = view.handle.client("stepfunctions").start_execution(stateMachineArn=arn, input=payload, name=batch_id)
    print(f"Clean-up {batch_id} started ({total} students, school by school); waiting…", flush=True)
    try:
        wait_for_execution(view.handle, execution["executionArn"], timeout=args.timeout)
    except RunStillRunningError as exc:
        print(f"{exc}; it goes on: its report will be under cleanups/{args.district}/{batch_id}/report/")
        return 1
    record = view.state.get_item(f"CLEANUP#{batch_id}") or {}
    print(
        f"Clean-up {batch_id}: {record.get('status', '?')}; archived {record.get('archived', 0)}, "
        f"skipped {record.get('skipped', 0)} (changed since the preview)"
    )
    if record.get("report_key"):
        html_key = str(record["report_key"]).replace("report.json", "report.html")
        link = view.s3.generate_presigned_url("get_object", Params={"Bucket": view.bucket, "Key": html_key})
        print(f"  report: {link}")
    print(f"  undo: rostersync cleanup undo {batch_id} --district {args.district}")
    return 0 if record.get("status") == "succeeded" else 1


def run_cleanup_undo(args: argparse.Namespace) -> int:
    view = DistrictView(connect_from_args(args), args.district)
    record = view.state.get_item(f"CLEANUP#{args.batch}")
    if record is None:
        raise UsageError(f"no clean-up {args.batch} in district {args.district}")
    if record.get("status") == "undone":
        print(f"Clean-up {args.batch} was undone already ({record.get('undone_at')}); nothing changed.")
        return 0
    restored, changed = undo_batch(
        args.district,
        args.batch,
        view.handle.client("dynamodb"),
        view.handle.resources.directory_table,
        view.s3,
        view.bucket,
    )
    record.update(
        {
            "status": "undone",
            "undone_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "undone_by": _by(args),
            "restored": len(restored),
            "not_restored": changed,
        }
    )
    record.pop("pk", None)
    record.pop("sk", None)
    view.state.put_item(f"CLEANUP#{args.batch}", record)
    print(f"Clean-up {args.batch} undone: {len(restored)} student(s) restored.")
    if changed:
        print(f"  {len(changed)} not restored: a later sync or an admin changed them since (left as they are):")
        for line in changed[:50]:
            print(f"    {line}")
    return 0


# -- duplicates -----------------------------------------------------------------------------------------------


def _pairs(view: DistrictView, school: str | None) -> list[DuplicatePair]:
    people = view.people()
    guardian_names = {
        p.id: normal_name(p.effective_fields().get("given_name"), p.effective_fields().get("family_name"))
        for p in people
        if "guardian" in (p.fields.get("roles") or [])
    }
    students = [p for p in people if p.kind == Kind.STUDENTS]
    return find_duplicates(students, view.directory.records("guardian_links"), guardian_names, school)


def run_duplicates_list(args: argparse.Namespace) -> int:
    view = DistrictView(connect_from_args(args), args.district)
    if args.school and args.school not in view.schools():
        raise UsageError(f"--school {args.school}: no such school in district {args.district}")
    pairs = _pairs(view, args.school)
    print(f"Possible duplicate students in district {args.district}: {len(pairs)}")
    for p in pairs:
        keep = f"{p.keep} {p.keep_name}" + (" (sync-managed)" if p.keep_managed else " (hand-made)")
        merge = f"{p.merge} {p.merge_name}" + (" (sync-managed)" if p.merge_managed else " (hand-made)")
        print(f"  {p.confidence:<6} {p.score:>3}  keep {keep}  ←  merge {merge}")
        print(f"              {'; '.join(p.reasons)}")
    if args.out:
        with Path(args.out).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["keep", "merge", "confirm", "confidence", "score", "reasons", "keep_name", "merge_name"])
            for p in pairs:
                writer.writerow(
                    [p.keep, p.merge, "", p.confidence, p.score, "; ".join(p.reasons), p.keep_name, p.merge_name]
                )
        print(
            f"Written to {args.out}: put yes in the confirm column of the pairs to merge, then "
            f"rostersync duplicates merge --district {args.district} --file {args.out}"
        )
    elif pairs:
        print(
            f"Merge one: rostersync duplicates merge --district {args.district} --keep KEEP --merge MERGE [--preview]"
        )
    return 0


def _reviewed_pairs(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"--file {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"keep", "merge"} <= set(reader.fieldnames):
        raise UsageError(f"--file {path}: needs the columns keep and merge (as duplicates list --out writes)")
    pairs = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise UsageError(f"--file {path}, line {line}: wrong number of cells")
        confirm = (row.get("confirm") or "").strip().casefold()
        if "confirm" in row and confirm not in ("yes", "y", "no", "n", ""):
            raise UsageError(f"--file {path}, line {line}: confirm is {row['confirm']!r}: yes, no or empty")
        if "confirm" in row and confirm not in ("yes", "y"):
            continue
        keep, merge = (row.get("keep") or "").strip(), (row.get("merge") or "").strip()
        if not keep or not merge:
            raise UsageError(f"--file {path}, line {line}: keep and merge are both needed")
        pairs.append((keep, merge))
    return pairs


def _describe(plan: MergePlan) -> str:
    parts = []
    for collection, counts in sorted(plan.moved().items()):
        label = collection.replace("_", " ")
        parts.append(f"{label}: " + ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return "; ".join(parts) or "no history to move"


def run_duplicates_merge(args: argparse.Namespace) -> int:
    if args.file and (args.keep or args.merge):
        raise UsageError("duplicates merge: --file, or --keep with --merge, not both")
    if not args.file and not (args.keep and args.merge):
        raise UsageError("duplicates merge: give --keep A --merge B, or --file reviewed.csv")
    pairs = _reviewed_pairs(Path(args.file)) if args.file else [(args.keep, args.merge)]
    view = DistrictView(connect_from_args(args), args.district)
    service = view.merges()
    by = _by(args)
    # Every pair is checked before anything is written: one bad pair and nothing is merged. Each merge is
    # then read and planned right before it is written (an earlier one may have moved shared items).
    seen: set[str] = set()
    for keep, merge in pairs:
        try:
            service.check(keep, merge)
        except MergeRefusedError as exc:
            raise UsageError(str(exc)) from exc
        if merge in seen:
            raise UsageError(f"--merge {merge}: named in two pairs")
        seen.add(merge)
    for keep, merge in pairs:
        try:
            plan = service.prepare(keep, merge, by)
        except MergeRefusedError as exc:
            print(f"rostersync: {exc}")
            return 1
        if isinstance(plan, str):
            print(f"{merge} is merged into {keep} already (merge {plan}): nothing changed.")
            continue
        swapped = f" (survivor: {plan.keep}, the sync-managed one)" if plan.swapped else ""
        head = "Would merge" if args.preview else "Merged"
        if not args.preview:
            try:
                service.apply(plan)
            except MergeChangedError as exc:
                print(f"rostersync: {exc}")
                return 1
        print(f"{head} {plan.merged} into {plan.keep}{swapped}: {_describe(plan)}")
        for conflict in plan.conflicts:
            print(
                f"  attribute {conflict['key']}: kept {conflict['kept']!r} (survivor's), "
                f"{conflict['dropped']!r} kept in the audit"
            )
        if not args.preview:
            print(
                f"  merge {plan.merge_id}; undo: rostersync duplicates undo {plan.merge_id} --district {args.district}"
            )
    if args.preview:
        print("Preview: nothing was written.")
    return 0


def run_duplicates_undo(args: argparse.Namespace) -> int:
    view = DistrictView(connect_from_args(args), args.district)
    try:
        plan = view.merges().undo(args.merge_id, _by(args))
    except MergeRefusedError as exc:
        raise UsageError(str(exc)) from exc
    except MergeChangedError as exc:
        print(f"rostersync: {exc}")
        for line in exc.changed[:50]:
            print(f"  changed since: {line}")
        return 1
    print(f"Merge {args.merge_id} undone: {plan.merged} is active again with its {len(plan.changes) - 1} item(s).")
    return 0


# -- the parser -----------------------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``cleanup`` (archive-unmanaged, undo) and ``duplicates`` (list, merge, undo)."""
    cleanup = commands.add_parser("cleanup", help="after the first sync: archive students who are not in the sync")
    steps = cleanup.add_subparsers(dest="cleanup_command", required=True)
    archive = steps.add_parser("archive-unmanaged", help="archive active students in scope who are not sync-managed")
    archive.add_argument("--district", required=True)
    archive.add_argument(
        "--scope", metavar="district", help="the whole district (refused while some schools do not sync)"
    )
    archive.add_argument(
        "--school", action="append", metavar="SCHOOL_ID", help="a school (repeatable: school by school)"
    )
    archive.add_argument("--student", action="append", metavar="PERSON_ID", help="only these students (repeatable)")
    mode = archive.add_mutually_exclusive_group()
    mode.add_argument("--preview", action="store_true", help="list who would be archived and why (the default)")
    mode.add_argument("--confirm", action="store_true", help="archive exactly what the preview listed")
    archive.add_argument("--yes-archive", type=int, metavar="N", help="over the threshold: the number to archive")
    archive.add_argument("--out", metavar="DIR", help="write preview.json and preview.csv there")
    archive.add_argument("--limit", type=int, default=20, help="students listed per school (default 20)")
    archive.add_argument("--by", help="who does it (default: your user name)")
    archive.add_argument("--timeout", type=float, default=900, help="seconds to wait for the clean-up")
    add_stack_arguments(archive)
    archive.set_defaults(handler=run_archive_unmanaged)
    undo = steps.add_parser("undo", help="restore exactly the students a clean-up batch archived")
    undo.add_argument("batch", metavar="BATCH")
    undo.add_argument("--district", required=True)
    undo.add_argument("--by")
    add_stack_arguments(undo)
    undo.set_defaults(handler=run_cleanup_undo)

    duplicates = commands.add_parser("duplicates", help="find and merge duplicate students with their history")
    sub = duplicates.add_subparsers(dest="duplicates_command", required=True)
    listing = sub.add_parser("list", help="candidate pairs scored by their evidence")
    listing.add_argument("--district", required=True)
    listing.add_argument("--school", metavar="SCHOOL_ID")
    listing.add_argument("--out", metavar="FILE", help="a CSV to review (confirm column) and pass to merge --file")
    add_stack_arguments(listing)
    listing.set_defaults(handler=run_duplicates_list)
    merge = sub.add_parser("merge", help="merge a student into another, moving their history")
    merge.add_argument("--district", required=True)
    merge.add_argument("--keep", metavar="PERSON_ID")
    merge.add_argument("--merge", metavar="PERSON_ID")
    merge.add_argument("--file", metavar="CSV", help="reviewed pairs (duplicates list --out, confirm column)")
    merge.add_argument("--preview", action="store_true", help="say what would move; write nothing")
    merge.add_argument("--by")
    add_stack_arguments(merge)
    merge.set_defaults(handler=run_duplicates_merge)
    undo_merge = sub.add_parser("undo", help="put a merge back exactly")
    undo_merge.add_argument("merge_id", metavar="MERGE_ID")
    undo_merge.add_argument("--district", required=True)
    undo_merge.add_argument("--by")
    add_stack_arguments(undo_merge)
    undo_merge.set_defaults(handler=run_duplicates_undo)
