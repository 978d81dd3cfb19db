"""``rostersync demo``: the embedded stack, the provider simulator and the product's directory, synced night by night.

``rostersync demo`` brings up the embedded stack (AWS on localhost, built from template.yaml), a provider
simulator (Clever and OneRoster REST) serving a dataset folder, imports the product's directory, and runs
the real state machine once per dataset, as successive nightly syncs of one district. OneRoster CSV
bundles are uploaded to the district's folder in the bucket, which starts the sync as an SFTP upload does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from rostersync_tools.cli.inputs import (
    DEFAULT_DATASETS,
    DEMO_TOKEN,
    SAMPLE,
    UsageError,
    bundle_bytes,
    check_dataset,
    check_out_folder,
    check_product,
    choose_provider,
    quiet_logs,
)


def run_demo(args: argparse.Namespace) -> int:
    """``rostersync demo``: sync each dataset in turn on the embedded stack and report."""
    datasets = [check_dataset(Path(d)) for d in (args.dataset or DEFAULT_DATASETS)]
    provider = choose_provider(datasets, args.provider)
    if not args.product and provider != "clever":
        raise UsageError("--product: a OneRoster demo needs a product file naming schools by OneRoster sourcedId")
    product = check_product(Path(args.product or SAMPLE / "product.json"))
    if product.district.plan is None:
        # Sync is sold with the premium plan (rostersync.lifecycle.entitlement): a product file that names no
        # plan is demonstrated on that one.
        product.district.plan = "premium"
        print(f"{product.district.id} names no plan (district.plan): the demo puts it on the premium plan.")
    out = check_out_folder(Path(args.out)) if args.out else None

    quiet_logs()
    import boto3

    from rostersync import aws
    from rostersync.admin import connect_provider
    from rostersync.config import REPORT_LINK_CONFIG, runtime_config
    from rostersync.directory.product import export_directory, import_product_directory
    from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
    from rostersync.settings import NotificationSettings, SyncSettings
    from rostersync_tools.cli.run_commands import download_report, print_run, report_link
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.stack import EmbeddedStack

    print("Starting the embedded stack (moto + the state machine from template.yaml)…")
    stack = EmbeddedStack(parameters={"LogLevel": "WARNING"}).start()
    scratch = tempfile.TemporaryDirectory(prefix="rostersync-demo-")
    served = [_servable(d, Path(scratch.name) / f"night-{n}") for n, d in enumerate(datasets, start=1)]
    simulator = ProviderSimulator(served[0], token=DEMO_TOKEN).start()
    try:
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        district_id = product.district.id
        directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
        state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
        imported = import_product_directory(product, directory, state)
        secrets = aws.client("secretsmanager")
        if provider == "oneroster-csv":
            connect_provider(state, secrets, provider)
        elif provider == "oneroster-rest":
            connect_provider(
                state,
                secrets,
                provider,
                simulator.base_url,
                DEMO_TOKEN,
                args.page_limit,
                stack=stack.stack_name,
                auth="bearer",
            )
        else:
            connect_provider(
                state, secrets, provider, simulator.base_url, DEMO_TOKEN, args.page_limit, stack=stack.stack_name
            )
        print(f"Product directory of {product.district.name!r} imported ({imported} records); {provider} connected.")
        # The admin asks to hear about every run's end: the stack records what SES would send.
        current, version = state.current_settings()
        told = current.model_copy(update={"notifications": NotificationSettings(emails=[DEMO_ADMIN], when="every_run")})
        state.put_settings(SyncSettings.model_validate(told.model_dump()), version, "demo")
        # Its own client: report links are SigV4-signed (the runtime's shared client need not be).
        s3 = boto3.session.Session().client("s3", region_name=os.environ.get("AWS_REGION"), config=REPORT_LINK_CONFIG)

        def show_self_check(arn: str) -> bool:
            description = wait_with_progress(stack, arn, "Self-check")
            run = state.get_run(description["executionArn"].rsplit(":", 1)[1]) or {}
            if "report_key" not in run:
                print(f"\nSelf-check: {description['status']} without a report: {description.get('cause', '')[:300]}")
                return False
            report = json.loads(s3.get_object(Bucket=config.sync_bucket, Key=run["report_key"])["Body"].read())
            link = report_link(s3, config.sync_bucket, run, config.report_link_seconds)
            print_run(report, f"\nSelf-check · {datasets[0].name} · {report['status']} (nothing written)", link)
            if out:
                local = download_report(s3, config.sync_bucket, report, out / "self-check")
                print(f"  report on this machine: {local}")
            return True

        if args.self_check and provider != "oneroster-csv":
            # What the admin runs before enabling sync: the first night, dry run, nothing written.
            if not show_self_check(stack.start_sync(district_id, trigger="self_check", dry_run=True)):
                return 1
        night_2: Path | None = None
        for number, dataset in enumerate(datasets, start=1):
            simulator.set_dataset(served[number - 1])
            started = time.perf_counter()
            if provider == "oneroster-csv":
                # The district's SFTP upload lands in its folder; S3 tells EventBridge, which starts the run.
                key = f"uploads/{district_id}/night-{number}/bundle.zip"
                s3.put_object(Bucket=config.sync_bucket, Key=key, Body=bundle_bytes(dataset))
                executions = stack.publish_upload(key)
                if number == 1:
                    # Sync is not enabled yet, so that first upload is only checked; enabling syncs it.
                    if not show_self_check(executions[0]):
                        return 1
                    started = time.perf_counter()
                    executions = stack.publish_event("product.directory", "Sync Enabled", {"district_id": district_id})
            elif number == 1:
                # The first sync starts as it does in production: the product emits "Sync Enabled".
                executions = stack.publish_event("product.directory", "Sync Enabled", {"district_id": district_id})
            else:
                executions = [stack.start_sync(district_id, trigger="schedule")]
            description = wait_with_progress(stack, executions[0], f"Night {number}")
            seconds = time.perf_counter() - started
            run_id = description["executionArn"].rsplit(":", 1)[1]
            run = state.get_run(run_id) or {}
            if "report_key" not in run:
                print(
                    f"\nRun {number} ({dataset.name}): {description['status']} without a report: "
                    f"{description.get('error', '')} {description.get('cause', '')[:300]}"
                )
                return 1
            report = json.loads(s3.get_object(Bucket=config.sync_bucket, Key=run["report_key"])["Body"].read())
            link = report_link(s3, config.sync_bucket, run, config.report_link_seconds)
            heading = f"\nRun {number} · {dataset.name} · {sync_label(report)} · {report['status']} in {seconds:.1f}s"
            print_run(report, f"{heading} (run {run_id})", link)
            told = show_notification(stack, district_id, run_id)
            if out:
                folder = out / f"run-{number}"
                local = download_report(s3, config.sync_bucket, report, folder)
                print(f"  report on this machine: {local}")
                (folder / "notification.json").write_text(json.dumps(told, indent=1, ensure_ascii=False), "utf-8")
                export = export_directory(directory, state)
                (folder / "directory.json").write_text(json.dumps(export, indent=1, ensure_ascii=False), "utf-8")
                if number == 2:
                    night_2 = local
        if provider == "clever":
            clean_up_after_the_first_sync(stack.endpoint, district_id, out, Path(scratch.name))
        if out and night_2 is not None:
            # After the last night: the browser never runs beside a sync on the embedded stack.
            screenshots(night_2, out)
        if out:
            print(f"\nReports and directories written under {out}/run-N/")
        if args.serve:
            endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
            print(
                "\nThe stack stays up so the report links above open in a browser. Ctrl-C to stop.\n"
                f"Other commands reach it with --endpoint {endpoint}; in another terminal, for example:\n"
                f"  rostersync runs --district {district_id} --endpoint {endpoint}\n"
                f"  rostersync report --district {district_id} --out report --endpoint {endpoint}\n"
                f"  rostersync settings show --district {district_id} --endpoint {endpoint}\n"
                f"  rostersync schools match --district {district_id} --endpoint {endpoint}"
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print()
        else:
            print("\nThe links work while the stack runs: add --serve to keep it up (or open report.html under --out).")
        return 0
    finally:
        simulator.stop()
        stack.stop()
        scratch.cleanup()


DEMO_ADMIN = "admin@demo-district.example.org"


def show_notification(stack: Any, district_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """The run's end as the stack announced it (its event on the stack's bus) and the email SES accepted
    for the demo's admin; printed, and returned for ``--out``."""

    def announced() -> list[dict[str, Any]]:
        return [e for e in stack.run_end_events(district_id) if e["detail"]["run_id"] == run_id]

    def emailed() -> list[dict[str, Any]]:
        return [m for m in stack.sent_emails() if DEMO_ADMIN in m["to"] and run_id in m["body"]]

    try:
        event = stack.wait_until(announced, timeout)[0]
        email = stack.wait_until(emailed, timeout)[0]
    except TimeoutError:
        print("  told: nothing announced in time")
        return {}
    print(f'  told: event "{event["detail-type"]}" on the bus {event["bus"]}; email to {", ".join(email["to"])}:')
    print(f'        "{email["subject"]}"')
    return {"event": event, "email": email}


