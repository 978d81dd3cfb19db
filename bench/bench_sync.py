"""Benchmark: a full sync of a synthetic district on the embedded stack, then an unchanged re-sync.

    python bench/bench_sync.py --students 20000 [--provider clever|oneroster-csv|oneroster-rest]
                               [--no-memory | --memory-only [--trace-steps STEP...]] [--no-events]
                               [--match-partitions N]
                               [--json FILE]
    (make bench; STUDENTS=… and PROVIDER=… to change them)

Prints records/s, DynamoDB write requests (counted at the embedded server), the write floor (the records
the sync wrote, read back and written again under another district id with plain BatchWriteItem, to the
same embedded DynamoDB, in the same process) and
the ratio between the two; per step (Start, Fetch, Match, Upsert, Archive, Report, Release lock): time,
invocations, the longest invocation, records in and out; the unchanged re-sync's write count, time and its
ratio to the read floor (a plain paginated Query of every directory item of the district plus a plain read
of every roster page, measured in the same run); the write floor again, asking ``ReturnConsumedCapacity=
TOTAL`` as every request of the sync does (the stack computes the units from the items, AWS server side),
and the full sync's ratio to it; the write floor a third time, from as many threads as Upsert's Map sends
from (its ``MaxConcurrency`` chunks × ``IO_THREADS`` each: on AWS each chunk is a Lambda of its own, here
all of them share one process and its interpreter lock), and the ratio to that; the runs' counted cost
(report.json's ``cost``). Then,
unless ``--no-memory``, a second full sync of the same roster under another district id with every Lambda
invocation traced (``InvocationRecorder(memory=True)``: tracemalloc around each invocation, one at a time)
prints each step's peak memory: the highest of what the invocation allocated and had not freed yet.
tracemalloc traces the whole process, so what moto allocates while it serves the invocation (the DynamoDB
items it stores) is in the peak too; ``retained`` is how much of it was still held when the invocation
ended. The stack keeps S3 objects' bodies in files (``EmbeddedStack(s3_bodies_on_disk=True)``), so those
are not. ``--memory-only`` runs nothing but that traced sync, in a stack of its own, with the provider
simulator answering from a process of its own (``SimulatorProcess``, its lists loaded first: what it
allocates to answer a page is not Fetch's; in the same process, a page being answered counted in Fetch's
peak while Fetch mapped the page before) (``--trace-steps``: only some steps' invocations traced, the
others at full speed; ``--resync``: a full sync untraced first, then the unchanged re-sync traced, when
Match's people phase holds the directory's index): ``make bench-scale`` runs it in a process beside the
timed one, since one process cannot hold a 100,000-student district's timed syncs, floors and traced copy
at once. Each write floor's copy of the district is dropped from the embedded table once timed
(``EmbeddedStack.forget_partitions``), for the same reason. For Clever, two 1 %-change nights follow
(``bench_events.py``): one read from Clever's events, one in full, with their provider requests, directory
writes and times.

The embedded stack is moto in this process: absolute times measure moto as much as rostersync. The
ratio to the floor and the write counts are the figures that carry over to AWS.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--page-limit", type=int, default=10_000)
    parser.add_argument("--provider", choices=("clever", "oneroster-csv", "oneroster-rest"), default="clever")
    memory = parser.add_mutually_exclusive_group()
    memory.add_argument("--no-memory", action="store_true", help="skip the traced sync (peak memory per step)")
    memory.add_argument(
        "--memory-only", action="store_true", help="only the traced sync (peak memory per step), in a stack of its own"
    )
    parser.add_argument(
        "--match-partitions", type=int, help="the stack's MatchPartitions (a divisor of 64; the template's default)"
    )
    parser.add_argument(
        "--trace-steps",
        nargs="+",
        choices=STEPS,
        help="with --memory-only: trace only these steps' invocations (the others run untraced, at full speed)",
    )
    parser.add_argument(
        "--resync",
        action="store_true",
        help="with --memory-only: sync untraced first, then trace the unchanged re-sync (Match's people phase holds"
        " the district's directory index then; a first sync's is empty)",
    )
    parser.add_argument("--no-events", action="store_true", help="skip the 1 %%-change nights")
    parser.add_argument(
        "--product-people",
        action="store_true",
        help="the product already has the district's people, with no provider link (a district that used the"
        " product before turning sync on): the full sync links them (students by SIS id) rather than creating them",
    )
    parser.add_argument("--json", type=Path, help="write the per-step figures here (make bench-scale)")
    args = parser.parse_args()
    if args.trace_steps and not args.memory_only:
        parser.error("--trace-steps needs --memory-only")
    if args.resync and not args.memory_only:
        parser.error("--resync needs --memory-only")
    for name in ("werkzeug", "moto", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    from rostersync import aws
    from rostersync.config import runtime_config
    from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
    from rostersync_tools.local import stack as stack_module
    from rostersync_tools.local.convert import clever_to_oneroster, zip_bundle
    from rostersync_tools.local.simulator import ProviderSimulator, SimulatorProcess
    from rostersync_tools.local.stack import EmbeddedStack, InvocationRecorder, WriteRequestCounter
    from rostersync_tools.local.synthetic import (
        product_for,
        product_people_for,
        set_up_district,
        set_up_oneroster_rest_district,
        write_synthetic_clever_district,
    )

    workdir = Path(tempfile.mkdtemp(prefix="rostersync-bench-"))
    started = time.perf_counter()
    sizes = write_synthetic_clever_district(workdir, students=args.students)
    print(f"synthetic district: {json.dumps(sizes)} (generated in {time.perf_counter() - started:.1f}s)")
    bundle = workdir / "oneroster"
    if args.provider != "clever":
        clever_to_oneroster(workdir, bundle)
        print(f"as a OneRoster 1.1 CSV bundle for {args.provider}")

    if not args.no_memory:
        # The traced sync runs one invocation at a time (tracemalloc is process-wide), so an Upsert Map's
        # chunks wait inside their Invoke call for one another's turn: at 10,000 students the last ones
        # waited past the stack's 960 s read timeout and the traced run failed. Waiting is not running.
        stack_module.INVOKE_READ_TIMEOUT_SECONDS = 6 * 3600
    parameters = {"LogLevel": "WARNING"}
    if args.match_partitions:
        parameters["MatchPartitions"] = str(args.match_partitions)
    stack = EmbeddedStack(parameters=parameters, s3_bodies_on_disk=True).start()
    served = workdir if args.provider == "clever" else bundle
    # The traced run's simulator answers from a process of its own, its lists loaded first: what it allocates
    # to answer a page is not Fetch's (tracemalloc traces this whole process).
    serving = SimulatorProcess if args.memory_only else ProviderSimulator
    simulator = serving(served, token="bench-token").start()  # noqa: S106
    try:
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        provider = "clever" if args.provider == "clever" else "oneroster"  # ids are the same in both forms

        def set_up(district_id: str) -> SyncStateRepository:
            product = product_for(workdir, district_id, "Benchmark District", provider=provider)
            if args.product_people:
                people = product_people_for(workdir, district_id)
                product = product.model_validate(product.model_dump(mode="json") | {"people": people})
            if args.provider == "oneroster-csv":
                _, state = set_up_district(product, "oneroster-csv")
                state.mark_enabled("bench")  # sync is enabled: each upload syncs for real
            elif args.provider == "oneroster-rest":
                state = set_up_oneroster_rest_district(product, simulator, "bench-token", stack=stack.stack_name)
            else:
                _, state = set_up_district(
                    product, "clever", simulator.base_url, "bench-token", args.page_limit, stack=stack.stack_name
                )
            if args.product_people:  # the admin links students by the SIS id the product holds (settings)
                current, version = state.current_settings()
                settings = current.model_validate(current.model_dump(mode="json") | {"student_match_id": "sis_id"})
                state.put_settings(settings, version, updated_by="bench")
            return state

        district_id = "bench-district"
        state = set_up(district_id)
        directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
        s3 = aws.client("s3")
        nights = iter(range(1, 100))

        def begin_sync(district: str) -> str:
            if args.provider != "oneroster-csv":
                return stack.start_sync(district, trigger="manual")
            # As an SFTP upload: the bundle lands in the district's folder; S3 → EventBridge starts the run.
            key = f"uploads/{district}/night-{next(nights)}/bundle.zip"
            s3.put_object(Bucket=config.sync_bucket, Key=key, Body=zip_bundle(bundle))
            (execution,) = stack.publish_upload(key)
            return execution

        last: dict[str, Any] = {}

        wanted = set(args.trace_steps or STEPS)
        traces = None if args.trace_steps is None else (lambda function: step_of(function) in wanted)

        def sync(label: str, district: str = district_id, memory: bool = False) -> tuple[float, int, dict]:
            with WriteRequestCounter() as counter, InvocationRecorder(memory=memory, traces=traces) as recorder:
                begun = time.perf_counter()
                description = stack.wait(begin_sync(district), timeout=6 * 3600)
                seconds = time.perf_counter() - begun
            runs = SyncStateRepository(dynamodb, config.sync_state_table, district)
            run = runs.get_run(description["executionArn"].rsplit(":", 1)[1]) or {}
            if description["status"] != "SUCCEEDED" or "report_key" not in run:
                raise SystemExit(f"{label}: {description['status']} {description.get('cause', '')[:500]}")
            report = json.loads(s3.get_object(Bucket=config.sync_bucket, Key=run["report_key"])["Body"].read())
            last.update(
                output=json.loads(description.get("output") or "{}"),
                invocations=recorder.invocations,
                meters=read_meters(s3, config.sync_bucket, district, run["run_id"]),
                plan=read_plan_counts(s3, config.sync_bucket, district, run["run_id"]),
            )
            return seconds, counter.requests[config.directory_table], report

        def traced_sync(district: str, label: str = "traced full sync") -> dict[str, dict[str, Any]]:
            seconds3, _, report3 = sync(label, district, memory=True)
            traced = step_figures(last["output"], last["invocations"], last["meters"], report3, last["plan"])
            print(f"\n{label}: {seconds3:.1f}s (tracemalloc on)")
            print_steps("peak memory per step (traced; times are tracemalloc's, not the step's)", traced, memory=True)
            return traced

        if args.memory_only:
            if args.provider == "clever":
                warm_up(workdir / "warm-up", stack, sync)
            if args.resync:
                seconds, _, _ = sync("untraced full sync", district_id)
                print(f"untraced full sync: {seconds:.1f}s")
            traced = traced_sync(district_id, "traced unchanged re-sync" if args.resync else "traced full sync")
            if args.json:
                args.json.write_text(json.dumps({"students": args.students, "memory": traced}, indent=2))
            print(f"\npeak memory (RSS of this process): {_peak_rss_mib():,.0f} MiB")
            return

        seconds, writes, report = sync("full sync")
        full = dict(last)
        counts = report["counts"]
        # linked: the product's own accounts the sync took over (--product-people), each one write
        linked = {kind: c.get("linked", 0) if args.product_people else 0 for kind, c in counts.items()}
        written = sum(
            c["created"] + c["updated"] + c["restored"] + c["archived"] + linked[k] for k, c in counts.items()
        )
        fetched = sum(
            c["created"] + c["updated"] + c["restored"] + c["unchanged"] + c["skipped"] + linked[k]
            for k, c in counts.items()
        )
        print(f"\nfull sync: {report['status']} in {seconds:.1f}s")
        for kind, c in counts.items():
            line = f"  {kind:15} created {c['created']:>9,}  skipped {c['skipped']:>6,}  errors {c['errors']:>4,}"
            print(line + (f"  linked {linked[kind]:>9,}" if args.product_people else ""))
        print(f"  records written:        {written:,} ({written / seconds:,.0f} records/s end to end)")
        print(f"  records handled:        {fetched:,} ({fetched / seconds:,.0f} records/s)")
        print(f"  DynamoDB write requests: {writes:,} ({written / max(writes, 1):.1f} records per request)")

        # The floor: the items the sync wrote, read back from the directory and written again under a
        # district of their own (keys and index keys re-made for it, as Upsert makes them), with plain
        # BatchWriteItem (25 a request) from one thread, to the same embedded table. (Written again right
        # after it, asking for the consumed capacity, then from Upsert's threads; each copy is dropped once
        # timed, so the re-sync meets the same table as before.) Until December 2026 the floor wrote copies of one
        # enrollment (529 bytes; the records of a 3,000-student sync average 503, people 532-591): written
        # in turn in one run, copies and records took 9.4 and 9.7 s, then 10.2 and 10.4 s, so ratios
        # printed before then hold against this floor too.
        floor_items = sync_written_records(directory, report["counts"], linked=args.product_people)
        floor, requests = write_floor(dynamodb, config.directory_table, floor_items, "bench-floor")
        forget_district(stack, "bench-floor", len(floor_items))
        print(
            f"\nfloor (plain BatchWriteItem of the {len(floor_items):,} records the sync wrote): {floor:.1f}s, "
            f"{requests:,} requests ({len(floor_items) / floor:,.0f} items/s)"
        )
        print(
            f"  full sync / floor: {seconds / floor:.2f}x the time, {writes / max(requests, 1):.2f}x the write requests"
        )
        # The write floor again right after it, the table as it was, asking for the consumed capacity as every
        # request of the sync does (its cost needs it): the stack computes the units from each item before and
        # after the write, AWS server side. (Until December 2026 this floor ran after the re-sync and the read
        # floors: 47.9 s against the plain floor's 26.2 s at 10 k, which SCALE read as the stack's accounting
        # nearly doubling the floor; written back to back, the two differ by 0-28 %, a run's noise included.)
        floor_cc, _ = write_floor(
            dynamodb, config.directory_table, floor_items, "bench-floor-cc", ReturnConsumedCapacity="TOTAL"
        )
        forget_district(stack, "bench-floor-cc", len(floor_items))
        print(
            f"  write floor asking ReturnConsumedCapacity=TOTAL as the sync does: {floor_cc:.1f}s "
            f"({floor_cc / floor:.2f}x the plain floor); full sync / that floor: {seconds / floor_cc:.2f}x"
        )
        # And from as many threads as Upsert's Map sends from (chunks side by side × each one's IO threads):
        # on AWS each chunk is a Lambda of its own, on the stack every one of them shares this process.
        chunks_at_once, io_threads = upsert_concurrency(stack)
        floor_threads = write_floor_threaded(
            config.directory_table, floor_items, "bench-floor-threads", chunks_at_once, io_threads
        )
        forget_district(stack, "bench-floor-threads", len(floor_items))
        del floor_items
        print(
            f"  write floor from {chunks_at_once} × {io_threads} threads, as Upsert's Map sends, asking "
            f"ReturnConsumedCapacity: {floor_threads:.1f}s; full sync / that floor: {seconds / floor_threads:.2f}x"
        )

        steps = step_figures(full["output"], full["invocations"], full["meters"], report, full["plan"])
        print_steps("full sync, per step", steps, memory=False)
        # Where the full sync's time against the floor goes: Upsert's writes (its Map's wall time, chunks side
        # by side) against the floors, and the steps that write nothing of the directory.
        upsert_wall = steps["upsert_chunk"]["wall"]
        print(
            f"  Upsert's wall time {upsert_wall:.1f}s = {upsert_wall / floor:.2f}x the plain floor, "
            f"{upsert_wall / floor_cc:.2f}x the floor asking for the capacity; the other steps' wall time "
            f"{sum(f['wall'] for step, f in steps.items() if step != 'upsert_chunk'):.1f}s"
        )
        print_cost("full sync", report)

        seconds2, writes2, report2 = sync("unchanged re-sync")
        resync = dict(last)
        unchanged = sum(c["unchanged"] for c in report2["counts"].values())
        print(
            f"\nunchanged {'delta ' if args.provider == 'oneroster-rest' else ''}re-sync: {report2['status']} "
            f"in {seconds2:.1f}s, {writes2} directory write requests, "
            f"{unchanged:,} records unchanged"
        )
        read_floor, items_read, pages_read = measure_read_floor(
            dynamodb, config.directory_table, district_id, simulator if args.provider == "clever" else None
        )
        print(
            f"  read floor (plain paginated Query of the district's {items_read:,} directory items"
            + (f" and the roster's {pages_read:,} pages" if pages_read else "")
            + f"): {read_floor:.1f}s; unchanged re-sync / read floor: {seconds2 / read_floor:.2f}x"
        )
        # The read floor again, asking for the consumed capacity as every request of the sync does (its cost
        # needs it): the stack counts the units item by item in this process, AWS server side.
        read_floor_cc, _, _ = measure_read_floor(
            dynamodb,
            config.directory_table,
            district_id,
            simulator if args.provider == "clever" else None,
            ReturnConsumedCapacity="TOTAL",
        )
        print(
            f"  read floor asking ReturnConsumedCapacity=TOTAL as the sync does: "
            f"{read_floor_cc:.1f}s; unchanged re-sync / that floor: {seconds2 / read_floor_cc:.2f}x"
        )
        resync_steps = step_figures(resync["output"], resync["invocations"], resync["meters"], report2, resync["plan"])
        print_steps("unchanged re-sync, per step", resync_steps, memory=False)
        print_cost("unchanged re-sync", report2)

        traced: dict[str, dict[str, Any]] = {}
        if not args.no_memory:
            traced_district = "bench-traced"  # another district id, the same roster
            set_up(traced_district)
            traced = traced_sync(traced_district)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "students": args.students,
                        "full_seconds": seconds,
                        "written": written,
                        "write_floor_seconds": floor,
                        "write_floor_capacity_seconds": floor_cc,
                        "write_floor_threads_seconds": floor_threads,
                        "resync_seconds": seconds2,
                        "resync_writes": writes2,
                        "read_floor_seconds": read_floor,
                        "read_floor_capacity_seconds": read_floor_cc,
                        "steps": steps,
                        "resync_steps": resync_steps,
                        "memory": traced,
                        "cost": report.get("cost"),
                        "resync_cost": report2.get("cost"),
                    },
                    indent=2,
                )
            )
        if args.provider == "clever" and not args.no_events:
            from bench_events import one_percent_nights

            one_percent_nights(workdir, simulator, state, sync, stack)
        print(
            f"\npeak memory (RSS of this process: the embedded AWS, simulator and every Lambda): "
            f"{_peak_rss_mib():,.0f} MiB"
        )
    finally:
        simulator.stop()
        stack.stop()


def warm_up(folder: Path, stack: Any, sync: Any) -> None:
    """Sync a 30-student Clever district of its own first, untraced, so that the traced sync's invocations
    find their functions' modules imported and their role sessions made, as on a warm Lambda (in the
    whole benchmark the timed syncs have done that)."""
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.synthetic import product_for, set_up_district, write_synthetic_clever_district

    write_synthetic_clever_district(folder, students=30)
    simulator = ProviderSimulator(folder, token="warm-token").start()  # noqa: S106
    try:
        product = product_for(folder, "bench-warm-up", "Warm-up District", provider="clever")
        set_up_district(product, "clever", simulator.base_url, "warm-token", 10_000, stack=stack.stack_name)
        sync("warm-up sync", "bench-warm-up")
    finally:
        simulator.stop()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


STEPS = (
    "start_run",
    "fetch_roster",
    "match_roster",
    "match_partition",
    "combine_match",
    "upsert_chunk",
    "archive_unmanaged",
    "write_report",
    "finish_run",
)
# the template's function names carry their logical ids
FUNCTION_STEP = {
    "StartRun": "start_run",
    "FetchRoster": "fetch_roster",
    "MatchRoster": "match_roster",  # Match's people phase
    "MatchPartition": "match_partition",
    "CombineMatch": "combine_match",
    "UpsertChunk": "upsert_chunk",
    "ArchiveUnmanaged": "archive_unmanaged",
    "WriteReport": "write_report",
    "FinishRun": "finish_run",
}


def read_meters(s3: Any, bucket: str, district: str, run_id: str) -> list[dict[str, Any]]:
    """Every meter the run's steps kept (``meter/``), Release lock's included (it runs after the report)."""
    prefix = f"runs/{district}/{run_id}/meter/"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def read_plan_counts(s3: Any, bucket: str, district: str, run_id: str) -> dict[str, int]:
    """What Match's people phase and its partitions planned (their ``result.json``): the writes of each."""
    folder = f"runs/{district}/{run_id}/plan/"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
        for o in page.get("Contents", [])
        if o["Key"].endswith("/result.json")
    ]
    counts = {"people_writes": 0, "partition_writes": 0}
    for key in keys:
        result = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if key.endswith("/people/result.json"):
            counts["people_writes"] = int(result.get("writes", 0))
        else:
            counts["partition_writes"] += int(result.get("writes", 0))
    return counts


