"""rostersync connect, import-product, export, self-check, sync, enable, runs, report: set a district up and run it.

Every command reaches the stack through ``connect_from_args`` and starts runs the way AWS does
(StartExecution with a name, or the product's "Sync Enabled" event through PutEvents), so the same
commands drive the embedded stack (``--endpoint``) and a deployed one (``--stack``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rostersync.config import RuntimeConfig
from rostersync.domain.ids import district_id_problem
from rostersync_tools.cli.connect import StackHandle, add_stack_arguments, connect_from_args
from rostersync_tools.cli.inputs import UsageError, check_out_folder
from rostersync_tools.cli.lifecycle_commands import run_action, who

COUNT_COLUMNS = ("created", "updated", "linked", "restored", "archived", "unchanged", "skipped", "errors")
PROVIDERS = ("clever", "oneroster-rest", "oneroster-csv")
WAIT_SECONDS = 3600
PROGRESS_SECONDS = 15.0
POLL_SECONDS = 1.0
ENABLE_FIND_SECONDS = 60.0
CLOCK_SKEW_SECONDS = 5

Sleep = Callable[[float], None]


class RunStillRunningError(Exception):
    """The wait ran out before the run ended (the run goes on; ``runs`` and ``report`` find it later)."""


# -- printing a run (shared by demo, self-check, sync, report) ---------------------------------------------


def counts_table(report: dict[str, Any]) -> str:
    """The per-kind counts; a self-check's archive column shows what it would archive."""
    counts: dict[str, dict[str, int]] = report.get("counts", {})
    held = any(c.get("would_archive", 0) for c in counts.values())
    columns = list(COUNT_COLUMNS)
    if report.get("dry_run"):
        columns[columns.index("archived")] = "would_archive"
    elif held:
        columns.insert(columns.index("archived") + 1, "would_archive")
    rows = [("", *columns)]
    for kind, numbers in counts.items():
        rows.append((kind, *(f"{numbers.get(c, 0):,}" for c in columns)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def readiness_lines(report: dict[str, Any]) -> list[str]:
    """The readiness checklist (``readiness``, ``ready``), when the report has one: every check for a
    self-check; for a real run only what needs a look (the checks are worded for the self-check)."""
    checks = report.get("readiness")
    if not checks:
        return []
    failing = sum(1 for c in checks if c.get("status") == "fail")
    if report.get("dry_run", True):
        ready = report.get("ready", failing == 0)
        verdict = "ready for the first sync" if ready else f"not ready ({failing} to fix)"
        lines = [f"  Readiness: {verdict}"]
    else:
        checks = [c for c in checks if c.get("status") != "pass"]
        if not checks:
            return []
        lines = ["  To review:"]
    for check in checks:
        status = str(check.get("status", "?"))
        mark = {"pass": "pass", "warn": "WARN", "fail": "FAIL"}.get(status, status)
        detail = f": {check['detail']}" if check.get("detail") else ""
        lines.append(f"    [{mark}] {check.get('check', '')}{detail}")
        if status != "pass" and check.get("action"):
            lines.append(f"           → {check['action']}")
    return lines


def print_run(report: dict[str, Any], heading: str, link: str | None = None, out: Any = None) -> None:
    """A run's summary: heading, counts, notes, the first errors, readiness and the report link."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out)

    say(heading)
    say(counts_table(report))
    for note in report.get("notes", []):
        say(f"  note: {note}")
    for error in report.get("errors", [])[:5]:
        say(f"  error: {error['kind']} {error['provider_id']}: {error['reason']}")
    if report.get("errors_total", 0) > 5:
        say(f"  … {report['errors_total'] - 5} more errors in errors.csv")
    if report.get("failure_reason"):
        say(f"  failed: {report['failure_reason']}")
    for line in readiness_lines(report):
        say(line)
    if link:
        say(f"  report: {link}")


def exit_code(report: dict[str, Any]) -> int:
    """0 when the run did what it should (a self-check: the district is ready), 1 otherwise."""
    if report.get("status") in ("failed", "threshold_exceeded", "needs_review"):
        return 1
    if report.get("trigger") in ("undo", "approve"):  # no roster read: no readiness checklist to pass
        return 0
    if report.get("ready") is False or any(c.get("status") == "fail" for c in report.get("readiness") or []):
        return 1
    return 0


def download_report(s3: Any, bucket: str, report: dict[str, Any], folder: Path) -> Path:
    """report.json, report.html and the CSVs, side by side; the copy of report.html links its CSVs by name
    (the presigned links it was written with would expire). Returns the local report.html."""
    from rostersync.reports.html import localise_links

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    for name, key in report.get("files", {}).items():
        if name != "report.json":
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if name == "report.html":
                body = localise_links(body)
            (folder / Path(name).name).write_bytes(body)
    return folder / "report.html"


def report_link(s3: Any, bucket: str, run: dict[str, Any], expires: int | None = None) -> str | None:
    """A SigV4 presigned link to the run's report.html, valid ``expires`` seconds (default: the
    ``REPORT_LINK_SECONDS`` setting, an hour); None if the run wrote none.

    ``s3`` must sign with SigV4 (``StackHandle.client("s3")`` does): a SigV2 link is refused by newer
    buckets and cannot be limited to less than what the client decides.
    """
    if not run.get("html_key"):
        return None
    if s3.meta.config.signature_version != "s3v4":
        raise ValueError("report links are signed with SigV4: create the S3 client with REPORT_LINK_CONFIG")
    if expires is None:
        expires = RuntimeConfig.model_fields["report_link_seconds"].default
        expires = int(os.environ.get("REPORT_LINK_SECONDS", expires))
    return str(
        s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": run["html_key"]}, ExpiresIn=expires)
    )


# -- reaching a district and its runs -------------------------------------------------------------------


def require_district(handle: StackHandle, district_id: str) -> dict[str, Any]:
    district = handle.state(district_id).get_item("DISTRICT")
    if district is None:
        raise UsageError(
            f"--district {district_id}: no such district in this stack "
            "(import the product's directory first: rostersync import-product --file FILE)"
        )
    return district


def run_id_of(execution_arn: str) -> str:
    return execution_arn.rsplit(":", 1)[1]


def wait_for_execution(
    handle: StackHandle,
    execution_arn: str,
    timeout: float = WAIT_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the execution until it ends; a progress line every ``PROGRESS_SECONDS``; bounded by ``timeout``."""
    sfn = handle.client("stepfunctions")
    started = clock()
    next_progress = started + PROGRESS_SECONDS
    while True:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING":
            return description
        now = clock()
        if now - started > timeout:
            raise RunStillRunningError(f"run {run_id_of(execution_arn)} still running after {timeout:.0f}s")
        if now >= next_progress:
            print(f"  … still running ({now - started:.0f}s)", flush=True)
            next_progress = now + PROGRESS_SECONDS
        sleep(POLL_SECONDS)


def start_run(handle: StackHandle, district_id: str, trigger: str, dry_run: bool) -> str:
    """StartExecution with a name (the run id), as the schedule does; return the execution ARN."""
    from rostersync_tools.local.stack import execution_name

    payload = json.dumps({"district_id": district_id, "trigger": trigger, "dry_run": dry_run})
    answer = handle.client("stepfunctions").start_execution(
        stateMachineArn=handle.resources.state_machine_arn, input=payload, name=execution_name()
    )
    return str(answer["executionArn"])


def load_report(handle: StackHandle, run: dict[str, Any]) -> dict[str, Any]:
    body = handle.client("s3").get_object(Bucket=handle.resources.sync_bucket, Key=run["report_key"])["Body"]
    return dict(json.loads(body.read()))


def show_run(
    handle: StackHandle, district_id: str, run_id: str, title: str, out_dir: str | None, open_page: bool = False
) -> int:
    """Print a finished run (and download it with ``--out``; ``--open`` downloads it, to
    ``rostersync-reports/<district>/<run>/`` unless ``--out`` says where, and opens the local report.html:
    a copy whose links never expire). The exit code says whether the run went well."""
    run = handle.state(district_id).get_run(run_id) or {}
    if not run.get("report_key"):
        reason = run.get("refused_reason") or run.get("failure_reason")
        print(
            f"{title}: run {run_id} ended {run.get('status', 'without a run record')} and wrote no report"
            + (f": {reason}" if reason else "")
        )
        return 1
    report = load_report(handle, run)
    s3, bucket = handle.client("s3"), handle.resources.sync_bucket
    print_run(report, f"{title} · {report.get('status')} (run {run_id})", report_link(s3, bucket, run))
    if open_page and not out_dir:
        out_dir = str(Path("rostersync-reports") / district_id / run_id)
    if out_dir:
        local = download_report(s3, bucket, report, Path(out_dir))
        print(f"  written to {out_dir}/; open {local}")
        if open_page:
            import webbrowser

            webbrowser.open(local.resolve().as_uri())
    return exit_code(report)


def execute_and_show(args: argparse.Namespace, trigger: str, dry_run: bool, title: str) -> int:
    if args.out:
        check_out_folder(Path(args.out))  # refused before the run starts, not after it ended
    handle = connect_from_args(args)
    require_district(handle, args.district)
    arn = start_run(handle, args.district, trigger, dry_run)
    print(f"{title} started for {args.district} (run {run_id_of(arn)}); waiting…", flush=True)
    return wait_and_show(handle, args, arn, title)


def wait_and_show(handle: StackHandle, args: argparse.Namespace, arn: str, title: str) -> int:
    try:
        wait_for_execution(handle, arn, timeout=args.timeout)
    except RunStillRunningError as exc:
        print(f"{exc}; it goes on: rostersync report --district {args.district} --run {run_id_of(arn)} …")
        return 1
    return show_run(handle, args.district, run_id_of(arn), title, args.out)


# -- commands ------------------------------------------------------------------------------------------------


def read_secret(args: argparse.Namespace) -> str | None:
    """The provider credential from ``--token-file`` or ``--token-env``; never echoed anywhere."""
    if args.token_file:
        try:
            secret = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: cannot be read ({exc.strerror or exc})") from exc
        if not secret:
            raise UsageError(f"--token-file {args.token_file}: is empty")
        return secret
    if args.token_env:
        secret = os.environ.get(args.token_env, "").strip()
        if not secret:
            raise UsageError(f"--token-env {args.token_env}: that environment variable is not set or empty")
        return secret
    return None


def run_connect(args: argparse.Namespace) -> int:
    """``rostersync connect``: the district's provider connection; credentials to Secrets Manager."""
    from rostersync.admin import connect_provider, secret_name

    secret = read_secret(args)
    options: dict[str, Any] = {}
    if args.provider == "oneroster-csv":
        if args.base_url or secret:
            raise UsageError("--provider oneroster-csv: bundles are uploaded to the bucket; no --base-url or token")
    else:
        if not args.base_url:
            raise UsageError(f"--provider {args.provider}: --base-url is required")
        if not args.base_url.startswith(("https://", "http://")):
            raise UsageError(f"--base-url {args.base_url}: must be an http(s) URL")
        if secret is None:
            raise UsageError(f"--provider {args.provider}: give the credential with --token-file F or --token-env VAR")
    if args.provider == "oneroster-rest":
        options["auth"] = args.auth or "bearer"
        if options["auth"] == "oauth2":
            if not args.token_url:
                raise UsageError("--auth oauth2: --token-url is required")
            options["token_url"] = args.token_url
        if options["auth"] in ("oauth1", "oauth2") and secret is not None:
            try:
                pair = json.loads(secret)
                valid = isinstance(pair, dict) and {"key", "secret"} <= set(pair)
            except ValueError:
                valid = False
            if not valid:
                raise UsageError(f'--auth {options["auth"]}: the credential must be JSON {{"key": …, "secret": …}}')
    elif args.auth or args.token_url:
        raise UsageError(f"--auth/--token-url: only for --provider oneroster-rest, not {args.provider}")
    for flag, key in (("requests_per_minute", "requests_per_minute"), ("pages_per_slice", "max_pages_per_slice")):
        value = getattr(args, flag, None)
        if value is not None:
            if value < 1:
                raise UsageError(f"--{flag.replace('_', '-')} {value}: must be at least 1")
            options[key] = value
    if problem := district_id_problem(args.district):
        raise UsageError(f"--district: {problem}")
    handle = connect_from_args(args)
    state = handle.state(args.district)
    secrets = handle.client("secretsmanager")
    connect_provider(
        state, secrets, args.provider, args.base_url or "", secret, args.page_limit, stack=args.stack, **options
    )
    where = (
        f"; credentials in Secrets Manager as {secret_name(args.stack, args.district, args.provider)}" if secret else ""
    )
    print(f"{args.provider} connected for district {args.district}{where}.")
    if state.get_item("DISTRICT") is None:
        print(f"Next: rostersync import-product --file product.json {_stack_flags(args)}")
    else:
        print(f"Next: rostersync self-check --district {args.district} {_stack_flags(args)}")
    return 0


def run_import_product(args: argparse.Namespace) -> int:
    """``rostersync import-product``: the product's own directory (district, schools, classrooms, people)."""
    from rostersync.directory.product import import_product_directory
    from rostersync_tools.cli.inputs import check_product

    product = check_product(Path(args.file))
    handle = connect_from_args(args)
    district_id = product.district.id
    count = import_product_directory(product, handle.directory(district_id), handle.state(district_id))
    print(f"Imported the product directory of {district_id} ({count} records).")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``rostersync export``: the district's whole directory as directory.json."""
    from rostersync.directory.product import export_directory

    handle = connect_from_args(args)
    require_district(handle, args.district)
    export = export_directory(handle.directory(args.district), handle.state(args.district))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(export, indent=1, ensure_ascii=False), encoding="utf-8")
    total = sum(len(v) for k, v in export.items() if k != "district")
    print(f"Wrote {total} records of {args.district} to {out}.")
    return 0