def clean_up_after_the_first_sync(endpoint: str, district_id: str, out: Path | None, scratch: Path) -> None:
    """Admin steps 8 and 9, as the admin types them: list the duplicates, merge them (every pair confirmed,
    as a reviewed file), then preview archiving the students who are not in the sync (nothing archived)."""
    import csv

    from rostersync_tools.cli.main import main

    folder = out / "cleanup" if out else scratch / "cleanup"
    folder.mkdir(parents=True, exist_ok=True)
    stack = ["--endpoint", endpoint]
    print("\nClean-up after the first sync · possible duplicates")
    pairs = folder / "duplicates.csv"
    main(["duplicates", "list", "--district", district_id, "--out", str(pairs), *stack])
    rows = list(csv.DictReader(pairs.open(encoding="utf-8")))
    if rows:
        reviewed = folder / "duplicates-reviewed.csv"
        with reviewed.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**row, "confirm": "yes"} for row in rows)
        print("\nMerging them, with their history (the reviewed file confirms every pair):")
        main(["duplicates", "merge", "--district", district_id, "--file", str(reviewed), *stack])
    print("\nClean-up after the first sync · students not in the sync (preview)")
    main(
        ["cleanup", "archive-unmanaged", "--district", district_id, "--scope", "district", "--out", str(folder), *stack]
    )


