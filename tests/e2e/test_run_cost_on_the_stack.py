"""A run's counted cost against what the embedded stack saw."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from rostersync import aws
from rostersync.config import runtime_config
from rostersync_tools.local.stack import S3RequestCounter, dynamodb_item_bytes


def _meters(bucket: str, district_id: str, run_id: str) -> list[dict[str, Any]]:
    s3 = aws.client("s3")
    prefix = f"runs/{district_id}/{run_id}/meter/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def test_a_demo_syncs_counted_s3_requests_are_the_ones_the_stack_received(stack, district, demo_dataset, demo_product):
    # Given the demo district, synced once while the stack's server notes every S3 request
    made = district(demo_dataset("snapshot-1"), product=demo_product())
    with S3RequestCounter() as seen:
        outcome = made.sync(export=False)
        stack.wait_until(
            lambda: any(m["step"] == "finish_run" for m in _meters(outcome.bucket, outcome.district_id, outcome.run_id))
        )
    assert outcome.status == "succeeded"
    meters = _meters(outcome.bucket, outcome.district_id, outcome.run_id)

    # When the meters' S3 requests are added up
    counted = sum(n for m in meters for name, n in m["requests"].items() if name.startswith("s3:"))

    # Then they are the requests the server received on the district's files, with the state machine's own
    # reads beside them: its two distributed Maps' ItemReaders (signed with the state machine's role) read
    # their item lists, Match partitions' plan/partitions.json and the Upsert Map's plan/manifest.json
    ours = os.environ["AWS_ACCESS_KEY_ID"]  # the test's own reads (report.json) are not the run's
    on_district = [r for r in seen.requests if f"runs/{outcome.district_id}/" in r[1] and r[2] != ours]
    (partitions_read,) = [
        r for r in on_district if r[0] == "GET" and r[1].split("?")[0].endswith("/plan/partitions.json")
    ]
    by_state_machine = [r for r in on_district if r[2] == partitions_read[2]]
    assert sorted((r[0], r[1].split("?")[0].rsplit("/", 1)[-1]) for r in by_state_machine) == [
        ("GET", "manifest.json"),
        ("GET", "partitions.json"),
    ]
    assert counted == len(on_district) - len(by_state_machine), (counted, len(on_district))

    # and the report's cost carries every step before it, priced
    cost = outcome.report["cost"]
    assert set(cost["steps"]) >= {
        "start_run",
        "fetch_roster",
        "match_roster",
        "match_partition",
        "combine_match",
        "upsert_chunk",
        "archive_unmanaged",
    }
    # (every meter of a step: Fetch writes one for its plan, one per slice of each list and one for the
    # assembly; Upsert one per chunk)
    by_step: dict[str, tuple[Counter[str], int]] = {}
    for m in meters:
        if m["step"] not in ("write_report", "finish_run"):
            requests, invocations = by_step.get(m["step"], (Counter(), 0))
            by_step[m["step"]] = (requests + Counter(m["requests"]), invocations + 1)
    assert by_step["fetch_roster"][1] >= 3, "Fetch's plan, slices and assembly each keep a meter"
    for step, (requests, invocations) in by_step.items():
        assert cost["steps"][step]["requests"] == dict(requests), step
        assert cost["steps"][step]["invocations"] == invocations, step
    assert cost["provider_requests"] > 0
    assert cost["dynamodb_write_units"] >= sum(
        n for m in meters for name, n in m["requests"].items() if name in ("dynamodb:PutItem", "dynamodb:UpdateItem")
    )
    assert cost["lambda_gb_seconds"] > 0 and cost["total_usd"] > 0
    # and its state transitions are the states the execution entered, with one per child of the distributed
    # Maps (each Upsert chunk and Match partition runs as an execution of its own)
    sfn, names, token = aws.client("stepfunctions"), [], None
    while True:
        page = sfn.get_execution_history(
            executionArn=outcome.execution["executionArn"], maxResults=1000, **({"nextToken": token} if token else {})
        )
        names += [e["stateEnteredEventDetails"]["name"] for e in page["events"] if e["type"].endswith("StateEntered")]
        token = page.get("nextToken")
        if not token:
            break
    children = cost["steps"]["upsert_chunk"]["invocations"] + cost["steps"]["match_partition"]["invocations"]
    assert cost["state_transitions"] == len(names) + children, Counter(names)
    assert set(cost["usd"]) == {"lambda", "dynamodb", "s3", "step_functions", "secrets_manager"}
    html = aws.client("s3").get_object(Bucket=runtime_config().sync_bucket, Key=outcome.run["html_key"])["Body"].read()
    assert b'id="cost"' in html


def test_a_query_is_billed_for_the_whole_items_it_read_not_for_what_its_filter_and_projection_return(stack):
    # Given a district's partition of 40 people of about 1.5 KB, ten of them without a Clever link
    dynamodb = aws.client("dynamodb")
    table = runtime_config().directory_table
    district_id = f"d-capacity-{os.getpid()}"
    pk = f"{district_id}#people#05"
    items = [
        {
            "pk": {"S": pk},
            "sk": {"S": f"per-{n:03d}"},
            "district_id": {"S": district_id},
            "id": {"S": f"per-{n:03d}"},
            "kind": {"S": "students"},
            "provider_ids": {"M": {"clever": {"S": f"c-{n}"}}} if n % 4 else {"M": {}},
            "fields": {"M": {"notes": {"S": "x" * 1_500}}},
        }
        for n in range(40)
    ]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        assert not dynamodb.batch_write_item(RequestItems={table: requests})["UnprocessedItems"]
    whole = 0.5 * -(-sum(dynamodb_item_bytes(item) for item in items) // 4096)  # eventually consistent

    def units(**options: Any) -> tuple[float, int]:
        answer = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ReturnConsumedCapacity="TOTAL",
            **options,
            ExpressionAttributeValues={":pk": {"S": pk}, **options.pop("ExpressionAttributeValues", {})},
        )
        return answer["ConsumedCapacity"]["CapacityUnits"], answer["Count"]

    # When it is read whole, by Match's index projection, and filtered to the unlinked ten
    # Then each read is billed the units of all 40 whole items, as AWS bills a Query
    assert units() == (whole, 40)
    assert units(ProjectionExpression="id, provider_ids") == (whole, 40)
    filtered = units(
        FilterExpression="attribute_not_exists(provider_ids.#p)",
        ExpressionAttributeNames={"#p": "clever"},
    )
    assert filtered == (whole, 10)
    # and a Limit bills only the items the page read
    first_ten = 0.5 * -(-sum(dynamodb_item_bytes(item) for item in items[:10]) // 4096)
    assert units(Limit=10, ProjectionExpression="id") == (first_ten, 10)
    assert whole > 5 * 0.5 and first_ten < whole
