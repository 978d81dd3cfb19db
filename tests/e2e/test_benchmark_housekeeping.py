"""The benchmark's housekeeping on the embedded stack: a write floor's copy of a district is dropped once timed.

``EmbeddedStack.forget_partitions`` is no AWS operation: at 100,000 students each floor is a million items of
the benchmark's own heap. It must drop exactly the partitions named, and index Queries must stop finding
them (the stack keeps the items grouped by index key until the table is written).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from rostersync import aws
from rostersync.directory.keys import COLLECTIONS, SHARDS, partition_key
from rostersync_tools.local.stack import EmbeddedStack

pytestmark = pytest.mark.e2e


def _put_pairs(dynamodb: Any, table: str, district: str, count: int) -> None:
    for start in range(0, count, 25):
        dynamodb.batch_write_item(
            RequestItems={
                table: [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": partition_key(district, "enrollments", n % SHARDS)},
                                "sk": {"S": f"enr-{n}"},
                                # other tests scan the whole table: each item names its district
                                "district_id": {"S": district},
                                "match_bucket": {"S": f"{district}#enrollments#07"},
                                "status": {"S": "active"},
                            }
                        }
                    }
                    for n in range(start, min(count, start + 25))
                ]
            }
        )


def _bucket(dynamodb: Any, table: str, district: str) -> list[str]:
    answer = dynamodb.query(
        TableName=table,
        IndexName="ByMatchBucket",
        KeyConditionExpression="match_bucket = :b",
        ExpressionAttributeValues={":b": {"S": f"{district}#enrollments#07"}},
    )
    return sorted(item["sk"]["S"] for item in answer["Items"])


def test_forgetting_a_district_s_partitions_drops_its_items_and_no_one_else_s(
    stack: EmbeddedStack, directory_table: str
) -> None:
    # Given two districts' enrollments in the directory table, both found by a bucket Query of the index
    dynamodb = aws.client("dynamodb")
    floor, kept = f"floor-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex[:8]}"
    _put_pairs(dynamodb, directory_table, floor, 40)
    _put_pairs(dynamodb, directory_table, kept, 30)
    assert len(_bucket(dynamodb, directory_table, floor)) == 40

    # When the floor district's partitions are forgotten
    keys = [partition_key(floor, collection, shard) for collection in COLLECTIONS for shard in range(SHARDS)]
    dropped = stack.forget_partitions("DirectoryTable", keys)

    # Then its 40 items are gone, from the table and from the index
    assert dropped == 40
    assert _bucket(dynamodb, directory_table, floor) == []
    for shard in range(SHARDS):
        pk = partition_key(floor, "enrollments", shard)
        answer = dynamodb.query(
            TableName=directory_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )
        assert answer["Items"] == []
    # And the other district keeps all of its own
    assert _bucket(dynamodb, directory_table, kept) == sorted(f"enr-{n}" for n in range(30))