_STEPS_SHOWN = {
    "Prepare run": "starting",
    "Start run": "starting",
    "Fetch roster": "fetching the roster",
    "Match roster": "matching",
    "Upsert directory": "writing the directory",
    "Upsert plan chunk": "writing the directory",
    "Archive unmanaged": "archiving who left",
    "Write report": "writing the report",
    "Release lock": "finishing",
}


def _progress(sfn: Any, arn: str) -> str:
    """The run's step now and the records so far, from its execution history (what the console shows)."""
    try:
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    except Exception:  # noqa: BLE001 - progress is a courtesy; the run's own outcome is read afterwards
        return "running"
    step, fetched, planned = "starting", None, None
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            step = _STEPS_SHOWN.get(entered["name"], step)
        exited = event.get("stateExitedEventDetails")
        if exited and exited.get("name") in ("Fetch roster", "Match roster"):
            try:
                output = json.loads(exited.get("output") or "{}")
            except ValueError:
                continue
            if exited["name"] == "Fetch roster" and isinstance(output.get("fetch"), dict):
                fetched = sum((output["fetch"].get("records") or {}).values())
            if exited["name"] == "Match roster" and isinstance(output.get("match"), dict):
                planned = output["match"].get("writes")
    parts = [step]
    if fetched is not None:
        parts.append(f"{fetched:,} records fetched")
    if planned is not None:
        parts.append(f"{planned:,} writes planned")
    return ", ".join(parts)


