"""Benchmark: a full sync of a synthetic district on the embedded stack, then an unchanged re-sync.

    python bench/bench_sync.py --students 20000 [--provider clever|oneroster-csv|oneroster-rest]
    (make bench; STUDENTS=… and PROVIDER=… to change them)

Prints records/s, DynamoDB write requests (counted at the embedded server), the floor (the same number
of items written with plain BatchWriteItem to the same embedded DynamoDB, in the same process) and the
ratio between the two, the unchanged re-sync's write count and time, and peak memory. For Clever, two
1 %-change nights follow (``bench_events.py``): one read from Clever's events, one in full, with their
provider requests, directory writes and times.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--page-limit", type=int, default=10_000)
    parser.add_argument("--provider", choices=("clever", "oneroster-csv", "oneroster-rest"), default="clever")
    args = parser.parse_args()
    for name in ("werkzeug", "moto", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    from rostersync import aws
    from rostersync.admin import connect_provider
    from rostersync.config import runtime_config
    from rostersync.directory.product import ProductDirectory, import_product_directory
    from rostersync.directory.repository import DirectoryRepository, SyncStateRepository, _to_item
    from rostersync_tools.local.convert import clever_to_oneroster, zip_bundle
    from rostersync_tools.local.simulator import ProviderSimulator
    from rostersync_tools.local.stack import EmbeddedStack, WriteRequestCounter
    from rostersync_tools.local.synthetic import write_synthetic_clever_district

    workdir = Path(tempfile.mkdtemp(prefix="rostersync-bench-"))
    started = time.perf_counter()
    sizes = write_synthetic_clever_district(workdir, students=args.students)
    print(f"synthetic district: {json.dumps(sizes)} (generated in {time.perf_counter() - started:.1f}s)")
    bundle = workdir / "oneroster"
    if args.provider != "clever":
        clever_to_oneroster(workdir, bundle)
        print(f"as a OneRoster 1.1 CSV bundle for {args.provider}")

    stack = EmbeddedStack(parameters={"LogLevel": "WARNING"}).start()
    served = workdir if args.provider == "clever" else bundle
    simulator = ProviderSimulator(served, token="bench-token").start()  # noqa: S106
    try:
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        district_id = "bench-district"
        schools = json.loads((workdir / "schools.json").read_text())["data"]
        provider = "clever" if args.provider == "clever" else "oneroster"  # ids are the same in both forms
        product = ProductDirectory.model_validate(
            {
                "district": {"id": district_id, "name": "Benchmark District", "plan": "premium"},
                "schools": [
                    {"id": f"sch-{n}", "name": s["data"]["name"], "provider_ids": {provider: s["data"]["id"]}}
                    for n, s in enumerate(schools)
                ],
            }
        )
        directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
        state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
        import_product_directory(product, directory, state)
        secrets = aws.client("secretsmanager")
        if args.provider == "oneroster-csv":
            connect_provider(state, secrets, "oneroster-csv")
            state.mark_enabled("bench")  # sync is enabled: each upload syncs for real
        elif args.provider == "oneroster-rest":
            connect_provider(
                state,
                secrets,
                "oneroster-rest",
                simulator.base_url,
                "bench-token",
                1_000,
                stack=stack.stack_name,
                auth="bearer",
            )
        else:
            connect_provider(
                state, secrets, "clever", simulator.base_url, "bench-token", args.page_limit, stack=stack.stack_name
            )
        s3 = aws.client("s3")
        nights = iter(range(1, 100))

        def begin_sync() -> str:
            if args.provider != "oneroster-csv":
                return stack.start_sync(district_id, trigger="manual")
            # As an SFTP upload: the bundle lands in the district's folder; S3 → EventBridge starts the run.
            key = f"uploads/{district_id}/night-{next(nights)}/bundle.zip"
            s3.put_object(Bucket=config.sync_bucket, Key=key, Body=zip_bundle(bundle))
            (execution,) = stack.publish_upload(key)
            return execution

        def sync(label: str) -> tuple[float, int, dict]:
            with WriteRequestCounter() as counter:
                begun = time.perf_counter()
                description = stack.wait(begin_sync(), timeout=7200)
                seconds = time.perf_counter() - begun
            run = state.get_run(description["executionArn"].rsplit(":", 1)[1]) or {}
            if description["status"] != "SUCCEEDED" or "report_key" not in run:
                raise SystemExit(f"{label}: {description['status']} {description.get('cause', '')[:500]}")
            report = json.loads(s3.get_object(Bucket=config.sync_bucket, Key=run["report_key"])["Body"].read())
            return seconds, counter.requests[config.directory_table], report

        seconds, writes, report = sync("full sync")
        counts = report["counts"]
        written = sum(c["created"] + c["updated"] + c["restored"] + c["archived"] for c in counts.values())
        fetched = sum(
            c["created"] + c["updated"] + c["restored"] + c["unchanged"] + c["skipped"] for c in counts.values()
        )
        print(f"\nfull sync: {report['status']} in {seconds:.1f}s")
        for kind, c in counts.items():
            print(f"  {kind:15} created {c['created']:>9,}  skipped {c['skipped']:>6,}  errors {c['errors']:>4,}")
        print(f"  records written:        {written:,} ({written / seconds:,.0f} records/s end to end)")
        print(f"  records handled:        {fetched:,} ({fetched / seconds:,.0f} records/s)")
        print(f"  DynamoDB write requests: {writes:,} ({written / max(writes, 1):.1f} records per request)")

        # The floor: the same number of items, written with plain BatchWriteItem (25 a request) from one
        # thread, to the same embedded table, under a district of its own.
        sample = next(directory.records("enrollments"))
        item = sample.to_item("bench-floor")
        begun = time.perf_counter()
        requests = 0
        with WriteRequestCounter() as floor_counter:
            for start in range(0, written, 25):
                batch = []
                for n in range(start, min(start + 25, written)):
                    batch.append(
                        {
                            "PutRequest": {
                                "Item": _to_item({**item, "sk": f"floor-{n:09d}", "pk": f"bench-floor#x#{n % 16:02d}"})
                            }
                        }
                    )
                dynamodb.batch_write_item(RequestItems={config.directory_table: batch})
                requests += 1
        floor = time.perf_counter() - begun
        print(
            f"\nfloor (plain BatchWriteItem of {written:,} items): {floor:.1f}s, "
            f"{floor_counter.requests[config.directory_table]:,} requests ({written / floor:,.0f} items/s)"
        )
        print(
            f"  full sync / floor: {seconds / floor:.2f}x the time, {writes / max(requests, 1):.2f}x the write requests"
        )

        seconds2, writes2, report2 = sync("unchanged re-sync")
        unchanged = sum(c["unchanged"] for c in report2["counts"].values())
        print(
            f"\nunchanged {'delta ' if args.provider == 'oneroster-rest' else ''}re-sync: {report2['status']} "
            f"in {seconds2:.1f}s, {writes2} directory write requests, "
            f"{unchanged:,} records unchanged"
        )
        if args.provider == "clever":
            from bench_events import one_percent_nights

            one_percent_nights(workdir, simulator, state, sync, stack)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak memory (RSS of this process: the embedded AWS, simulator and every Lambda): {peak:,.0f} MiB")
    finally:
        simulator.stop()
        stack.stop()


if __name__ == "__main__":
    main()