def step_of(function: str) -> str | None:
    return next((step for part, step in FUNCTION_STEP.items() if part in function), None)


def step_figures(
    output: dict[str, Any],
    invocations: list[Any],
    meters: list[dict[str, Any]],
    report: dict[str, Any],
    plan: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """Per step: seconds (summed over invocations), wall seconds (from its first invocation's start to its
    last one's end: what the step adds to the run's time, its Map's children side by side), invocations,
    the longest, peak memory (traced runs), records in and out (from the state document and the report)."""
    figures: dict[str, dict[str, Any]] = {
        step: {"seconds": 0.0, "wall": 0.0, "invocations": 0, "longest": 0.0, "peak": 0, "retained": 0}
        for step in STEPS
    }
    spans: dict[str, tuple[float, float]] = {}
    for invocation in invocations:
        step = step_of(invocation.function)
        if step is None:
            continue
        f = figures[step]
        f["seconds"] += invocation.seconds
        f["invocations"] += 1
        f["longest"] = max(f["longest"], invocation.seconds)
        began, ended = spans.get(step, (invocation.began, invocation.ended))
        spans[step] = (min(began, invocation.began), max(ended, invocation.ended))
        f["wall"] = spans[step][1] - spans[step][0]
        if invocation.peak_bytes >= f["peak"]:
            f["peak"], f["retained"] = invocation.peak_bytes, invocation.retained_bytes
    for meter in meters:  # what the step counted: provider requests, DynamoDB units
        f = figures.get(str(meter["step"]))
        if f is not None:
            f["provider_requests"] = f.get("provider_requests", 0) + int(meter.get("provider_requests", 0))
            f["write_units"] = f.get("write_units", 0) + float(meter.get("dynamodb_write_units", 0))
            f["read_units"] = f.get("read_units", 0) + float(meter.get("dynamodb_read_units", 0))
    fetched_records = (output.get("fetch") or {}).get("records", {})
    fetched = sum(fetched_records.values())
    pairs = sum(int(fetched_records.get(c, 0)) for c in ("enrollments", "guardian_links"))  # routed to partitions
    planned = int((output.get("match") or {}).get("writes", 0))
    counts = report.get("counts", {}).values()
    written = sum(c["created"] + c["updated"] + c["restored"] for c in counts)
    archived = sum(c["archived"] for c in counts)
    lines = sum(n for actions in (report.get("list_totals") or {}).values() for n in actions.values())
    records = {
        "start_run": (0, 0),
        "fetch_roster": (0, fetched),
        "match_roster": (fetched, plan["people_writes"]),
        "match_partition": (pairs, plan["partition_writes"]),
        "combine_match": (plan["people_writes"] + plan["partition_writes"], planned),
        "upsert_chunk": (planned, written),
        "archive_unmanaged": (archived, archived),
        "write_report": (lines, len(report.get("files", {}))),
        "finish_run": (0, 0),
    }
    for step, (records_in, records_out) in records.items():
        figures[step]["records_in"], figures[step]["records_out"] = records_in, records_out
    return figures


def print_steps(title: str, figures: dict[str, dict[str, Any]], memory: bool) -> None:
    print(f"  {title}:")
    head = (
        f"    {'step':18} {'time s':>8} {'wall s':>7} {'calls':>6} {'longest s':>9} {'records in':>11} "
        f"{'records out':>11}"
    )
    print(head + (f" {'peak MiB':>9} {'retained MiB':>12}" if memory else f" {'provider req':>12}"))
    for step, f in figures.items():
        row = (
            f"    {step:18} {f['seconds']:>8.1f} {f.get('wall', 0.0):>7.1f} {f['invocations']:>6} {f['longest']:>9.1f} "
            f"{f['records_in']:>11,} {f['records_out']:>11,}"
        )
        if memory:
            row += f" {f['peak'] / 2**20:>9.1f} {f['retained'] / 2**20:>12.1f}"
        else:
            row += f" {f.get('provider_requests', 0):>12,}"
        print(row)


def print_cost(label: str, report: dict[str, Any]) -> None:
    cost = report.get("cost")
    if not cost:
        return
    services = ", ".join(f"{name} ${usd:.4f}" for name, usd in cost["usd"].items())
    print(
        f"  {label} cost (counted, {cost['region']} prices of {cost['prices_as_of']}): ${cost['total_usd']:.4f} "
        f"({services}); {cost['lambda_invocations']:,} invocations, {cost['lambda_gb_seconds']:,.1f} GB-s, "
        f"{cost['dynamodb_write_units']:,.0f} WRU, {cost['dynamodb_read_units']:,.0f} RRU, "
        f"{cost['s3_put_requests']:,} S3 PUT-class, {cost['s3_get_requests']:,} GET-class, "
        f"{cost['state_transitions']:,} transitions, {cost['provider_requests']:,} provider requests"
    )


def sync_written_records(directory: Any, counts: dict[str, dict[str, int]], linked: bool = False) -> list[Any]:
    """The district's directory records of every collection the sync wrote to (a collection whose records
    it created, updated, restored or archived none of, such as the product's own schools, is left out;
    ``linked``: or linked, the product's own accounts it took over)."""
    from rostersync.directory.keys import COLLECTION_OF_KIND, COLLECTIONS
    from rostersync.domain.records import Kind

    written = {
        COLLECTION_OF_KIND[Kind(kind)]
        for kind, c in counts.items()
        if c["created"] + c["updated"] + c["restored"] + c["archived"] + (c.get("linked", 0) if linked else 0)
    }
    return [record for collection in COLLECTIONS if collection in written for record in directory.records(collection)]


def write_floor(dynamodb: Any, table: str, records: list[Any], district: str, **extra: Any) -> tuple[float, int]:
    """Seconds to write ``records`` under ``district`` with BatchWriteItem, 25 a request, from one thread,
    each made into its item as Upsert makes it; and the write requests the server received."""
    from rostersync_tools.local.stack import WriteRequestCounter

    begun = time.perf_counter()
    with WriteRequestCounter() as counter:
        for start in range(0, len(records), 25):
            dynamodb.batch_write_item(RequestItems={table: _floor_batch(records, start, district)}, **extra)
    return time.perf_counter() - begun, counter.requests[table]


def _floor_batch(records: list[Any], start: int, district: str) -> list[dict[str, Any]]:
    """One floor BatchWriteItem's puts: the 25 records from ``start``, each made into its item under
    ``district`` as Upsert makes it."""
    from rostersync.directory.repository import _to_item

    return [{"PutRequest": {"Item": _to_item(record.to_item(district))}} for record in records[start : start + 25]]


def upsert_concurrency(stack: Any) -> tuple[int, int]:
    """Upsert's Map's MaxConcurrency (chunks at once) in the state machine, and each chunk's IO threads."""
    from rostersync.config import runtime_config

    definition = json.loads((Path(stack.template_path).parent / "statemachine" / "sync.asl.json").read_text())
    (upsert,) = (
        state
        for state in definition["States"].values()
        if state.get("Type") == "Map" and "UpsertChunk" in json.dumps(state["ItemProcessor"])
    )
    return int(upsert["MaxConcurrency"]), runtime_config().io_threads


def write_floor_threaded(table: str, records: list[Any], district: str, chunks: int, threads: int) -> float:
    """Seconds to write ``records`` under ``district`` as Upsert's Map would send them: ``chunks`` clients
    side by side, each writing its share 25 items a request from ``threads`` threads, asking for the
    consumed capacity."""
    from concurrent.futures import ThreadPoolExecutor

    from rostersync import aws

    clients = [aws.client("dynamodb") for _ in range(max(1, chunks))]

    def send(start: int) -> None:
        batch = {table: _floor_batch(records, start, district)}
        clients[start // 25 % len(clients)].batch_write_item(RequestItems=batch, ReturnConsumedCapacity="TOTAL")

    begun = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, chunks) * max(1, threads)) as pool:
        list(pool.map(send, range(0, len(records), 25)))
    return time.perf_counter() - begun