def run_index_pairs(args: argparse.Namespace) -> int:
    """``rostersync index-pairs``: give a district's enrollments and guardian links written before the
    ByMatchBucket index their match bucket (once per district, after upgrading a stack that synced it)."""
    handle = connect_from_args(args)
    require_district(handle, args.district)
    written = handle.directory(args.district).bucket_pairs()
    print(
        f"Gave {written} enrollments and guardian links of {args.district} their match bucket. Its next sync "
        "checks that none is left and from then on reads each Match partition's share from the index."
    )
    return 0


def run_self_check(args: argparse.Namespace) -> int:
    """``rostersync self-check``: the state machine in dry-run mode; exit 1 when the checklist has a fail."""
    return execute_and_show(args, "self_check", True, "Self-check")


def run_sync(args: argparse.Namespace) -> int:
    """``rostersync sync``: a manual run."""
    return execute_and_show(args, "manual", False, "Sync")


def find_enabled_execution(
    handle: StackHandle,
    district_id: str,
    since: datetime,
    timeout: float = ENABLE_FIND_SECONDS,
    sleep: Sleep = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """The execution the "Sync Enabled" event started for the district (EventBridge starts it
    asynchronously on AWS, so look for it for a while)."""
    sfn = handle.client("stepfunctions")
    deadline = clock() + timeout
    while True:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=handle.resources.state_machine_arn)
        for page in pages:
            recent = [e for e in page["executions"] if e["startDate"] >= since]
            for execution in recent:
                payload = json.loads(sfn.describe_execution(executionArn=execution["executionArn"]).get("input", "{}"))
                if payload.get("district_id") == district_id and payload.get("trigger") == "enabled":
                    return str(execution["executionArn"])
            if len(recent) < len(page["executions"]):
                break  # newest first: the rest started before the event
        if clock() >= deadline:
            return None
        sleep(POLL_SECONDS)


