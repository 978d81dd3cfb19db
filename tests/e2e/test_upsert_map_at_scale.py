"""The Upsert Map within Step Functions' limits at NYC size (issue 8, part 4).

NYC's plan is about 2,000 chunks. A Distributed Map gathers every child's output before its ``ResultPath``
applies, and AWS fails a state whose gathered result is over 256 KB (``States.DataLimitExceeded``, which
``States.ALL`` does not catch). The embedded stack enforces that limit too, so:

- the real "Upsert directory" state (taken from the deployed definition) runs over a manifest of one-record
  chunks and succeeds, its state document staying small, and what it gathered per chunk, times NYC's
  2,000 chunks, stays under the limit. `make test` runs 200 chunks (the gathered result grows by one
  child's output per chunk); `make bench-map` runs the full 2,000 (``UPSERT_MAP_CHUNKS``);
- the old shape, children that keep their result, is refused by the same stack.
"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository
from rostersync.domain.records import Kind
from rostersync.matching.plan import PlannedWrite
from rostersync.storage import run_prefix
from rostersync_tools.local.stack import GATHERED_BYTES, STATE_PAYLOAD_LIMIT_BYTES, EmbeddedStack

NYC_CHUNKS = 2_000
CHUNKS = int(os.environ.get("UPSERT_MAP_CHUNKS", "200"))


def machine_around(stack: EmbeddedStack, state_name: str, state: dict[str, Any]) -> str:
    """A state machine made of one state of the sync's definition (its Next and Catch ending there)."""
    state = {k: v for k, v in state.items() if k != "Next"}
    state["End"] = True
    for catcher in state.get("Catch", []):
        catcher["Next"] = "Failed"
    definition = {"StartAt": state_name, "States": {state_name: state, "Failed": {"Type": "Fail"}}}
    sfn = stack.client("stepfunctions")
    role = f"arn:aws:iam::123456789012:role/{stack.stack_name}-local"
    name = f"test-{uuid.uuid4().hex[:8]}"
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)["stateMachineArn"]


def run_to_end(stack: EmbeddedStack, machine_arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine_arn, input=json.dumps(payload))["executionArn"]
    return stack.wait(arn, timeout=600)


