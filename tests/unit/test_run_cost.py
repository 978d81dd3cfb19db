"""A run's cost: its steps' meters summed and priced with the one table of prices."""

from __future__ import annotations

import pytest

from rostersync.reports.cost import PRICES, describe_cost, price_run, state_transitions, sum_meters


def _meter(step: str, **figures: object) -> dict[str, object]:
    return {"step": step, "invocations": 1, **figures}


def test_meters_of_one_step_add_up_and_keep_the_longest_invocation():
    # Given two Upsert chunks and one Fetch
    steps = sum_meters(
        [
            _meter(
                "upsert_chunk", seconds=2.0, gb_seconds=2.0, memory_mb=1024, requests={"dynamodb:BatchWriteItem": 4}
            ),
            _meter(
                "upsert_chunk", seconds=3.0, gb_seconds=3.0, memory_mb=1024, requests={"dynamodb:BatchWriteItem": 6}
            ),
            _meter("fetch_roster", seconds=1.5, provider_requests=7),
        ]
    )
    # Then each step's figures are summed
    assert steps["upsert_chunk"].invocations == 2
    assert steps["upsert_chunk"].seconds == 5.0
    assert steps["upsert_chunk"].max_seconds == 3.0
    assert steps["upsert_chunk"].requests == {"dynamodb:BatchWriteItem": 10}
    assert steps["fetch_roster"].provider_requests == 7


def test_each_service_is_priced_from_the_table():
    # Given one million write units, two million read units, 1,000 S3 writes (parts and puts), 10,000 reads,
    # 10 GB-seconds over 4 invocations, 100 transitions and 10 secret reads; deletes and aborts are free
    steps = sum_meters(
        [
            _meter(
                "a",
                invocations=4,
                gb_seconds=10.0,
                dynamodb_write_units=1_000_000,
                dynamodb_read_units=2_000_000,
                requests={
                    "s3:PutObject": 600,
                    "s3:UploadPart": 400,
                    "s3:GetObject": 10_000,
                    "s3:DeleteObject": 50,
                    "s3:AbortMultipartUpload": 1,
                    "secretsmanager:GetSecretValue": 10,
                },
            )
        ]
    )
    # When it is priced
    cost = price_run(steps, state_transitions=100)
    # Then every service's figure is its count times its price
    assert cost.usd["dynamodb"] == pytest.approx(0.625 + 0.25)
    assert cost.usd["s3"] == pytest.approx(1_000 * 0.005 / 1_000 + 10_000 * 0.0004 / 1_000)
    assert cost.usd["lambda"] == pytest.approx(10 * PRICES["lambda_gb_second"] + 4 * 0.2 / 1e6)
    assert cost.usd["step_functions"] == pytest.approx(100 * 0.025 / 1_000)
    assert cost.usd["secrets_manager"] == pytest.approx(10 * 0.05 / 10_000)
    assert cost.total_usd == pytest.approx(sum(cost.usd.values()), abs=1e-6)
    assert cost.s3_put_requests == 1_000 and cost.s3_get_requests == 10_000
    assert "$" in describe_cost(cost) and "us-east-1" in describe_cost(cost)


def test_stored_bytes_are_priced_for_the_months_the_run_files_are_kept():
    cost = price_run(sum_meters([_meter("a", s3_bytes_up=2_000_000_000)]), state_transitions=0)
    assert cost.usd["s3"] == pytest.approx(2 * 0.023 * 3)


@pytest.mark.parametrize(
    ("kwargs", "entered"),
    [
        # Prepare, Start, Upload complete?, Entitled?, Sync/undo?, Plan the fetch, Read the lists, Fetch roster,
        # Match roster, Match partitions, Combine match, Self-check?, Upsert + 3 chunks, Undo applied?, Roster
        # complete?, Archive, Write report, Release lock, Sync finished
        ({"action": False, "dry_run": False, "chunks": 3, "fetch_complete": True, "failed": False}, 22),
        # each Match partition: its child's task
        (
            {"action": False, "dry_run": False, "chunks": 3, "fetch_complete": True, "failed": False}
            | {"match_partitions": 4},
            26,
        ),  # fmt: skip
        # each slice of a list: the slice and "List read to its end?"; each list: "List read"
        (
            {
                "action": False,
                "dry_run": False,
                "chunks": 3,
                "fetch_complete": True,
                "failed": False,
                "fetch_lists": 2,
                "fetch_slices": 5,
            },
            34,
        ),
        # an incomplete fetch skips Archive
        ({"action": False, "dry_run": False, "chunks": 3, "fetch_complete": False, "failed": False}, 21),
        # a self-check goes from Self-check? to Write report
        ({"action": False, "dry_run": True, "chunks": 3, "fetch_complete": True, "failed": False}, 15),
        # an undo plans instead of Fetch and Match, and never reaches Roster complete?
        ({"action": True, "dry_run": False, "chunks": 2, "fetch_complete": False, "failed": False}, 14),
    ],
)
def test_state_transitions_follow_the_path_the_run_took(kwargs, entered):
    assert state_transitions(**kwargs) == entered


def test_every_plan_chunk_keeps_a_meter_of_its_own_the_partitioned_matchs_too():
    from rostersync.metering import meter_name

    # Given the chunk keys of a partitioned Match's plan: the people phase and each partition number their
    # chunks from 00000 in folders of their own
    run = "runs/d-1/run-1/"
    keys = [f"{run}plan/people/writes-00000.ndjson.gz", f"{run}plan/people/writes-00001.ndjson.gz"] + [
        f"{run}plan/p{p:04d}/writes-00000.ndjson.gz" for p in range(4)
    ]

    # When each Upsert chunk names its meter
    names = [meter_name("upsert_chunk", {"chunk_key": key}) for key in keys]

    # Then no two share a file (a retry of one still overwrites only its own), and the single pass's chunks
    # keep the names they had
    assert len(set(names)) == len(keys), names
    assert names[2] == "meter/upsert_chunk-p0000-writes-00000.json"
    assert meter_name("upsert_chunk", {"chunk_key": f"{run}plan/writes-00003.ndjson.gz"}) == (
        "meter/upsert_chunk-writes-00003.json"
    )
