"""The district's pairs the ByMatchBucket index tests write, and how they read them back
(tests/integration/test_pair_index.py, test_pair_index_reads.py)."""

from __future__ import annotations

from typing import Any

from rostersync.directory.keys import PAIR_COLLECTIONS, match_bucket, partition_key, shard_of, synced_record_id
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository
from rostersync.domain.records import Kind
from rostersync.matching.partition import partition_of

DISTRICT = "district-a"
KIND_OF = {"enrollments": Kind.ENROLLMENTS, "guardian_links": Kind.GUARDIAN_LINKS}


class RecordingClient:
    """The DynamoDB client, noting every Query it is asked and what it answered (the readers' threads share it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def query(self, **kwargs: Any) -> Any:
        answer = self._client.query(**kwargs)
        self.queries.append((dict(kwargs), answer))
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def pair(collection: str, n: int, provider: str = "clever", record_id: str | None = None) -> DirectoryRecord:
    provider_id = f"sec-{n % 7}:stu-{n}" if collection == "enrollments" else f"gua-{n}:stu-{n % 11}"
    return DirectoryRecord(
        id=record_id or synced_record_id(DISTRICT, collection, provider, provider_id),
        kind=KIND_OF[collection],
        status="active" if n % 5 else "archived",
        managed_by_sync=True,
        provider_ids={provider: provider_id},
        fields={"n": n},
        content_hash=f"h-{n}",
        parent_id=f"cls_{n % 3}",
    )


def district_pairs() -> dict[str, list[DirectoryRecord]]:
    """Both collections across every bucket: most created by the sync, some re-keyed (their record id
    made of an old provider id), a few of another provider and a few of the product's own (no link)."""
    pairs: dict[str, list[DirectoryRecord]] = {}
    for collection in PAIR_COLLECTIONS:
        records = [pair(collection, n) for n in range(320)]
        records += [pair(collection, n, record_id=f"{collection[:3]}_rekeyed_{n}") for n in range(320, 360)]
        records += [pair(collection, n, provider="oneroster") for n in range(360, 380)]
        records += [
            DirectoryRecord(f"{collection[:3]}_product_{n}", KIND_OF[collection], "active", False, {}, {"n": n})
            for n in range(5)
        ]
        pairs[collection] = records
    return pairs


def write_district(directory: DirectoryRepository) -> dict[str, list[DirectoryRecord]]:
    """Write the district's pairs, 20 students, a classroom and a school; return the pairs written."""
    pairs = district_pairs()
    for records in pairs.values():
        directory.put_records(records)
    people = [
        DirectoryRecord(f"per_{n}", Kind.STUDENTS, "active", True, {"clever": f"stu-{n}"}, {}, parent_id="sch_1")
        for n in range(20)
    ]
    directory.put_records(people)
    directory.put_records([DirectoryRecord("cls_1", Kind.CLASSROOMS, "active", True, {"clever": "sec-1"}, {})])
    directory.put_records([DirectoryRecord("sch_1", Kind.SCHOOLS, "active", False, {"clever": "s-1"}, {})])
    return pairs


def raw(dynamodb: Any, table: str, collection: str, record_id: str) -> dict[str, Any]:
    key = {"pk": {"S": partition_key(DISTRICT, collection, shard_of(record_id))}, "sk": {"S": record_id}}
    return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]


def in_bucket(dynamodb: Any, table: str, collection: str, provider: str, provider_id: str) -> set[str]:
    answer = dynamodb.query(
        TableName=table,
        IndexName="ByMatchBucket",
        KeyConditionExpression="match_bucket = :b",
        ExpressionAttributeValues={":b": {"S": match_bucket(DISTRICT, collection, provider, provider_id)}},
    )
    return {i["sk"]["S"] for i in answer["Items"]}


def clever_share(records: list[DirectoryRecord], partitions: int, partition: int) -> set[str]:
    return {
        r.id
        for r in records
        if "clever" in r.provider_ids and partition_of(r.provider_ids["clever"], partitions) == partition
    }