def count_items(table: str, district_id: str) -> int:
    """The district's items in the table, every scan page counted (the session's stack holds others)."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "Select": "COUNT",
        "FilterExpression": "district_id = :d",
        "ExpressionAttributeValues": {":d": {"S": district_id}},
    }
    total = 0
    while True:
        page = aws.client("dynamodb").scan(**kwargs)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def one_record_chunk(n: int) -> bytes:
    record = DirectoryRecord(
        id=f"per_scale_{n:05d}",
        kind=Kind.STUDENTS,
        status="active",
        managed_by_sync=True,
        provider_ids={"clever": f"stu-{n}"},
        fields={"given_name": f"S{n}"},
        content_hash=f"h{n}",
    )
    line = json.dumps(PlannedWrite("create", record).to_json(), separators=(",", ":")).encode("utf-8")
    return gzip.compress(line + b"\n")


def test_the_upsert_map_runs_its_chunks_and_keeps_its_state_small_at_nyc_size(stack: EmbeddedStack):
    # Given a plan of 2,000 one-record chunks and its manifest, as Match writes them
    config = runtime_config()
    s3 = aws.client("s3")
    district_id, run_id = f"d-{uuid.uuid4().hex[:8]}", f"scale-{uuid.uuid4().hex[:8]}"
    prefix = run_prefix(district_id, run_id)
    keys = [f"{prefix}plan/writes-{n:05d}.ndjson.gz" for n in range(CHUNKS)]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: s3.put_object(Bucket=config.sync_bucket, Key=keys[n], Body=one_record_chunk(n)), range(CHUNKS)
            )
        )
    manifest_key = f"{prefix}plan/manifest.json"
    s3.put_object(Bucket=config.sync_bucket, Key=manifest_key, Body=json.dumps([{"chunk_key": k} for k in keys]))
    sfn = stack.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=stack.outputs["SyncStateMachineArn"])["definition"]
    )
    state = definition["States"]["Upsert directory"]
    name = f"Upsert directory {uuid.uuid4().hex[:8]}"  # its own name: its gathered size is read by it
    machine = machine_around(stack, name, state)
    payload = {"run": {"district_id": district_id, "run_id": run_id}, "match": {"plan_manifest_key": manifest_key}}

    # When the sync's own Upsert Map runs over it
    started = time.perf_counter()
    execution = run_to_end(stack, machine, payload)
    seconds = time.perf_counter() - started

    # Then it succeeds, every chunk was written, and the state document is what came in: nothing gathered
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = execution["output"]
    assert json.loads(output) == payload
    gathered = GATHERED_BYTES[name]
    at_nyc_size = gathered * NYC_CHUNKS / CHUNKS
    print(  # noqa: T201
        f"\n[scale] {CHUNKS} chunks: {seconds:.1f}s, gathered {gathered} bytes "
        f"(at {NYC_CHUNKS:,} chunks: {at_nyc_size:,.0f}), state output {len(output.encode())} bytes"
    )
    assert at_nyc_size < STATE_PAYLOAD_LIMIT_BYTES / 4, "NYC's plan would gather near Step Functions' limit"
    directory = DirectoryRepository(aws.client("dynamodb"), config.directory_table, district_id)
    assert all(directory.get(Kind.STUDENTS, f"per_scale_{n:05d}") is not None for n in (0, CHUNKS // 2, CHUNKS - 1))
    assert count_items(config.directory_table, district_id) == CHUNKS


def test_a_map_that_gathers_more_than_256_kb_fails_the_execution_even_under_a_catch_all(stack: EmbeddedStack):
    # Given the old shape: a Map whose children each return ~1 KB and keep it, discarded only by
    # ResultPath null, with a Catch on States.ALL (which on AWS does not catch States.DataLimitExceeded)
    child_result = "x" * 1_000

    def gathering(items: int) -> dict[str, Any]:
        return {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Chunk",
                "States": {"Chunk": {"Type": "Pass", "Result": {"written": child_result}, "End": True}},
            },
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "unused"}],
            "Next": "unused",
        }

    over = STATE_PAYLOAD_LIMIT_BYTES // 1_000 + 10  # about 272 KB gathered
    under = STATE_PAYLOAD_LIMIT_BYTES // 1_000 - 10  # about 252 KB gathered

    # When each runs
    refused = run_to_end(stack, machine_around(stack, "Upsert", gathering(over)), {"items": list(range(over))})
    allowed = run_to_end(stack, machine_around(stack, "Upsert", gathering(under)), {"items": list(range(under))})

    # Then the one over the limit fails the execution with States.DataLimitExceeded; the other passes
    assert refused["status"] == "FAILED"
    assert refused["error"] == "States.DataLimitExceeded"
    assert "Upsert" in refused["cause"] and str(STATE_PAYLOAD_LIMIT_BYTES) in refused["cause"]
    assert allowed["status"] == "SUCCEEDED"
    assert json.loads(allowed["output"]) == {"items": list(range(under))}


def test_a_failed_chunk_fails_the_map_as_aws_does(stack: EmbeddedStack):
    # Given a plan whose manifest names a chunk that is not there (its Upsert fails past its retries)
    config = runtime_config()
    s3 = aws.client("s3")
    district_id, run_id = f"d-{uuid.uuid4().hex[:8]}", f"scale-{uuid.uuid4().hex[:8]}"
    prefix = run_prefix(district_id, run_id)
    keys = [f"{prefix}plan/writes-{n:05d}.ndjson.gz" for n in range(3)]
    for n in (0, 2):
        s3.put_object(Bucket=config.sync_bucket, Key=keys[n], Body=one_record_chunk(n))
    manifest_key = f"{prefix}plan/manifest.json"
    s3.put_object(Bucket=config.sync_bucket, Key=manifest_key, Body=json.dumps([{"chunk_key": k} for k in keys]))
    sfn = stack.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=stack.outputs["SyncStateMachineArn"])["definition"]
    )
    machine = machine_around(stack, "Upsert directory", definition["States"]["Upsert directory"])
    payload = {"run": {"district_id": district_id, "run_id": run_id}, "match": {"plan_manifest_key": manifest_key}}

    # When the sync's own Upsert Map runs over it (ToleratedFailureCount 0)
    execution = run_to_end(stack, machine, payload)

    # Then the Map fails, and the run would go to its failure report, not on as if every chunk was written
    assert execution["status"] == "FAILED", execution.get("output")


def test_an_item_failing_with_a_states_error_fails_the_map_with_it_for_its_catch(stack: EmbeddedStack):
    # Given a Map whose item is a distributed Map that fails past its tolerance (one of its own items
    # fails), so the item ends with Step Functions' own States.ExceedToleratedFailureThreshold, under a Catch
    inner = {
        "Type": "Map",
        "ItemsPath": "$.chunks",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Chunk",
            "States": {"Chunk": {"Type": "Fail", "Error": "ChunkFailed", "Cause": "a chunk failed"}},
        },
        "End": True,
    }
    definition = {
        "StartAt": "Lists",
        "States": {
            "Lists": {
                "Type": "Map",
                "ItemsPath": "$.lists",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Slices",
                    "States": {"Slices": inner},
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    sfn = stack.client("stepfunctions")
    role = f"arn:aws:iam::123456789012:role/{stack.stack_name}-local"
    name = f"test-{uuid.uuid4().hex[:8]}"
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)["stateMachineArn"]

    # When it runs
    ended = run_to_end(stack, machine, {"lists": [{"chunks": [1]}]})

    # Then the outer Map fails with the item's error and its Catch sees that error, as on AWS (moto 5.2.5
    # raised ValueError on the "States." name, and the Catch saw States.Runtime, which on AWS it would not)
    assert ended["status"] == "SUCCEEDED", ended.get("cause")
    assert json.loads(ended["output"])["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
