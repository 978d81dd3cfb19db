"""The ByMatchBucket index: every enrollment and guardian link carries its provider id's bucket, and a Match
partition reads exactly its share of them from the index (moto, the table as template.yaml defines it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from rostersync.directory.keys import (
    MATCH_BUCKETS,
    PAIR_COLLECTIONS,
    buckets_of_partition,
    check_match_partitions,
    match_bucket,
    match_bucket_key,
    match_bucket_of,
    partition_key,
    shard_of,
    synced_record_id,
)
from rostersync.directory.repository import DirectoryRecord, DirectoryRepository, _to_item
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


@pytest.fixture
def recording(dynamodb: Any, directory_table: str) -> RecordingClient:
    return RecordingClient(dynamodb)


@pytest.fixture
def directory(recording: RecordingClient, directory_table: str) -> DirectoryRepository:
    return DirectoryRepository(recording, directory_table, DISTRICT, threads=4)


@pytest.fixture
def written(directory: DirectoryRepository) -> dict[str, list[DirectoryRecord]]:
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


# -- the keys -------------------------------------------------------------------------------------------


def test_a_partition_is_its_buckets_for_every_count_that_divides_them():
    # Given provider ids of every shape the providers send
    ids = [f"sec-{n}:stu-{n * 7}" for n in range(2_000)] + [f"{n:024x}" for n in range(2_000)]

    for n in (1, 2, 4, 8, 16, 32, 64):
        # Then a provider id's partition is its bucket's, and a partition's buckets are those b % n == p
        assert all(partition_of(pid, n) == match_bucket_of(pid) % n for pid in ids), n
        shares = [buckets_of_partition(n, p) for p in range(n)]
        assert sorted(b for share in shares for b in share) == list(range(MATCH_BUCKETS))
        assert all(b % n == p for p, share in enumerate(shares) for b in share)


@pytest.mark.parametrize("partitions", [0, 3, 7, 12, 48, 128])
def test_a_partition_count_that_does_not_divide_the_buckets_is_refused(partitions):
    with pytest.raises(ValueError, match=f"MatchPartitions {partitions} does not divide the 64 buckets"):
        check_match_partitions(partitions)


# -- what a sync writes carries its bucket ----------------------------------------------------------------


def test_every_pair_the_sync_writes_carries_its_bucket_and_nothing_else_does(dynamodb, directory_table, written):
    # When every item of the table is read back
    items = [{k: v for k, v in i.items()} for i in dynamodb.scan(TableName=directory_table)["Items"]]

    # Then each enrollment and guardian link linked to a provider carries the bucket of that link
    pairs = [i for i in items if i["pk"]["S"].split("#")[1] in PAIR_COLLECTIONS]
    linked = [i for i in pairs if i["provider_ids"]["M"]]
    assert len(linked) == 2 * 380
    for item in linked:
        collection = item["pk"]["S"].split("#")[1]
        ((provider, provider_id),) = ((p, v["S"]) for p, v in item["provider_ids"]["M"].items())
        assert item["match_bucket"]["S"] == match_bucket(DISTRICT, collection, provider, provider_id)
        assert item["match_bucket"]["S"].startswith(f"{DISTRICT}#{collection}#{provider}#")
    # and the product's own pairs, people, classrooms and schools are not in the index (it is sparse)
    assert all("match_bucket" not in i for i in pairs if not i["provider_ids"]["M"])
    others = [i for i in items if i["pk"]["S"].split("#")[1] not in PAIR_COLLECTIONS]
    assert len(others) == 22 and all("match_bucket" not in i for i in others)


def test_an_update_that_rekeys_a_pair_moves_it_to_its_new_bucket(dynamodb, directory_table, directory, written):
    # Given a synced enrollment, relinked by a re-key to a new provider id (its record id stays)
    before = written["enrollments"][3]
    old_bucket = match_bucket_of(before.provider_ids["clever"])
    new_id = next(f"new-sec:stu-{n}" for n in range(100) if match_bucket_of(f"new-sec:stu-{n}") != old_bucket)
    relinked = replace(before, provider_ids={"clever": new_id})

    # When Upsert updates it
    directory.update_synced(relinked)

    # Then its item carries the new bucket, and the index lists it there and no longer in the old one
    item = raw(dynamodb, directory_table, "enrollments", before.id)
    assert item["match_bucket"]["S"] == match_bucket(DISTRICT, "enrollments", "clever", new_id)
    assert before.id in in_bucket(dynamodb, directory_table, "enrollments", "clever", new_id)
    assert before.id not in in_bucket(dynamodb, directory_table, "enrollments", "clever", before.provider_ids["clever"])


def test_an_update_that_drops_the_provider_link_leaves_the_index(dynamodb, directory_table, directory, written):
    before = written["guardian_links"][8]
    directory.update_synced(replace(before, provider_ids={}))

    item = raw(dynamodb, directory_table, "guardian_links", before.id)
    assert "match_bucket" not in item and "provider_key" not in item


def test_linking_and_unlinking_a_pair_sets_and_removes_its_bucket(dynamodb, directory_table, directory, written):
    # Given one of the product's own enrollments (no provider link)
    record_id = "enr_product_2"
    assert "match_bucket" not in raw(dynamodb, directory_table, "enrollments", record_id)

    # When it is linked to a provider id, then unlinked
    directory.link_provider_id(Kind.ENROLLMENTS, record_id, "clever", "sec-9:stu-9999")
    linked = raw(dynamodb, directory_table, "enrollments", record_id)
    directory.unlink_provider_id(Kind.ENROLLMENTS, record_id, "clever")
    unlinked = raw(dynamodb, directory_table, "enrollments", record_id)

    # Then the link brought its bucket and the unlink took it away
    assert linked["match_bucket"]["S"] == match_bucket(DISTRICT, "enrollments", "clever", "sec-9:stu-9999")
    assert "match_bucket" not in unlinked


def test_an_undo_puts_an_image_kept_before_the_index_back_with_its_bucket(
    dynamodb, directory_table, directory, written
):
    # Given the before-image of a guardian link kept by a run made before items carried a bucket
    record = written["guardian_links"][12]
    image = {k: v for k, v in record.to_item(DISTRICT).items() if k != "match_bucket"}

    # When an undo puts it back
    directory.put_item_image(image)

    # Then it is back in the partitions' index
    item = raw(dynamodb, directory_table, "guardian_links", record.id)
    wanted = match_bucket(DISTRICT, "guardian_links", "clever", record.provider_ids["clever"])
    assert item["match_bucket"]["S"] == wanted


# -- a partition reads its share ----------------------------------------------------------------------------


def clever_share(records: list[DirectoryRecord], partitions: int, partition: int) -> set[str]:
    return {
        r.id
        for r in records
        if "clever" in r.provider_ids and partition_of(r.provider_ids["clever"], partitions) == partition
    }


@pytest.mark.parametrize("partitions", [1, 4, 16])
def test_partition_p_of_n_reads_exactly_the_pairs_that_hash_to_it_and_all_of_them_together_the_index(
    directory, written, partitions
):
    for collection, records in written.items():
        # Given the collection's whole index as the table holds it (the provider's entries)
        whole = {e.id: e for e in directory.index(collection) if "clever" in e.provider_ids}

        # When every partition reads its share from the index
        shares = [
            {e.id: e for e in directory.pair_index(collection, "clever", partitions, p)} for p in range(partitions)
        ]

        # Then each holds exactly the entries whose provider id is in its partition, as the table has them
        for p, share in enumerate(shares):
            assert set(share) == clever_share(records, partitions, p), (collection, p)
            assert all(share[i] == whole[i] for i in share)
        # and together they are the whole index, each entry in one partition only
        assert sum(len(s) for s in shares) == len(whole) == 360
        assert set().union(*shares) == set(whole)


def test_a_partition_queries_only_its_buckets_and_reads_only_its_share(directory, recording, written):
    # Given a district's pairs, and partition 5 of 16
    partitions, p = 16, 5

    # When it reads its share of both collections
    recording.queries.clear()
    read = {c: list(directory.pair_index(c, "clever", partitions, p)) for c in PAIR_COLLECTIONS}

    # Then it asked the ByMatchBucket index for its 4 buckets of each collection and nothing else
    asked = sorted((kw.get("IndexName"), kw["ExpressionAttributeValues"][":b"]["S"]) for kw, _ in recording.queries)
    wanted = sorted(
        ("ByMatchBucket", match_bucket_key(DISTRICT, c, "clever", b))
        for c in PAIR_COLLECTIONS
        for b in buckets_of_partition(partitions, p)
    )
    assert asked == wanted and len(asked) == 2 * MATCH_BUCKETS // partitions
    # and DynamoDB read (and billed) only its share's items: a sixteenth of the pairs, not all of them
    scanned = sum(answer["ScannedCount"] for _, answer in recording.queries)
    share = sum(len(clever_share(written[c], partitions, p)) for c in PAIR_COLLECTIONS)
    assert scanned == sum(len(entries) for entries in read.values()) == share
    assert share < sum(len(r) for r in written.values()) / 8


def test_reading_the_table_instead_scans_every_pair(directory, recording, written):
    # The read the index replaces (kept for districts whose older pairs lack their bucket): the same share,
    # but DynamoDB reads every item of every shard for it; this is what the test above would see if a
    # partition read the whole index
    recording.queries.clear()
    entries, unbucketed = directory.pair_index_from_table("enrollments", "clever", 16, 5)

    scanned = sum(answer["ScannedCount"] for _, answer in recording.queries)
    assert {e.id for e in entries} == clever_share(written["enrollments"], 16, 5)
    assert scanned == len(written["enrollments"]) and unbucketed == 0


# -- districts whose pairs were written before the index -----------------------------------------------------


def test_pairs_written_before_the_index_are_counted_then_bucketed(dynamodb, directory_table, directory, written):
    # Given some enrollments as an older version wrote them: no match_bucket
    old = written["enrollments"][:40]
    for record in old:
        item = {k: v for k, v in record.to_item(DISTRICT).items() if k != "match_bucket"}
        dynamodb.put_item(TableName=directory_table, Item=_to_item(item))

    # Then the index misses them, and the partitions reading the table count them
    def share(p: int) -> set[str]:
        return {e.id for e in directory.pair_index("enrollments", "clever", 4, p)}

    assert not set().union(*(share(p) for p in range(4))) & {r.id for r in old}
    counted = [directory.pair_index_from_table("enrollments", "clever", 4, p)[1] for p in range(4)]
    assert sum(counted) == sum(1 for r in old if "clever" in r.provider_ids) > 0

    # When the district's pairs are bucketed (rostersync directory index-pairs)
    bucketed = directory.bucket_pairs()

    # Then every one of them is written once, the index holds them, and nothing is left to count
    assert bucketed == sum(counted)
    assert {r.id for r in old if "clever" in r.provider_ids} <= set().union(*(share(p) for p in range(4)))
    assert sum(directory.pair_index_from_table("enrollments", "clever", 4, p)[1] for p in range(4)) == 0
    assert directory.bucket_pairs() == 0