def run_enable(args: argparse.Namespace) -> int:
    """``rostersync enable``: the product's "Sync Enabled" event; the template's rule starts the first sync."""
    handle = connect_from_args(args)
    require_district(handle, args.district)
    # A little before now: the client's clock and the service's may differ.
    since = datetime.now(UTC) - timedelta(seconds=CLOCK_SKEW_SECONDS)
    answer = handle.client("events").put_events(
        Entries=[
            {
                "Source": handle.resources.product_event_source,
                "DetailType": "Sync Enabled",
                "Detail": json.dumps({"district_id": args.district, "changed_by": who(args)}),
            }
        ]
    )
    entry = answer["Entries"][0]
    if "EventId" not in entry:
        raise UsageError(f"the event was refused: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    print(f'"Sync Enabled" sent for {args.district} (source {handle.resources.product_event_source}).')
    arn = find_enabled_execution(handle, args.district, since, timeout=args.find_timeout)
    if arn is None:
        print("No sync has started for it yet: check the stack's EventBridge rule (SyncEnabled).")
        return 1
    print(f"First sync started: run {run_id_of(arn)}.")
    if not args.wait:
        print(f"Follow it with: rostersync runs --district {args.district} {_stack_flags(args)}")
        return 0
    return wait_and_show(handle, args, arn, "First sync")


def newest_first(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run records, the latest start first. Not by run id: on AWS the executions EventBridge starts (an
    upload, "Sync Enabled") are named with a UUID, so a run's id says nothing of when it started."""
    return sorted(runs, key=lambda r: (str(r.get("started_at", "")), str(r.get("sk", ""))), reverse=True)


def run_runs(args: argparse.Namespace) -> int:
    """``rostersync runs``: the district's recent runs, newest first; ``runs approve|discard|undo RUN``."""
    if args.action:
        return run_action(args)
    handle = connect_from_args(args)
    require_district(handle, args.district)
    runs = newest_first(handle.state(args.district).runs())
    if not runs:
        print(f"No runs yet for {args.district}.")
        return 0
    rows = [("run", "trigger", "status", "created", "updated", "archived", "errors", "started")]
    for run in runs[: args.limit]:
        counts: dict[str, dict[str, int]] = run.get("counts") or {}
        totals = {
            c: sum(int(k.get(c, 0)) for k in counts.values()) for c in ("created", "updated", "archived", "errors")
        }
        trigger = str(run.get("trigger", "")) + (" (dry run)" if run.get("dry_run") else "")
        rows.append(
            (
                str(run.get("sk", "")).removeprefix("RUN#"),
                trigger,
                str(run.get("status", "")),
                *(f"{totals[c]:,}" for c in ("created", "updated", "archived", "errors")),
                str(run.get("started_at", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  "
            + "  ".join(
                cell.ljust(w) if i < 3 or i == 7 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print(f"\nOpen a run's report: rostersync report --district {args.district} --run RUN --open {_stack_flags(args)}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """``rostersync report``: a run's summary and link (the latest run with a report by default)."""
    handle = connect_from_args(args)
    require_district(handle, args.district)
    state = handle.state(args.district)
    if args.run:
        if state.get_run(args.run) is None:
            raise UsageError(f"--run {args.run}: no such run for {args.district} (see rostersync runs)")
        run_id = args.run
    else:
        reported = [r for r in state.runs() if r.get("report_key")]
        if not reported:
            raise UsageError(f"--district {args.district}: no run has written a report yet")
        run_id = str(max(reported, key=lambda r: str(r.get("sk", "")))["sk"]).removeprefix("RUN#")
    return show_run(handle, args.district, run_id, "Report", args.out, args.open)


def _stack_flags(args: argparse.Namespace) -> str:
    if args.endpoint:
        return f"--endpoint {args.endpoint}"
    flags = f"--stack {args.stack}"
    if args.profile:
        flags += f" --profile {args.profile}"
    if args.region:
        flags += f" --region {args.region}"
    return flags


def _district(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--district", required=True, metavar="D", help="the district's id in the product")


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=WAIT_SECONDS, metavar="SECONDS", help="give up waiting after this long"
    )
    parser.add_argument("--out", metavar="DIR", help="also download report.json, report.html and the CSVs here")


def register(commands: argparse._SubParsersAction) -> None:
    """Add connect, import-product, export, index-pairs, self-check, sync, enable, runs and report."""
    connect = commands.add_parser("connect", help="connect a district to its rostering provider")
    _district(connect)
    connect.add_argument("--provider", required=True, choices=PROVIDERS)
    connect.add_argument("--base-url", metavar="URL", help="the provider's API (Clever, OneRoster REST)")
    secret = connect.add_mutually_exclusive_group()
    secret.add_argument("--token-file", metavar="F", help="file holding the token (OAuth: JSON key and secret)")
    secret.add_argument("--token-env", metavar="VAR", help="environment variable holding the token")
    connect.add_argument("--auth", choices=("bearer", "oauth1", "oauth2"), help="OneRoster REST auth (default bearer)")
    connect.add_argument("--token-url", metavar="URL", help="OneRoster REST OAuth 2 token endpoint")
    connect.add_argument("--page-limit", type=int, default=10_000, metavar="N", help="records per page (≤ 10,000)")
    connect.add_argument(
        "--requests-per-minute",
        type=int,
        metavar="N",
        help="the provider's rate limit for the district, shared by Fetch's parallel reads (Clever: 1,200)",
    )
    connect.add_argument(
        "--pages-per-slice", type=int, metavar="N", help="pages one Fetch invocation reads of a list at most"
    )
    add_stack_arguments(connect)
    connect.set_defaults(handler=run_connect)

    imported = commands.add_parser("import-product", help="import the product's directory of a district")
    imported.add_argument("--file", required=True, metavar="FILE", help="product.json (see README)")
    add_stack_arguments(imported)
    imported.set_defaults(handler=run_import_product)

    export = commands.add_parser("export", help="write a district's whole directory as JSON")
    _district(export)
    export.add_argument("--out", required=True, metavar="FILE", help="directory.json to write")
    add_stack_arguments(export)
    export.set_defaults(handler=run_export)

    index_pairs = commands.add_parser(
        "index-pairs", help="give the enrollments and guardian links written before the upgrade their match bucket"
    )
    _district(index_pairs)
    add_stack_arguments(index_pairs)
    index_pairs.set_defaults(handler=run_index_pairs)

    for name, handler, text in (
        ("self-check", run_self_check, "dry run: what the first sync would do, and a readiness checklist"),
        ("sync", run_sync, "run a sync now"),
    ):
        command = commands.add_parser(name, help=text)
        _district(command)
        _wait_options(command)
        add_stack_arguments(command)
        command.set_defaults(handler=handler)

    enable = commands.add_parser("enable", help='send the product\'s "Sync Enabled" event (starts the first sync)')
    _district(enable)
    enable.add_argument("--wait", action="store_true", help="wait for the first sync and print its summary")
    enable.add_argument("--by", metavar="WHO", help="who is enabling it (recorded; default: your user name)")
    enable.add_argument(
        "--find-timeout", type=float, default=ENABLE_FIND_SECONDS, metavar="SECONDS", help=argparse.SUPPRESS
    )
    _wait_options(enable)
    add_stack_arguments(enable)
    enable.set_defaults(handler=run_enable)

    runs = commands.add_parser(
        "runs", help="a district's recent runs; approve or discard a held run's archives, undo a run"
    )
    runs.add_argument(
        "action", nargs="?", choices=("approve", "discard", "undo"), help="act on one run (default: list the runs)"
    )
    runs.add_argument("run", nargs="?", metavar="RUN", help="the run acted on")
    _district(runs)
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="show at most N runs (default 20)")
    runs.add_argument("--preview", action="store_true", help="undo: show what it would do, write nothing")
    runs.add_argument("--by", metavar="WHO", help="who decides (recorded; default: your user name)")
    _wait_options(runs)
    add_stack_arguments(runs)
    runs.set_defaults(handler=run_runs)

    report = commands.add_parser("report", help="a run's summary and report link")
    _district(report)
    report.add_argument("--run", metavar="R", help="the run id (default: the latest with a report)")
    report.add_argument("--out", metavar="DIR", help="also download report.json, report.html and the CSVs here")
    report.add_argument(
        "--open",
        action="store_true",
        help="download the report with its files (to --out, else rostersync-reports/D/RUN/) and open it in a browser",
    )
    add_stack_arguments(report)
    report.set_defaults(handler=run_report)