def forget_district(stack: Any, district: str, written: int) -> None:
    """Drop a write floor's copy of the district (``written`` items) from the embedded directory table, once
    timed."""
    from rostersync.directory.keys import COLLECTIONS, SHARDS, partition_key

    keys = [partition_key(district, collection, shard) for collection in COLLECTIONS for shard in range(SHARDS)]
    dropped = stack.forget_partitions("DirectoryTable", keys)
    if dropped != written:
        raise SystemExit(f"the floor wrote {written:,} items under {district} but {dropped:,} were found to drop")


def measure_read_floor(
    dynamodb: Any, table: str, district: str, simulator: Any, **query: Any
) -> tuple[float, int, int]:
    """Seconds to read every directory item of the district with plain paginated Queries (one partition
    after another, no threads) plus every roster page from the provider (Clever: plain GETs following
    ``links rel=next``); items and pages read. ``query``: more Query parameters (``ReturnConsumedCapacity``)."""
    import requests

    from rostersync.directory.keys import SHARDS, partition_key

    begun = time.perf_counter()
    items = 0
    paginator = dynamodb.get_paginator("query")
    for collection in ("schools", "classrooms", "people", "enrollments", "guardian_links"):
        for shard in range(SHARDS):
            for page in paginator.paginate(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": partition_key(district, collection, shard)}},
                **query,
            ):
                items += len(page.get("Items", []))
    pages = 0
    if simulator is not None:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer bench-token"
        for resource in ("districts", "schools", "terms", "courses", "sections", "users"):
            url: str | None = f"{simulator.base_url}/v3.0/{resource}?limit=10000"
            while url:
                body = session.get(url, timeout=120).json()
                pages += 1
                nxt = next((link["uri"] for link in body.get("links", []) if link.get("rel") == "next"), None)
                url = f"{simulator.base_url}{nxt}" if nxt else None
    return time.perf_counter() - begun, items, pages


if __name__ == "__main__":
    main()