def wait_with_progress(stack: Any, arn: str, label: str, timeout: float = 1_800) -> dict[str, Any]:
    """Wait for a run, printing its step and records so far: one line kept up to date on a terminal, a
    line per change otherwise."""
    sfn = stack.client("stepfunctions")
    started, shown, live = time.monotonic(), "", sys.stdout.isatty()
    while True:
        try:
            description = dict(stack.wait(arn, timeout=2))
        except TimeoutError:
            if time.monotonic() - started > timeout:
                raise
        else:
            if live and shown:
                print("\r\033[K", end="", flush=True)  # the run's summary takes the progress line's place
            return description
        now = _progress(sfn, arn)
        if live:
            print(f"\r  {label}: {now} ({time.monotonic() - started:.0f} s)\033[K", end="", flush=True)
        elif now != shown:
            print(f"  {label}: {now}", flush=True)
        shown = now


def screenshots(page: Path, out: Path) -> None:
    """Night 2's report as a desk and a phone show it, for a person to look at (needs Chromium)."""
    from rostersync_tools.local.browser import DESK, PHONE, browser, missing

    why = missing()
    if why:
        print(f"  no screenshots: {why}")
        return
    with browser() as chromium:
        for width, height in (DESK, PHONE):
            first = chromium.screenshot(page, out / f"night-2-{width}px.png", width, height)
            whole = chromium.screenshot(page, out / f"night-2-{width}px-full.png", width, height, full_page=True)
            print(f"  screenshots at {width} px: {first} (first screen), {whole} (whole page)")


def sync_label(report: dict[str, object]) -> str:
    """Which kind of run it was, as the console says it: full read, Clever events, delta, reconcile."""
    sync = report.get("sync") or {}
    kind = sync.get("kind") if isinstance(sync, dict) else None
    changes = sync.get("changes") if isinstance(sync, dict) else None
    if kind == "events":
        return f"incremental: Clever events ({changes or 0:,} changes)"
    if kind == "delta":
        return "incremental: delta"
    if kind == "reconcile":
        return "full reconcile"
    return "full read"


def _servable(dataset: Path, scratch: Path) -> Path:
    """What the simulator serves: a Clever folder or a bundle folder (a zip is unpacked first)."""
    if dataset.suffix.lower() != ".zip":
        return dataset
    scratch.mkdir(parents=True)
    with zipfile.ZipFile(dataset) as bundle:
        for member in bundle.infolist():
            name = member.filename.rsplit("/", 1)[-1]
            if name.lower().endswith(".csv"):
                (scratch / name).write_bytes(bundle.read(member))
    return scratch


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``rostersync demo`` to the command line."""
    demo = commands.add_parser("demo", help="sync a Clever dataset on the embedded local stack")
    demo.add_argument(
        "--dataset",
        action="append",
        metavar="DIR",
        help="folder of Clever list responses, or a OneRoster CSV bundle (folder or zip); repeat for "
        "successive nightly syncs (default: the bundled Clever demo district, three nights)",
    )
    demo.add_argument(
        "--provider",
        choices=("clever", "oneroster-rest", "oneroster-csv"),
        help="how the district's roster arrives (default: clever for Clever data, oneroster-csv for bundles); "
        "oneroster-rest serves the bundles over OneRoster 1.1 REST from the simulator",
    )
    demo.add_argument("--product", metavar="FILE", help="the product's directory before the first sync (JSON)")
    demo.add_argument("--out", metavar="DIR", help="write run-N/report.json, report.html and directory.json here")
    demo.add_argument(
        "--self-check",
        action="store_true",
        help="before the first night, run a self-check (dry run) and print its summary and readiness",
    )
    demo.add_argument("--serve", action="store_true", help="keep the stack up after the runs so links open")
    demo.add_argument("--page-limit", type=int, default=1_000, metavar="N", help="Clever page size (≤ 10,000)")
    demo.set_defaults(handler=run_demo)
