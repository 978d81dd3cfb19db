"""Benchmark: Fetch's phases for a synthetic Clever district, mapping in the slices vs in the assembly.

    python bench/bench_fetch.py --students 5000 [--page-limit 10000] [--max-pages-per-slice 1000]
                                [--answer-seconds 0] [--events-night [--mirror-chunks-per-part N]]
                                [--oneroster-parts N]

Runs Fetch's three phases in this process against the embedded stack's S3 and DynamoDB and the provider
simulator (no state machine, no Match): the plan, every slice of every list, then the assembly, twice
for the same roster — once as an older plan reads it (the slices keep the pages, the assembly maps every
record) and once as this code plans it (each slice maps what it read, the assembly combines). Prints each
phase's seconds, the records the snapshot holds, records/s of the assembly and of the users slices, and
checks that both snapshots hold the same records. ``--answer-seconds`` has the simulator wait that long
before each answer, as Clever across the internet does: a slice asks for its next page while it maps this
one (``paged``), so the users slices then take about the longer of the answers and the mapping, not
their sum.

Times include moto serving S3 in the same process: compare the two runs with each other.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=5_000)
    parser.add_argument("--page-limit", type=int, default=10_000)
    parser.add_argument("--max-pages-per-slice", type=int, default=1_000)
    parser.add_argument("--answer-seconds", type=float, default=0.0, help="the simulator's wait before each answer")
    parser.add_argument(
        "--events-night",
        action="store_true",
        help="then a Clever events night without events on the second run's mirror: in slices vs in one pass",
    )
    parser.add_argument(
        "--mirror-chunks-per-part",
        type=int,
        default=0,
        help="the events night reads a users list longer than this many mirror chunks in parts (0: the default)",
    )
    parser.add_argument(
        "--oneroster-parts",
        type=int,
        default=0,
        help="instead: the district over OneRoster REST (pages of 1,000), read whole and in parts of this many "
        "records by offset",
    )
    args = parser.parse_args()
    for name in ("werkzeug", "moto", "botocore", "urllib3", "rostersync", "aws_lambda_powertools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    from rostersync import aws
    from rostersync.config import runtime_config
    from rostersync.contracts import RunRef
    from rostersync.steps import fetch
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.stack import EmbeddedStack
    from rostersync_tools.local.synthetic import product_for, set_up_district, write_synthetic_clever_district

    workdir = Path(tempfile.mkdtemp(prefix="rostersync-bench-fetch-"))
    sizes = write_synthetic_clever_district(workdir, students=args.students)
    print(f"synthetic district: {args.students:,} students, {sizes['users']:,} users, {sizes['sections']:,} sections")
    if args.oneroster_parts:
        oneroster_parts(workdir, args.oneroster_parts, args.answer_seconds)
        return
    stack = EmbeddedStack(parameters={"LogLevel": "WARNING"}).start()
    simulator = ProviderSimulator(workdir, token="bench-token", answer_seconds=args.answer_seconds).start()  # noqa: S106
    try:
        config = runtime_config()
        s3 = aws.client("s3")

        def set_up(district_id: str) -> None:
            set_up_district(
                product_for(workdir, district_id, "Benchmark District"),
                "clever",
                simulator.base_url,
                "bench-token",
                args.page_limit,
                stack=stack.stack_name,
                max_pages_per_slice=args.max_pages_per_slice,
                **({"mirror_chunks_per_part": args.mirror_chunks_per_part} if args.mirror_chunks_per_part else {}),
            )

        def snapshot(result: Any) -> dict[str, list[str]]:
            manifest = json.loads(
                s3.get_object(Bucket=config.sync_bucket, Key=result.snapshot_manifest_key)["Body"].read()
            )
            ids: dict[str, list[str]] = {}
            for collection, keys in manifest.items():
                ids[collection] = sorted(
                    line.decode("utf-8")
                    for key in keys
                    for line in gzip.decompress(
                        s3.get_object(Bucket=config.sync_bucket, Key=key)["Body"].read()
                    ).splitlines()
                )
            return ids

        figures: dict[str, dict[str, Any]] = {}
        snapshots = {}
        runs: dict[str, Any] = {}
        for label, in_slices in (("mapped in the assembly (before)", False), ("mapped in the slices (now)", True)):
            district_id = f"bench-fetch-{'slices' if in_slices else 'assembly'}"
            set_up(district_id)
            run = RunRef(district_id=district_id, run_id=f"run-{int(time.time())}", provider="clever")
            began = time.perf_counter()
            plan = fetch.plan_fetch(run)
            plan_seconds = time.perf_counter() - began
            resources = plan.resources
            if not in_slices:
                # as a plan written before the slices mapped: the users one list, the assembly maps everything
                store = fetch.DistrictContext.for_run(district_id, run.run_id).store
                written = store.get_json(plan.plan_key)
                lists = {name: {"path": path} for name, path in fetch.CLEVER_LISTS.items()}
                store.put_json(fetch.PLAN_NAME, {**written, "mapped_in_slices": False, "lists": lists, "parts": {}})
                resources = list(lists)
            slices: dict[str, list[float]] = {}
            for resource in resources:
                done = False
                while not done:
                    began = time.perf_counter()
                    done = fetch.read_fetch_slice(district_id, run.run_id, resource).done
                    slices.setdefault(resource, []).append(time.perf_counter() - began)
            began = time.perf_counter()
            result = fetch.assemble_snapshot(run)
            assemble_seconds = time.perf_counter() - began
            records = sum(result.records.values()) + result.error_count
            store = fetch.DistrictContext.for_run(district_id, run.run_id).store
            checkpoints = {name: fetch._get_json_or_none(store, f"fetch/{name}/checkpoint.json") for name in slices}
            # the users list: one list before, a list per role now (read side by side by the state machine)
            users = {name: cp for name, cp in checkpoints.items() if name.startswith("users")}
            mapped = {
                name: sum(chunks["count"] for entry in cp.get("mapped", []) for chunks in entry.values())
                for name, cp in checkpoints.items()
            }
            seconds = {name: sum(times) for name, times in slices.items()}
            longest = max(users, key=lambda name: seconds[name])
            if in_slices:
                for name, cp in users.items():
                    print(
                        f"  {name}: {cp['records']:,} users, {cp['pages']} page(s), {mapped[name]:,} records and "
                        f"errors mapped, {seconds[name]:.2f} s read and mapped; left to another role's list: "
                        f"{cp.get('listed_elsewhere', 0):,}"
                    )
            figures[label] = {
                "plan": plan_seconds,
                "slices": {
                    **{n: t for n, t in seconds.items() if n not in users},
                    "users": sum(seconds[n] for n in users),
                },
                "slice_count": {
                    **{n: len(t) for n, t in slices.items() if n not in users},
                    "users": sum(len(slices[n]) for n in users),
                },
                "users_lists": len(users),
                "users_longest": (longest, seconds[longest], users[longest]["pages"]),
                "assemble": assemble_seconds,
                "records": records,
                "users_items": sum(cp["records"] for cp in users.values()),
                "users_pages": sum(cp["pages"] for cp in users.values()),
                "users_mapped": sum(mapped[n] for n in users),
                "mapped": {
                    **{n: c for n, c in mapped.items() if n not in users},
                    "users": sum(mapped[n] for n in users),
                },
                "classrooms": result.records["classrooms"],
            }
            snapshots[label] = snapshot(result)
            runs[label] = (run, result)
            assert result.complete, result.problems

        print(
            f"{'':34} {'plan s':>7} {'users s':>8} {'other lists s':>14} {'assembly s':>11} {'records':>9} "
            f"{'assembly rec/s':>15}"
        )
        for label, f in figures.items():
            other = sum(v for k, v in f["slices"].items() if k != "users")
            print(
                f"{label:34} {f['plan']:>7.2f} {f['slices']['users']:>8.2f} {other:>14.2f} {f['assemble']:>11.2f} "
                f"{f['records']:>9,} {f['records'] / f['assemble']:>15,.0f}"
            )
        before, now = figures.values()
        name, longest, pages = now["users_longest"]
        print(
            f"users: one list before, {now['users_lists']} lists by role now; the longest {name}: {pages} pages "
            f"in {longest:.2f} s (the whole list before: {before['users_pages']} pages in "
            f"{before['slices']['users']:.2f} s)"
        )
        print(
            f"users slices: {now['slice_count']['users']} slice(s), {now['users_items']:,} users read, "
            f"{now['users_mapped']:,} records and errors mapped; {now['users_items'] / now['slices']['users']:,.0f} "
            f"users/s read and mapped (read only: {before['users_items'] / before['slices']['users']:,.0f}/s)"
        )
        if args.answer_seconds:
            print(
                f"users: {before['users_pages']} pages × {args.answer_seconds:g} s the provider waits = "
                f"{before['users_pages'] * args.answer_seconds:.1f} s of answers one after another, read only in "
                f"{before['slices']['users']:.2f} s; by role the longest list {pages} pages = "
                f"{pages * args.answer_seconds:.1f} s of answers, read and mapped in {longest:.2f} s"
            )
        for name in ("schools", "sections", "users"):
            print(
                f"{name} slices: {now['slice_count'][name]} slice(s), {now['mapped'][name]:,} records and errors "
                f"mapped in {now['slices'][name]:.2f} s: {now['mapped'][name] / now['slices'][name]:,.0f} records/s "
                f"read, mapped and written (reading alone: {before['slices'][name]:.2f} s)"
            )
        print(
            f"the assembly now rewrites {now['classrooms']:,} classrooms (names their course and term) and "
            f"combines the rest by chunk key"
        )
        mapped = now["records"]
        slice_seconds = sum(now["slices"].values()) - sum(before["slices"].values())
        print(
            f"mapping moved into the slices: {slice_seconds:+.2f} s over all slices; the assembly "
            f"{before['assemble']:.2f} s → {now['assemble']:.2f} s ({before['assemble'] / now['assemble']:.1f} × less) "
            f"for {mapped:,} records"
        )
        a, b = snapshots.values()
        same = {c: a[c] == b[c] for c in a}
        print(f"same snapshot records per collection: {same}")
        if not all(same.values()):
            raise SystemExit("the two snapshots differ")
        if args.events_night:
            events_night(fetch, "bench-fetch-slices", runs["mapped in the slices (now)"], snapshot)
    finally:
        simulator.stop()
        stack.stop()


def timed_fetch(fetch: Any, run: Any) -> tuple[float, dict[str, float], Any, float]:
    """Fetch's three phases for ``run``, in-process, each list read to its end in turn: the plan's seconds,
    each list's seconds, the assembly's result and seconds."""
    began = time.perf_counter()
    plan = fetch.plan_fetch(run)
    plan_seconds = time.perf_counter() - began
    seconds: dict[str, float] = {}
    for resource in plan.resources:
        began = time.perf_counter()
        while not fetch.read_fetch_slice(run.district_id, run.run_id, resource).done:
            pass
        seconds[resource] = time.perf_counter() - began
    began = time.perf_counter()
    result = fetch.assemble_snapshot(run)
    return plan_seconds, seconds, result, time.perf_counter() - began


def oneroster_parts(workdir: Path, part_records: int, answer_seconds: float) -> None:
    """The district over OneRoster REST in pages of 1,000, Fetch read twice: each collection one list, then
    a collection counted above ``part_records`` in parts by offset. The lists run one after another here
    (the state machine runs them side by side): prints each list's pages and seconds and the longest, and
    checks both snapshots hold the same records."""
    from rostersync import aws
    from rostersync.config import runtime_config
    from rostersync.contracts import RunRef
    from rostersync.steps import fetch
    from rostersync_tools.local.convert import clever_to_oneroster
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.stack import EmbeddedStack
    from rostersync_tools.local.synthetic import product_for, set_up_oneroster_rest_district

    bundle = workdir / "oneroster"
    clever_to_oneroster(workdir, bundle)
    stack = EmbeddedStack(parameters={"LogLevel": "WARNING"}).start()
    simulator = ProviderSimulator(bundle, token="bench-token", answer_seconds=answer_seconds).start()  # noqa: S106
    try:
        s3, bucket = aws.client("s3"), runtime_config().sync_bucket
        snapshots = []
        for label, parts in (("one list a collection", 10**12), (f"parts of {part_records:,}", part_records)):
            district_id = f"bench-oneroster-{parts}"
            product = product_for(workdir, district_id, "Benchmark District", provider="oneroster")
            state = set_up_oneroster_rest_district(product, simulator, "bench-token", stack=stack.stack_name)
            state.put_item("CONNECTION", {**state.get_item("CONNECTION"), "part_records": parts})
            run = RunRef(district_id=district_id, run_id=f"run-{int(time.time())}", provider="oneroster-rest")
            plan_seconds, seconds, result, assemble_seconds = timed_fetch(fetch, run)
            # read at rest: complete (a page or a part boundary found moved would hold the night's archiving)
            assert result.complete, result.problems
            store = fetch.DistrictContext.for_run(district_id, run.run_id).store
            pages = {r: fetch._get_json_or_none(store, f"fetch/{r}/checkpoint.json")["pages"] for r in seconds}
            longest = max(seconds, key=lambda r: seconds[r])
            print(
                f"{label}: {len(seconds)} lists, {sum(pages.values())} pages in all; plan {plan_seconds:.2f} s, "
                f"the longest list {longest} {pages[longest]} pages in {seconds[longest]:.2f} s, all lists "
                f"{sum(seconds.values()):.2f} s, assembly {assemble_seconds:.2f} s; on the way, every list at once: "
                f"{plan_seconds + seconds[longest] + assemble_seconds:.2f} s"
            )
            print("  " + ", ".join(f"{r} {pages[r]} pages {seconds[r]:.2f} s" for r in seconds))
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=result.snapshot_manifest_key)["Body"].read())
            snapshots.append(
                {
                    c: sorted(
                        line
                        for key in keys
                        for line in gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).splitlines()
                    )
                    for c, keys in manifest.items()
                }
            )
        same = {c: snapshots[0][c] == snapshots[1][c] for c in snapshots[0]}
        print(f"same snapshot records per collection: {same}")
        if not all(same.values()):
            raise SystemExit("the two snapshots differ")
    finally:
        simulator.stop()
        stack.stop()


def events_night(fetch: Any, district_id: str, first: Any, snapshot: Any) -> None:
    """A Clever events night without events after ``first`` (a full read that kept a mirror), twice on the
    same mirror: as Fetch reads it now (the plan reads the events, a Map item per list maps the mirror's
    chunks, the assembly combines) and in one pass (the assembly rebuilt and mapped the whole roster, as
    before). Prints each phase's seconds and checks both snapshots hold the same records."""
    from rostersync import aws
    from rostersync.contracts import RunRef
    from rostersync.incremental import RunStoreMirror
    from rostersync.providers.clever_events import CleverIncrementalProvider

    run, result = first
    ctx = fetch.DistrictContext.for_run(district_id, run.run_id)
    ctx.state.put_item("CURSOR#clever", {"cursor": result.cursor, "run_id": run.run_id})
    night = RunRef(district_id=district_id, run_id=f"{run.run_id}-events", provider="clever")
    plan_seconds, slices, sliced, assemble_seconds = timed_fetch(fetch, night)
    assert sliced.sync_kind == "events" and sliced.complete, (sliced.sync_kind, sliced.problems)

    whole = RunRef(district_id=district_id, run_id=f"{run.run_id}-one-pass", provider="clever")
    whole_ctx = fetch.DistrictContext.for_run(district_id, whole.run_id)
    reading = fetch._reading(district_id, whole.run_id)
    mirror = RunStoreMirror(aws.client("s3"), whole_ctx.config.sync_bucket, district_id, whole.run_id)
    provider = CleverIncrementalProvider(
        fetch._clever_client(reading, fetch.RequestPacer(interval=0.0)), mirror, cursor=result.cursor
    )
    began = time.perf_counter()
    one_pass = fetch._write_snapshot(whole_ctx, whole, provider)
    one_pass_seconds = time.perf_counter() - began
    assert one_pass.sync_kind == "events" and one_pass.complete

    records = sum(sliced.records.values()) + sliced.error_count
    lists = sum(slices.values())
    print(
        f"events night without events, {records:,} records: in slices: plan {plan_seconds:.2f} s, lists "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in slices.items())
        + f" s (together {lists:.2f} s; the longest {max(slices.values()):.2f} s), assembly {assemble_seconds:.2f} s;"
        f" on the way, a Map running every list at once: {plan_seconds + max(slices.values()) + assemble_seconds:.2f} s"
    )
    print(
        f"  in one pass (the assembly rebuilds and maps the roster): {one_pass_seconds:.2f} s, "
        f"{records / one_pass_seconds:,.0f} records/s; the users list in slices "
        f"{slices['users']:.2f} s"
    )
    a, b = snapshot(sliced), snapshot(one_pass)
    same = {c: a[c] == b[c] for c in a}
    print(f"  same snapshot records per collection: {same}")
    if not all(same.values()):
        raise SystemExit("the events night's two snapshots differ")


if __name__ == "__main__":
    main()
